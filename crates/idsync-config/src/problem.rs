//! What is wrong with a config: each problem with its field, its place (a line of the file or
//! the environment variable its value came from) and what would be valid.

use std::path::{Path, PathBuf};

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why the file system refused.
        source: std::io::Error,
    },
    /// One or more problems, each with its place in the file.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        /// The config file, named in front of each problem.
        file: PathBuf,
        /// Every problem found, not only the first, so that one edit can fix them all.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, one by one (none when the file could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as a path: `apps[0].scope.groups`, `targets[1].token`.
    pub field: String,
    /// 1-based line in the file; `None` when the value came from the environment or the field
    /// is missing from a file that has no place for it.
    pub line: Option<usize>,
    /// When the value came from the environment: the variable.
    pub env_var: Option<String>,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl Problem {
    /// A problem with `field` found after loading (a path as the loader names fields:
    /// `apps[0].scope.groups[1]`), not placed yet: [`locate`] gives it its line, or the
    /// environment variable its value came from.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            line: None,
            env_var: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.field, self.message)?;
        }
        if let Some(var) = &self.env_var {
            write!(f, " (value from environment variable {var})")?;
        }
        Ok(())
    }
}

pub(crate) fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    if problems.len() > 1 {
        out.push_str(&format!(
            "{} problems in config {}:\n",
            problems.len(),
            file.display()
        ));
    }
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match p.line {
            Some(line) => out.push_str(&format!("{}:{line}: {p}", file.display())),
            None => out.push_str(&format!("{}: {p}", file.display())),
        }
    }
    out
}
