//! Loading: defaults → TOML file → environment, then the checks serde cannot do.
//!
//! Every problem is reported with the file, the line, the field and what would be valid. Serde
//! errors carry a byte span of the document; for the checks done after parsing we walk the
//! spanned document (`toml::de::DeTable`) to the field's path to find its line.
//!
//! Environment variables (applied over the file, before the checks):
//!
//! | variable | sets |
//! |---|---|
//! | `IDSYNC_DATA_DIR` | `data_dir` |
//! | `IDSYNC_STORE_URL` | `store.url` |
//! | `IDSYNC_APP_<NAME>_{TENANT_ID,CLIENT_ID,CLIENT_SECRET,AUTHORITY_URL,GRAPH_URL}` | that field of the app named NAME |
//! | `IDSYNC_TARGET_<NAME>_{BASE_URL,TOKEN,USERNAME,PASSWORD}` | that field of the target named NAME |
//!
//! `<NAME>` is the app's or target's `name` in upper case with every character other than
//! `A-Z` and `0-9` turned into `_` (app `jira-prod` → `IDSYNC_TARGET_JIRA_PROD_TOKEN`). Secret
//! values from the environment may themselves be `env:VAR` or `file:PATH`. A variable with one
//! of these prefixes that names no app or target, or no known field, is an error: a typo there
//! would otherwise silently leave the file's value in force.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

use crate::check::Checker;
use crate::env::Overrides;
use crate::locate::{Document, Seg, parse_path, path_at, place};
use crate::problem::render_problems;
use crate::schema::Config;

/// Reads, parses and checks the config file at `path`, with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &process_env())
}

/// [`load`] with an explicit environment: it resolves `env:VAR` secrets, and its `IDSYNC_*`
/// variables override the file.
pub fn load_with_env(path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_with_env(&text, path, env)
}

/// Parses and checks a config given as text; `file` names it in errors and anchors relative
/// paths (`data_dir`, `file:` secrets) at its folder.
pub fn parse_with_env(text: &str, file: &Path, env: &Env) -> Result<Config, ConfigError> {
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let doc = Document::new(text);
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        file: file.to_owned(),
        problems,
    };
    let mut root = DeTable::parse(text).map_err(|e| {
        invalid(vec![Problem {
            field: String::new(),
            line: e.span().map(|s| doc.line_of(s.start)),
            env_var: None,
            message: format!("not valid TOML: {}", e.message().trim()),
        }])
    })?;
    let mut overrides = Overrides::default();
    overrides
        .apply(root.get_mut(), env, text.len())
        .map_err(&invalid)?;

    let config = Config::deserialize(toml::de::Deserializer::from(root));
    // Re-parse for locating fields: the first parse was consumed by the deserializer.
    let located = DeTable::parse(text).ok();
    let mut config = config.map_err(|e| {
        let span = e.span();
        let problem = match span.as_ref().and_then(|s| overrides.at(s.start)) {
            Some((path, var)) => Problem {
                field: path.clone(),
                line: None,
                env_var: Some(var.clone()),
                message: e.message().to_owned(),
            },
            None => Problem {
                field: span
                    .as_ref()
                    .zip(located.as_ref())
                    .map(|(s, root)| path_at(root, s.start))
                    .unwrap_or_default(),
                line: span.map(|s| doc.line_of(s.start)),
                env_var: None,
                message: e.message().to_owned(),
            },
        };
        invalid(vec![problem])
    })?;

    // `env:`/`file:` secrets, against this config's folder and environment; a reference that
    // does not resolve is a problem at its field.
    let secret_problems = resolve_secrets(&mut config, &base_dir, env);
    if !secret_problems.is_empty() {
        let problems = secret_problems
            .into_iter()
            .map(|(path, message)| place(located.as_ref(), &doc, &overrides, &path, message))
            .collect();
        return Err(invalid(problems));
    }

    if !config.data_dir.is_absolute() {
        let from_env = overrides.by_path.contains_key("data_dir");
        if !from_env {
            config.data_dir = base_dir.join(&config.data_dir);
        }
    }

    let mut checker = Checker {
        root: located,
        doc: &doc,
        overrides: &overrides,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    checker.check(&config);
    if checker.problems.is_empty() {
        config.warnings = checker
            .warnings
            .iter()
            .map(|w| render_problems(file, std::slice::from_ref(w)))
            .collect();
        Ok(config)
    } else {
        Err(invalid(checker.problems))
    }
}

/// Problems with a config that only show after loading it (reading the source finds that a
/// scope group the tenant does not have), in the form of the loader's own: each at its line in
/// the file, or naming the environment variable its value came from. The file is read again,
/// with the process environment, as [`load`] read it.
pub fn locate(file: &Path, problems: Vec<Problem>) -> ConfigError {
    // A loaded `Config` keeps no text to point into. A file that can no longer be read (or no
    // longer parses) leaves the problems without a line, which still names the field.
    let text = std::fs::read_to_string(file).unwrap_or_default();
    locate_with_env(&text, file, &process_env(), problems)
}

/// [`locate`] in a config given as text, with an explicit environment (as
/// [`parse_with_env`]).
pub fn locate_with_env(text: &str, file: &Path, env: &Env, problems: Vec<Problem>) -> ConfigError {
    let doc = Document::new(text);
    let mut overrides = Overrides::default();
    if let Ok(mut root) = DeTable::parse(text) {
        // Only to learn which fields the environment sets; the config loaded, so the
        // variables were fine then.
        let _ = overrides.apply(root.get_mut(), env, text.len());
    }
    // A parse of its own: the one above holds the environment's values at made-up places.
    let root = DeTable::parse(text).ok();
    let problems = problems
        .into_iter()
        .map(|p| {
            place(
                root.as_ref(),
                &doc,
                &overrides,
                &parse_path(&p.field),
                p.message,
            )
        })
        .collect();
    ConfigError::Invalid {
        file: file.to_owned(),
        problems,
    }
}

// ----- secrets: `file:` relative to the config's folder, `env:` from the given environment -----

/// Resolves every secret reference of `config`; each that cannot be resolved, with its field.
fn resolve_secrets(config: &mut Config, base_dir: &Path, env: &Env) -> Vec<(Vec<Seg>, String)> {
    let lookup = |name: &str| env.get(name).cloned();
    let mut problems = Vec::new();
    let mut resolve = |secret: &mut crate::secret::Secret, path: Vec<Seg>| {
        if let Err(message) = secret.resolve_pending(base_dir, &lookup) {
            problems.push((path, message));
        }
    };
    for (i, app) in config.apps.iter_mut().enumerate() {
        let path = vec![Seg::key("apps"), Seg::Index(i), Seg::key("client_secret")];
        resolve(&mut app.client_secret, path);
    }
    for (i, target) in config.targets.iter_mut().enumerate() {
        for (field, secret) in [
            ("token", &mut target.token),
            ("password", &mut target.password),
        ] {
            if let Some(secret) = secret {
                resolve(
                    secret,
                    vec![Seg::key("targets"), Seg::Index(i), Seg::key(field)],
                );
            }
        }
    }
    problems
}

pub use crate::env::{Env, app_env_var, env_name, process_env, target_env_var};
pub use crate::problem::{ConfigError, Problem};
/// `url` without user info, query and fragment, for messages: any of them may hold a secret.
pub use idsync_model::redact::redact_url;
