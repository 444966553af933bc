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

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::schema::{
    AppConfig, BitbucketDeprovision, Config, GroupRules, LeaveAction, MAX_CONCURRENCY,
    MAX_REQUESTS_PER_SECOND, MIN_REQUESTS_PER_SECOND, RegexReplace, Scope, TargetConfig, UserRules,
};

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more problems, each with its place in the file.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
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

fn render_problems(file: &Path, problems: &[Problem]) -> String {
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

/// Environment variables by name (an explicit value so that tests need not touch the process
/// environment).
pub type Env = BTreeMap<String, String>;

/// The process environment (variables that are not valid Unicode are left out).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

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

    let config = {
        let _guard = SecretContext::enter(base_dir.clone(), env);
        Config::deserialize(toml::de::Deserializer::from(root))
    };
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

thread_local! {
    static SECRET_CONTEXT: RefCell<Option<(PathBuf, Env)>> = const { RefCell::new(None) };
}

/// While alive, [`crate::secret::Secret`]'s deserializer resolves `file:` paths against the
/// config's folder and `env:` in the given environment. Loading is synchronous, so a
/// thread-local is enough to hand this context to a `Deserialize` impl.
struct SecretContext;

impl SecretContext {
    fn enter(base_dir: PathBuf, env: &Env) -> SecretContext {
        SECRET_CONTEXT.with(|c| *c.borrow_mut() = Some((base_dir, env.clone())));
        SecretContext
    }
}

impl Drop for SecretContext {
    fn drop(&mut self) {
        SECRET_CONTEXT.with(|c| *c.borrow_mut() = None);
    }
}

/// Resolves a secret reference in the active loading context, or against the process
/// environment and working directory outside one.
pub(crate) fn resolve_secret(raw: &str) -> Result<crate::secret::Secret, String> {
    SECRET_CONTEXT.with(|c| match &*c.borrow() {
        Some((base_dir, env)) => {
            crate::secret::Secret::resolve_in(raw, Some(base_dir), &|name| env.get(name).cloned())
        }
        None => crate::secret::Secret::resolve(raw),
    })
}

// ----- environment overrides -----

const APP_FIELDS: &[&str] = &[
    "TENANT_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "AUTHORITY_URL",
    "GRAPH_URL",
];
const TARGET_FIELDS: &[&str] = &["BASE_URL", "TOKEN", "USERNAME", "PASSWORD"];

/// `jira-prod` → `JIRA_PROD`: how a name appears in environment variable names.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The environment variable that overrides `field` (e.g. `client_secret`) of the app `name`.
pub fn app_env_var(name: &str, field: &str) -> String {
    format!(
        "IDSYNC_APP_{}_{}",
        env_name(name),
        field.to_ascii_uppercase()
    )
}

/// The environment variable that overrides `field` (e.g. `token`) of the target `name`.
pub fn target_env_var(name: &str, field: &str) -> String {
    format!(
        "IDSYNC_TARGET_{}_{}",
        env_name(name),
        field.to_ascii_uppercase()
    )
}

/// Values put into the document from the environment. Each gets a made-up span past the end
/// of the text so that an error about it can be traced back to its variable.
#[derive(Default)]
struct Overrides {
    /// span start → (field path, variable)
    by_span: BTreeMap<usize, (String, String)>,
    /// field path → variable
    by_path: BTreeMap<String, String>,
}

impl Overrides {
    fn at(&self, offset: usize) -> Option<&(String, String)> {
        self.by_span.get(&offset)
    }

    fn apply(
        &mut self,
        root: &mut DeTable<'_>,
        env: &Env,
        text_len: usize,
    ) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let mut next_span = text_len + 1;
        for (var, value) in env
            .range("IDSYNC_".to_owned()..)
            .take_while(|(k, _)| k.starts_with("IDSYNC_"))
        {
            let target = if var == "IDSYNC_DATA_DIR" {
                Some((vec![Seg::key("data_dir")], "data_dir".to_owned()))
            } else if var == "IDSYNC_STORE_URL" {
                Some((
                    vec![Seg::key("store"), Seg::key("url")],
                    "store.url".to_owned(),
                ))
            } else if let Some(rest) = var.strip_prefix("IDSYNC_APP_") {
                match find_named(root, "apps", rest, APP_FIELDS) {
                    Ok(found) => Some(found),
                    Err(message) => {
                        problems.push(env_problem(var, message));
                        None
                    }
                }
            } else if let Some(rest) = var.strip_prefix("IDSYNC_TARGET_") {
                match find_named(root, "targets", rest, TARGET_FIELDS) {
                    Ok(found) => Some(found),
                    Err(message) => {
                        problems.push(env_problem(var, message));
                        None
                    }
                }
            } else {
                None
            };
            let Some((path, display)) = target else {
                continue;
            };
            let span = next_span..next_span + 1;
            next_span += 2;
            if set_string(root, &path, value.clone(), span.clone()) {
                self.by_span
                    .insert(span.start, (display.clone(), var.clone()));
                self.by_path.insert(display, var.clone());
            } else {
                problems.push(env_problem(
                    var,
                    format!("cannot set {display}: that part of the file is not a table"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn env_problem(var: &str, message: String) -> Problem {
    Problem {
        field: String::new(),
        line: None,
        env_var: Some(var.to_owned()),
        message,
    }
}

/// For `IDSYNC_APP_<NAME>_<FIELD>`: which `[[apps]]` entry and which field `rest`
/// (`<NAME>_<FIELD>`) means.
fn find_named(
    root: &DeTable<'_>,
    list: &str,
    rest: &str,
    fields: &[&str],
) -> Result<(Vec<Seg>, String), String> {
    let names: Vec<(usize, String)> = root
        .get(list)
        .and_then(|v| v.get_ref().as_array())
        .map(|items| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let name = item.get_ref().as_table()?.get("name")?.get_ref().as_str()?;
                    Some((i, name.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let singular = list.trim_end_matches('s');
    for (i, name) in &names {
        let prefix = format!("{}_", env_name(name));
        if let Some(field) = rest.strip_prefix(&prefix) {
            if fields.contains(&field) {
                let key = field.to_ascii_lowercase();
                return Ok((
                    vec![Seg::key(list), Seg::Index(*i), Seg::key(&key)],
                    format!("{list}[{i}].{key}"),
                ));
            }
            return Err(format!(
                "{singular} '{name}' has no field that this variable can set; valid endings: {}",
                fields.join(", ")
            ));
        }
    }
    let known = if names.is_empty() {
        format!("the file has no [[{list}]]")
    } else {
        format!(
            "{list} in the file: {}",
            names
                .iter()
                .map(|(_, n)| format!("'{n}' ({})", env_name(n)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(format!("names no {singular}; {known}"))
}

/// Sets a string at `path`, creating tables on the way; false when a non-table is in the way.
fn set_string(root: &mut DeTable<'_>, path: &[Seg], value: String, span: Range<usize>) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    if let [Seg::Key(_), Seg::Index(i)] = parents {
        return set_in_array(root, parents, *i, last, value, span);
    }
    let mut table: &mut DeTable<'_> = root;
    for seg in parents {
        let next: &mut Spanned<DeValue<'_>> = match seg {
            Seg::Key(k) => table
                .entry(Spanned::new(span.clone(), Cow::Owned(k.clone())))
                .or_insert_with(|| Spanned::new(span.clone(), DeValue::Table(DeTable::new()))),
            Seg::Index(_) => return false,
        };
        match next.get_mut() {
            DeValue::Table(t) => table = t,
            _ => return false,
        }
    }
    let Seg::Key(k) = last else { return false };
    table.insert(
        Spanned::new(span.clone(), Cow::Owned(k.clone())),
        Spanned::new(span, DeValue::String(Cow::Owned(value))),
    );
    true
}

/// `apps[i].field = value` (the only array paths overrides use).
fn set_in_array(
    root: &mut DeTable<'_>,
    parents: &[Seg],
    index: usize,
    last: &Seg,
    value: String,
    span: Range<usize>,
) -> bool {
    let (Some(Seg::Key(list)), Seg::Key(field)) = (parents.first(), last) else {
        return false;
    };
    let Some(item) = root.get_mut(list.as_str()).and_then(|v| match v.get_mut() {
        DeValue::Array(a) => a.get_mut(index),
        _ => None,
    }) else {
        return false;
    };
    let DeValue::Table(t) = item.get_mut() else {
        return false;
    };
    t.insert(
        Spanned::new(span.clone(), Cow::Owned(field.clone())),
        Spanned::new(span, DeValue::String(Cow::Owned(value))),
    );
    true
}

// ----- locating fields -----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// `apps[0].scope.groups[1]` → its segments: the inverse of [`render_path`]. A bracket that
/// holds no number stays part of its key.
fn parse_path(field: &str) -> Vec<Seg> {
    let mut path = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        let mut indexes = Vec::new();
        while let Some(inner) = rest.strip_prefix('[') {
            let Some((number, after)) = inner.split_once(']') else {
                break;
            };
            let Ok(i) = number.parse::<usize>() else {
                break;
            };
            indexes.push(Seg::Index(i));
            rest = after;
        }
        if !rest.is_empty() {
            path.push(Seg::key(part));
            continue;
        }
        if !key.is_empty() {
            path.push(Seg::key(key));
        }
        path.extend(indexes);
    }
    path
}

/// A problem at `path`: at its line, or naming the environment variable that set it.
fn place(
    root: Option<&Spanned<DeTable<'_>>>,
    doc: &Document,
    overrides: &Overrides,
    path: &[Seg],
    message: String,
) -> Problem {
    let field = render_path(path);
    let env_var = overrides.by_path.get(&field).cloned();
    let line = if env_var.is_some() {
        None
    } else {
        root.and_then(|root| span_of(root, path))
            .map(|s| doc.line_of(s.start))
    };
    Problem {
        field,
        line,
        env_var,
        message,
    }
}

/// Line numbers from byte offsets.
struct Document {
    line_starts: Vec<usize>,
}

impl Document {
    fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Document { line_starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// The span of the value at `path`, or of the nearest enclosing value that exists (so a
/// missing field points at its table).
fn span_of(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best = None;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, current) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        current = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    best
}

/// The path of the deepest key or value whose span holds `offset`.
fn path_at(root: &Spanned<DeTable<'_>>, offset: usize) -> String {
    fn walk_table(t: &DeTable<'_>, offset: usize, path: &mut Vec<Seg>) {
        for (k, v) in t.iter() {
            if k.span().contains(&offset) {
                path.push(Seg::Key(k.get_ref().to_string()));
                return;
            }
            if v.span().contains(&offset) {
                path.push(Seg::Key(k.get_ref().to_string()));
                walk_value(v.get_ref(), offset, path);
                return;
            }
        }
        // Array-of-tables entries span only their header; look inside them anyway.
        for (k, v) in t.iter() {
            if let DeValue::Array(a) = v.get_ref() {
                for (i, item) in a.iter().enumerate() {
                    if item.span().contains(&offset)
                        || item
                            .get_ref()
                            .as_table()
                            .is_some_and(|t| contains_offset(t, offset))
                    {
                        path.push(Seg::Key(k.get_ref().to_string()));
                        path.push(Seg::Index(i));
                        walk_value(item.get_ref(), offset, path);
                        return;
                    }
                }
            } else if let DeValue::Table(inner) = v.get_ref()
                && contains_offset(inner, offset)
            {
                path.push(Seg::Key(k.get_ref().to_string()));
                walk_table(inner, offset, path);
                return;
            }
        }
    }
    fn contains_offset(t: &DeTable<'_>, offset: usize) -> bool {
        t.iter().any(|(k, v)| {
            k.span().contains(&offset)
                || v.span().contains(&offset)
                || match v.get_ref() {
                    DeValue::Table(inner) => contains_offset(inner, offset),
                    DeValue::Array(a) => a.iter().any(|item| {
                        item.span().contains(&offset)
                            || item
                                .get_ref()
                                .as_table()
                                .is_some_and(|t| contains_offset(t, offset))
                    }),
                    _ => false,
                }
        })
    }
    fn walk_value(v: &DeValue<'_>, offset: usize, path: &mut Vec<Seg>) {
        match v {
            DeValue::Table(t) => walk_table(t, offset, path),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    if item.span().contains(&offset)
                        || item
                            .get_ref()
                            .as_table()
                            .is_some_and(|t| contains_offset(t, offset))
                    {
                        path.push(Seg::Index(i));
                        walk_value(item.get_ref(), offset, path);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    let mut path = Vec::new();
    walk_table(root.get_ref(), offset, &mut path);
    render_path(&path)
}

// ----- checks after parsing -----

struct Checker<'a> {
    root: Option<Spanned<DeTable<'a>>>,
    doc: &'a Document,
    overrides: &'a Overrides,
    problems: Vec<Problem>,
    /// Same form as problems, but the file is used all the same.
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, path: &[Seg], message: impl Into<String>) {
        let problem = self.locate(path, message.into());
        self.problems.push(problem);
    }

    fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        let warning = self.locate(path, message.into());
        self.warnings.push(warning);
    }

    fn locate(&self, path: &[Seg], message: String) -> Problem {
        place(self.root.as_ref(), self.doc, self.overrides, path, message)
    }

    /// A URL idsync sends credentials to must not carry credentials itself: they would show up
    /// in logs, messages and the store. `instead` says where they belong. False when refused.
    fn refuse_credentials_in(&mut self, path: &[Seg], url: &url::Url, instead: &str) -> bool {
        if url.username().is_empty() && url.password().is_none() {
            return true;
        }
        self.report(
            path,
            format!(
                "'{}' holds credentials (user:password@); remove them from the URL and {instead}",
                redact_url(url.as_str())
            ),
        );
        false
    }

    /// Plain http to another machine sends tokens and user data unencrypted: allowed (a lab,
    /// a TLS-terminating proxy on the same network), but warned about.
    fn warn_plain_http(&mut self, path: &[Seg], url: &url::Url) {
        if url.scheme() == "http" && !is_loopback(url) {
            self.warn(
                path,
                format!(
                    "'{}' is plain http: credentials and user data cross the network \
                     unencrypted; use https://",
                    redact_url(url.as_str())
                ),
            );
        }
    }

    fn check(&mut self, config: &Config) {
        if let Some(url) = &config.store.url {
            let at = [Seg::key("store"), Seg::key("url")];
            // The store opens SQLite only (idsync-store is built on sqlx's sqlite driver); a
            // PostgreSQL URL would pass here and fail at the first run, so it is refused now.
            if ["postgres:", "postgresql:"].iter().any(|p| {
                url.get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
            }) {
                self.report(
                    &at,
                    format!(
                        "'{}' is a PostgreSQL URL, but idsync's store supports only SQLite for                          now; use sqlite://PATH, or leave `store.url` out for                          sqlite://DATA_DIR/idsync.db",
                        redact_url(url)
                    ),
                );
            } else if !url.starts_with("sqlite:") {
                self.report(
                    &at,
                    format!(
                        "'{}' is not a store URL; use sqlite://PATH",
                        redact_url(url)
                    ),
                );
            }
        }
        self.check_unique_names(
            "targets",
            config.targets.iter().map(|t| t.name.as_str()).collect(),
        );
        self.check_unique_names(
            "apps",
            config.apps.iter().map(|a| a.name.as_str()).collect(),
        );
        let target_names: BTreeSet<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        for (i, target) in config.targets.iter().enumerate() {
            self.check_target(i, target);
        }
        for (i, app) in config.apps.iter().enumerate() {
            self.check_app(i, app, &target_names);
            self.check_custom_attribute_names(i, app, &config.targets);
        }
        self.check_bitbucket_delete(config);
    }

    /// Every custom attribute an app's rules write must be one each target it feeds keeps:
    /// Atlassian Cloud keeps a fixed set, and a name outside it would otherwise be found only
    /// when accounts are created.
    fn check_custom_attribute_names(
        &mut self,
        i: usize,
        app: &AppConfig,
        targets: &[TargetConfig],
    ) {
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        let fed = targets
            .iter()
            .filter(|t| app.targets.is_empty() || app.targets.contains(&t.name));
        for target in fed {
            let (base, rules) = match app
                .overrides
                .get(&target.name)
                .and_then(|o| o.users.as_ref())
            {
                Some(users) => (
                    vec![
                        Seg::key("apps"),
                        Seg::Index(i),
                        Seg::key("overrides"),
                        Seg::key(&target.name),
                        Seg::key("users"),
                    ],
                    users,
                ),
                None => (
                    vec![Seg::key("apps"), Seg::Index(i), Seg::key("users")],
                    &app.users,
                ),
            };
            let idsync_model::AttributeNames::Only(accepted) = target.kind.custom_attribute_names()
            else {
                continue;
            };
            for name in rules.custom_attributes.keys() {
                if accepted.contains(&name.as_str())
                    || !reported.insert((format!("{base:?}"), name.clone()))
                {
                    continue;
                }
                let mut path = base.clone();
                path.push(Seg::key("custom_attributes"));
                path.push(Seg::key(name));
                self.report(
                    &path,
                    format!(
                        "target '{}' ({}) keeps no custom attribute named '{name}'; it keeps {}. Rename it, or give '{}' its own rules in [apps.overrides.{}.users]",
                        target.name,
                        target.kind,
                        accepted.join(", "),
                        target.name,
                        target.name
                    ),
                );
            }
        }
    }

    /// A Bitbucket target with `deprovision = "delete"` deletes where other targets deactivate:
    /// every app feeding it must allow deleting (`users.delete = true`, or its override's for
    /// that target), since "deleting is never done unless this is true".
    fn check_bitbucket_delete(&mut self, config: &Config) {
        for (j, t) in config.targets.iter().enumerate() {
            if t.kind != idsync_model::TargetKind::BitbucketDc
                || t.deprovision != BitbucketDeprovision::Delete
            {
                continue;
            }
            for (i, app) in config.apps.iter().enumerate() {
                if !(app.targets.is_empty() || app.targets.contains(&t.name)) {
                    continue;
                }
                let over = app.overrides.get(&t.name).and_then(|o| o.users.as_ref());
                let (users, section) = match over {
                    Some(users) => (users, format!("[apps.overrides.{}.users]", t.name)),
                    None => (&app.users, "[apps.users]".to_owned()),
                };
                if users.delete {
                    continue;
                }
                self.report(
                    &[Seg::key("targets"), Seg::Index(j), Seg::key("deprovision")],
                    format!(
                        "is \"delete\", but apps[{i}] ('{}') feeds this target with `delete` false \
                         in {section}, and deleting is never done unless it is true; set \
                         `delete = true` in {section} of that app to allow deleting accounts, or \
                         use deprovision = \"remove_licensed_groups\"",
                        app.name
                    ),
                );
            }
        }
    }

    fn check_unique_names(&mut self, list: &str, names: Vec<&str>) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut env_seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let path = [Seg::key(list), Seg::Index(i), Seg::key("name")];
            if name.trim().is_empty() {
                self.report(&path, "must not be empty");
                continue;
            }
            if let Some(first) = seen.get(name) {
                self.report(
                    &path,
                    format!(
                        "'{name}' is already the name of {list}[{first}]; names must be unique"
                    ),
                );
                continue;
            }
            seen.insert(name, i);
            let env = env_name(name);
            if let Some(first) = env_seen.get(&env) {
                self.report(
                    &path,
                    format!(
                        "'{name}' and the name of {list}[{first}] both become {env} in environment \
                         variable names; rename one of them"
                    ),
                );
            }
            env_seen.insert(env, i);
        }
    }

    fn check_target(&mut self, i: usize, t: &TargetConfig) {
        let at = |field: &str| vec![Seg::key("targets"), Seg::Index(i), Seg::key(field)];
        if !matches!(t.base_url.scheme(), "http" | "https") {
            self.report(
                &at("base_url"),
                format!(
                    "'{}' is not an http(s) URL; use e.g. https://jira.example.com",
                    redact_url(t.base_url.as_str())
                ),
            );
        } else if self.refuse_credentials_in(
            &at("base_url"),
            &t.base_url,
            &if t.kind == idsync_model::TargetKind::BitbucketDc {
                format!(
                    "set `username` + `password` in this [[targets]] entry, or {} and {}",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                )
            } else {
                format!(
                    "set `token` (or `username` + `password`) in this [[targets]] entry, or {}",
                    target_env_var(&t.name, "token")
                )
            },
        ) {
            self.warn_plain_http(&at("base_url"), &t.base_url);
        }
        let has_token = t.token.as_ref().is_some_and(|s| !s.expose().is_empty());
        let has_user = t.username.as_ref().is_some_and(|s| !s.is_empty());
        let has_password = t.password.as_ref().is_some_and(|s| !s.expose().is_empty());
        let cloud = t.kind == idsync_model::TargetKind::AtlassianCloud;
        let bitbucket = t.kind == idsync_model::TargetKind::BitbucketDc;
        if cloud && (has_user || has_password) {
            self.report(
                &at(if has_user { "username" } else { "password" }),
                "atlassian-cloud authenticates with the SCIM directory API key only; set `token` \
                 and remove `username`/`password`",
            );
        } else if cloud && !has_token {
            self.report(
                &at("token"),
                format!(
                    "atlassian-cloud needs `token` (the SCIM directory API key from admin.atlassian.com), \
                     inline, env:VAR, file:PATH or via {}",
                    target_env_var(&t.name, "token")
                ),
            );
        } else if bitbucket && has_token {
            // Bitbucket DC does not accept HTTP access tokens on its administrative endpoints
            // or user management, and every call idsync makes is under /rest/api/1.0/admin/:
            // https://confluence.atlassian.com/bitbucketserverkb/how-to-use-oauth2-tokens-for-administrative-endpoints-of-bitbucket-data-center-1489469945.html
            // (BSERV-10482).
            self.report(
                &at("token"),
                format!(
                    "Bitbucket Data Center refuses HTTP access tokens on the admin REST endpoints                      idsync needs (user and group management answer 401); remove `token` and set                      `username` + `password` of an account with Admin or System admin permission                      (or {} and {})",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                ),
            );
        } else if has_token && (has_user || has_password) {
            self.report(
                &at(if has_user { "username" } else { "password" }),
                "give either `token` or `username` + `password`, not both",
            );
        } else if !has_token && has_user != has_password {
            let missing = if has_user { "password" } else { "username" };
            self.report(
                &at(missing),
                format!("basic auth needs both `username` and `password`; `{missing}` is missing"),
            );
        } else if bitbucket && !has_user {
            self.report(
                &at("username"),
                format!(
                    "no credentials: Bitbucket needs `username` + `password` of an account with \
                     Admin or System admin permission (HTTP access tokens are refused on its \
                     admin endpoints), or {} and {}",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                ),
            );
        } else if !has_token && !has_user {
            self.report(
                &at("token"),
                format!(
                    "no credentials: set `token` (a personal access token) or `username` + `password` \
                     (or {})",
                    target_env_var(&t.name, "token")
                ),
            );
        }
        if !(1..=MAX_CONCURRENCY).contains(&t.concurrency) {
            self.report(
                &at("concurrency"),
                format!(
                    "{} is out of range; give 1 to {MAX_CONCURRENCY} (default 4)",
                    t.concurrency
                ),
            );
        }
        if t.timeout_seconds == 0 {
            self.report(&at("timeout_seconds"), "must be at least 1");
        }
        if t.long_task_wait_seconds == 0 {
            self.report(&at("long_task_wait_seconds"), "must be at least 1");
        }
        // `contains` is false for NaN too.
        if let Some(rps) = t.max_requests_per_second
            && !(MIN_REQUESTS_PER_SECOND..=MAX_REQUESTS_PER_SECOND).contains(&rps)
        {
            self.report(
                &at("max_requests_per_second"),
                format!(
                    "{rps} is out of range; give {MIN_REQUESTS_PER_SECOND} to \
                     {MAX_REQUESTS_PER_SECOND} requests per second, or remove it for no limit"
                ),
            );
        }
        if t.kind == idsync_model::TargetKind::BitbucketDc && t.licensed_groups.is_empty() {
            self.report(
                &at("licensed_groups"),
                "Bitbucket needs at least one licensed group (default: [\"stash-users\"])",
            );
        }
    }

    fn check_app(&mut self, i: usize, app: &AppConfig, targets: &BTreeSet<&str>) {
        let base = vec![Seg::key("apps"), Seg::Index(i)];
        let at = |rest: &[&str]| {
            let mut p = base.clone();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        if !is_guid(&app.tenant_id) && !is_dns_name(&app.tenant_id) {
            self.report(
                &at(&["tenant_id"]),
                format!(
                    "'{}' is neither a GUID nor a domain name; use the Directory (tenant) ID from the \
                     app registration's Overview page (e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47) \
                     or a verified domain (contoso.onmicrosoft.com)",
                    app.tenant_id
                ),
            );
        }
        if !is_guid(&app.client_id) {
            self.report(
                &at(&["client_id"]),
                format!(
                    "'{}' is not a GUID; use the Application (client) ID from the app registration's \
                     Overview page",
                    app.client_id
                ),
            );
        }
        if app.client_secret.expose().is_empty() {
            self.report(
                &at(&["client_secret"]),
                format!(
                    "is empty; give the client secret's Value (inline, env:VAR, file:PATH or via {})",
                    app_env_var(&app.name, "client_secret")
                ),
            );
        }
        for (field, url) in [
            ("authority_url", &app.authority_url),
            ("graph_url", &app.graph_url),
        ] {
            let shown = redact_url(url.as_str());
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                self.report(&at(&[field]), format!("'{shown}' is not an http(s) URL"));
                continue;
            }
            let instead = format!(
                "give the app's secret as `client_secret` (or {})",
                app_env_var(&app.name, "client_secret")
            );
            if !self.refuse_credentials_in(&at(&[field]), url, &instead) {
                continue;
            }
            if url.query().is_some() || !url.path().trim_end_matches('/').is_empty() {
                self.report(
                    &at(&[field]),
                    format!(
                        "'{shown}' has a path or query; give the root only, e.g. {}",
                        if field == "graph_url" {
                            "https://graph.microsoft.com (or https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)"
                        } else {
                            "https://login.microsoftonline.com (or https://login.microsoftonline.us, https://login.chinacloudapi.cn)"
                        }
                    ),
                );
            } else {
                self.warn_plain_http(&at(&[field]), url);
            }
        }
        match &app.scope {
            Scope::Directory => {}
            Scope::EnterpriseApp { app_id, .. } => {
                if !is_guid(app_id) {
                    self.report(
                        &at(&["scope", "app_id"]),
                        format!(
                            "'{app_id}' is not a GUID; use the enterprise application's Application ID \
                             (Enterprise applications → the app → Properties)"
                        ),
                    );
                }
            }
            Scope::Groups { groups } => {
                if groups.is_empty() {
                    self.report(
                        &at(&["scope", "groups"]),
                        "names no group; list group display names or object ids, e.g. \
                         groups = [\"Jira Users\"], or use kind = \"directory\"",
                    );
                }
                for (j, g) in groups.iter().enumerate() {
                    if g.trim().is_empty() {
                        let mut p = at(&["scope", "groups"]);
                        p.push(Seg::Index(j));
                        self.report(&p, "is empty; give a group display name or object id");
                    }
                }
            }
        }
        for (j, name) in app.read_attributes.iter().enumerate() {
            if !is_attribute_name(name) {
                let mut p = at(&["read_attributes"]);
                p.push(Seg::Index(j));
                self.report(&p, attribute_hint(name));
            }
        }
        for (j, name) in app.targets.iter().enumerate() {
            if !targets.contains(name.as_str()) {
                let mut p = at(&["targets"]);
                p.push(Seg::Index(j));
                self.report(&p, unknown_target(name, targets));
            }
        }
        let fed: BTreeSet<&str> = if app.targets.is_empty() {
            targets.clone()
        } else {
            app.targets.iter().map(String::as_str).collect()
        };
        for (key, o) in &app.overrides {
            let p = at(&["overrides", key]);
            if !targets.contains(key.as_str()) {
                self.report(&p, unknown_target(key, targets));
            } else if !fed.contains(key.as_str()) {
                self.report(
                    &p,
                    format!(
                        "target '{key}' is not among this app's `targets` ({}); an override for it \
                         would never apply",
                        app.targets.join(", ")
                    ),
                );
            }
            if let Some(users) = &o.users {
                let mut up = p.clone();
                up.push(Seg::key("users"));
                self.check_user_rules(&up, users);
            }
            if let Some(groups) = &o.groups {
                let mut gp = p.clone();
                gp.push(Seg::key("groups"));
                self.check_group_rules(&gp, groups);
            }
        }
        self.check_user_rules(&at(&["users"]), &app.users);
        self.check_group_rules(&at(&["groups"]), &app.groups);
        let guard = &app.guard;
        if !(guard.max_deprovision_percent.is_finite()
            && (0.0..=100.0).contains(&guard.max_deprovision_percent))
        {
            self.report(
                &at(&["guard", "max_deprovision_percent"]),
                format!(
                    "{} is not a percentage; give a number from 0 to 100 (default 5)",
                    guard.max_deprovision_percent
                ),
            );
        }
        if !(guard.max_membership_removal_percent.is_finite()
            && (0.0..=100.0).contains(&guard.max_membership_removal_percent))
        {
            self.report(
                &at(&["guard", "max_membership_removal_percent"]),
                format!(
                    "{} is not a percentage; give a number from 0 to 100 (default 10)",
                    guard.max_membership_removal_percent
                ),
            );
        }
        // A held run must stay approvable for a while, and an approval must not outlive the
        // situation it was given for by weeks.
        const MAX_APPROVAL_MINUTES: u64 = 30 * 24 * 60;
        if !(1..=MAX_APPROVAL_MINUTES).contains(&guard.approval_expires_minutes) {
            self.report(
                &at(&["guard", "approval_expires_minutes"]),
                format!(
                    "{} is out of range; give a number of minutes from 1 to {MAX_APPROVAL_MINUTES} (30 days; default 1440, a day)",
                    guard.approval_expires_minutes
                ),
            );
        }
    }

    fn check_user_rules(&mut self, base: &[Seg], rules: &UserRules) {
        let at = |rest: &[&str]| {
            let mut p = base.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        if !is_attribute_name(&rules.username.attribute) {
            self.report(
                &at(&["username", "attribute"]),
                attribute_hint(&rules.username.attribute),
            );
        }
        for (j, name) in rules.username.fallback.iter().enumerate() {
            if !is_attribute_name(name) {
                let mut p = at(&["username", "fallback"]);
                p.push(Seg::Index(j));
                self.report(&p, attribute_hint(name));
            }
        }
        self.check_regexes(&at(&["username", "replace"]), &rules.username.replace);
        for (field, list) in [
            ("email", &rules.email),
            ("display_name", &rules.display_name),
        ] {
            if list.is_empty() {
                self.report(
                    &at(&[field]),
                    "names no attribute; list at least one, e.g. [\"mail\", \"userPrincipalName\"]",
                );
            }
            for (j, name) in list.iter().enumerate() {
                if !is_attribute_name(name) {
                    let mut p = at(&[field]);
                    p.push(Seg::Index(j));
                    self.report(&p, attribute_hint(name));
                }
            }
        }
        for (target_attr, source) in &rules.custom_attributes {
            if !is_attribute_name(source) {
                self.report(
                    &at(&["custom_attributes", target_attr]),
                    attribute_hint(source),
                );
            }
        }
        if !rules.delete {
            for (field, action) in [
                ("on_leave", rules.on_leave),
                ("on_disable", rules.on_disable),
            ] {
                if action == LeaveAction::Delete {
                    self.report(
                        &at(&[field]),
                        format!(
                            "is \"delete\" but `delete` is false; set `delete = true` in the same \
                             section to allow deleting accounts, or use {field} = \"deactivate\""
                        ),
                    );
                }
            }
        }
    }

    fn check_group_rules(&mut self, base: &[Seg], rules: &GroupRules) {
        let at = |rest: &[&str]| {
            let mut p = base.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        for (field, list) in [
            ("include", &rules.on_the_fly.include),
            ("exclude", &rules.on_the_fly.exclude),
        ] {
            for (j, pattern) in list.iter().enumerate() {
                if let Err(e) = regex::Regex::new(pattern) {
                    let mut p = at(&["on_the_fly", field]);
                    p.push(Seg::Index(j));
                    self.report(&p, regex_message(pattern, &e));
                }
            }
        }
        self.check_regexes(&at(&["on_the_fly", "rename"]), &rules.on_the_fly.rename);
        for (j, m) in rules.manual.iter().enumerate() {
            let mut p = at(&["manual"]);
            p.push(Seg::Index(j));
            if m.source.trim().is_empty() {
                let mut q = p.clone();
                q.push(Seg::key("source"));
                self.report(
                    &q,
                    "is empty; give the source group's display name or object id",
                );
            }
            if m.targets.is_empty() || m.targets.iter().any(|t| t.trim().is_empty()) {
                let mut q = p.clone();
                q.push(Seg::key("targets"));
                self.report(&q, "must list one or more non-empty target group names");
            }
        }
    }

    fn check_regexes(&mut self, base: &[Seg], list: &[RegexReplace]) {
        for (j, r) in list.iter().enumerate() {
            if let Err(e) = regex::Regex::new(&r.pattern) {
                let mut p = base.to_vec();
                p.push(Seg::Index(j));
                p.push(Seg::key("pattern"));
                self.report(&p, regex_message(&r.pattern, &e));
            }
        }
    }
}

/// `url` without user info, query and fragment, for messages: any of them may hold a secret.
pub use idsync_model::redact::redact_url;

/// Whether `url` points at this machine (`localhost`, 127.0.0.0/8, `::1`), where plain http
/// does not cross a network.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn regex_message(pattern: &str, e: &regex::Error) -> String {
    // The regex crate's message spans several lines with a caret; keep its last line (the
    // reason) so the problem stays on one line.
    let reason = e
        .to_string()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_owned();
    format!(
        "'{pattern}' is not a valid regular expression ({reason}); see https://docs.rs/regex/#syntax"
    )
}

fn unknown_target(name: &str, targets: &BTreeSet<&str>) -> String {
    if targets.is_empty() {
        format!("names target '{name}', but the file has no [[targets]]")
    } else {
        format!(
            "names target '{name}', which is not defined; defined targets: {}",
            targets.iter().copied().collect::<Vec<_>>().join(", ")
        )
    }
}

fn attribute_hint(name: &str) -> String {
    if name.starts_with("extension_") && name.contains('-') {
        return format!(
            "'{name}' is not a directory extension name: write the app id without hyphens, \
             extension_<appIdWithoutHyphens>_<name>"
        );
    }
    format!(
        "'{name}' is not a source attribute name; use a Graph user property such as \
         userPrincipalName, mail, employeeId, onPremisesSamAccountName, \
         onPremisesExtensionAttributes.extensionAttribute1 … 15, or extension_<appId>_<name>"
    )
}

/// A Graph property name, optionally one level nested (`onPremisesExtensionAttributes.x`).
pub fn is_attribute_name(name: &str) -> bool {
    let part = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((a, b)) => part(a) && part(b),
        None => part(name),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS name with at least two labels (`contoso.onmicrosoft.com`).
pub fn is_dns_name(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_parse_back_into_their_segments() {
        for field in [
            "apps[0].scope.groups[1]",
            "apps[2].overrides.jira-prod.users.default_project_lead",
            "targets[0].token",
            "data_dir",
        ] {
            assert_eq!(render_path(&parse_path(field)), field);
        }
        assert_eq!(
            parse_path("apps[0].scope.groups[1]"),
            vec![
                Seg::key("apps"),
                Seg::Index(0),
                Seg::key("scope"),
                Seg::key("groups"),
                Seg::Index(1),
            ]
        );
        // A bracket that holds no number is part of the key (an override named `a[b]`).
        assert_eq!(
            parse_path("apps[0].overrides.a[b]"),
            vec![
                Seg::key("apps"),
                Seg::Index(0),
                Seg::key("overrides"),
                Seg::key("a[b]"),
            ]
        );
    }
}
