//! The config in force: the file's apps and targets, and those created through the admin API,
//! which the store keeps (their secrets sealed, see [`idsync_store::sealed`]). Every change
//! through the API is checked together with everything else, exactly as the file alone is
//! checked ([`idsync_config::compose`]), then stored, then published: the coordinator takes
//! the config in force at the start of each run, the scheduler follows the apps and their
//! schedules, and the API answers from it.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use idsync_config::{Config, Problem};
use idsync_store::sealed::{KeySource, SealError, SecretKey, is_sealed};
use idsync_store::{EntryKind, Store, StoreError};
use serde_json::Value;
use tokio::sync::watch;

/// Shown in place of every secret: the API never returns one. Given back in a `PUT`, it keeps
/// the secret stored, so that a console can send back what it read.
pub const MASKED: &str = "********";

/// The secret fields of an entry of each kind: sealed in the store, masked in answers.
pub fn secret_fields(kind: EntryKind) -> &'static [&'static str] {
    match kind {
        EntryKind::App => &["client_secret"],
        EntryKind::Target => &["token", "password"],
    }
}

/// The fields of an entry of each kind that say where its secrets are sent. A secret kept
/// through [`MASKED`] is kept only while these stay as they were: otherwise a caller who may
/// not read the secret could point the entry at a server of theirs and have it sent there.
fn secret_destination_fields(kind: EntryKind) -> &'static [&'static str] {
    match kind {
        EntryKind::App => &[
            "kind",
            "tenant_id",
            "client_id",
            "authority_url",
            "graph_url",
        ],
        EntryKind::Target => &["kind", "base_url", "username"],
    }
}

/// Where an app or target is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The config file: changed there.
    File,
    /// The admin API: kept in the store.
    Api,
}

impl Provisioned {
    /// As the API and the messages name it (`app`, `target`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioned::File => "file",
            Provisioned::Api => "api",
        }
    }
}

/// Why a change through the API was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("there is no {} {name:?}; GET /api/v1/{}s lists them", kind.as_str(), kind.as_str())]
    /// There is no such entry.
    NotFound {
        /// App or target.
        kind: EntryKind,
        /// The name asked for.
        name: String,
    },
    #[error("{} {name:?} is provisioned from the config file", kind.as_str())]
    /// The entry comes from the config file: change it there.
    ProvisionedByFile {
        /// App or target.
        kind: EntryKind,
        /// The entry's name.
        name: String,
    },
    #[error("{message}")]
    /// The name is used already (by the file or the API).
    NameTaken {
        /// Which name, and where it is used.
        message: String,
    },
    #[error("{message}")]
    /// An app still feeds the target.
    InUse {
        /// Which apps feed it.
        message: String,
    },
    /// The entry (or what it would make of the config) does not pass the checks.
    #[error("{message}")]
    Invalid {
        /// The field at fault, inside the entry.
        field: Option<String>,
        /// What the config check said.
        message: String,
    },
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
    #[error(transparent)]
    /// A secret could not be sealed or opened (the key).
    Seal(#[from] SealError),
}

/// One entry created through the API.
struct Entry {
    name: String,
    /// As given, secrets in plain text: what is composed with the file's config. Never logged
    /// or returned (see [`Entry::masked`]).
    body: Value,
}

impl Entry {
    fn masked(&self, kind: EntryKind) -> Value {
        let mut body = self.body.clone();
        if let Some(object) = body.as_object_mut() {
            for field in secret_fields(kind) {
                if let Some(value) = object.get_mut(*field) {
                    *value = Value::String(MASKED.into());
                }
            }
        }
        body
    }
}

#[derive(Default)]
struct Entries {
    apps: Vec<Entry>,
    targets: Vec<Entry>,
}

impl Entries {
    fn list(&self, kind: EntryKind) -> &Vec<Entry> {
        match kind {
            EntryKind::App => &self.apps,
            EntryKind::Target => &self.targets,
        }
    }

    fn list_mut(&mut self, kind: EntryKind) -> &mut Vec<Entry> {
        match kind {
            EntryKind::App => &mut self.apps,
            EntryKind::Target => &mut self.targets,
        }
    }

    fn position(&self, kind: EntryKind, name: &str) -> Option<usize> {
        self.list(kind).iter().position(|e| e.name == name)
    }
}

/// The config in force, and the changes the API makes to it. Cheap to clone.
#[derive(Clone)]
pub struct LiveConfig {
    inner: Arc<Inner>,
}

struct Inner {
    file: Arc<Config>,
    store: Store,
    key_source: KeySource,
    /// Loaded when first needed: at start when the store holds sealed secrets, else at the
    /// first secret sealed.
    key: Mutex<Option<Arc<SecretKey>>>,
    current: watch::Sender<Arc<Config>>,
    /// The API's entries; held for the whole of a change, so that changes take turns.
    entries: tokio::sync::Mutex<Entries>,
}

impl LiveConfig {
    /// The file's config with the entries the store keeps. Their secrets need the key: a
    /// missing or wrong one is an error that says where the key was looked for and what to do.
    pub async fn load(
        file: Arc<Config>,
        store: Store,
        key_source: KeySource,
    ) -> anyhow::Result<LiveConfig> {
        let stored = store.api_entries().await?;
        let mut entries = Entries::default();
        let mut key = None;
        if !stored.is_empty() {
            let opener = Arc::new(key_source.load().with_context(
                || "cannot read the apps and targets created through the admin API",
            )?);
            for entry in stored {
                let body = open_secrets(&opener, entry.kind, &entry.name, entry.body)
                    .context("cannot read the apps and targets created through the admin API")?;
                entries.list_mut(entry.kind).push(Entry {
                    name: entry.name,
                    body,
                });
            }
            key = Some(opener);
        } else if !matches!(key_source, KeySource::DataDir(_)) {
            // A key given by the administrator is checked now, not at the first secret stored
            // through the API: a typo in it should stop the start, not a request weeks later.
            key = Some(Arc::new(key_source.load().context(
                "cannot use the key for the secrets of apps and targets created through the admin API",
            )?));
        }
        let config = compose(&file, &entries).map_err(|problems| {
            anyhow::anyhow!(
                "the apps and targets created through the admin API no longer fit the config file: {}. Change the file so that they fit again (a name the file now uses too, a target it no longer has)",
                describe_all(&file, &entries, &problems)
            )
        })?;
        Ok(LiveConfig {
            inner: Arc::new(Inner {
                file,
                store,
                key_source,
                key: Mutex::new(key),
                current: watch::Sender::new(Arc::new(config)),
                entries: tokio::sync::Mutex::new(entries),
            }),
        })
    }

    /// The config in force now.
    pub fn current(&self) -> Arc<Config> {
        self.inner.current.borrow().clone()
    }

    /// The config in force, and every change to it.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.current.subscribe()
    }

    /// Where the app or target `name` is defined; `None` when it is not.
    pub fn provisioned(&self, kind: EntryKind, name: &str) -> Option<Provisioned> {
        let file = &self.inner.file;
        let in_file = match kind {
            EntryKind::App => file.app(name).is_some(),
            EntryKind::Target => file.target(name).is_some(),
        };
        if in_file {
            return Some(Provisioned::File);
        }
        let current = self.current();
        let in_current = match kind {
            EntryKind::App => current.app(name).is_some(),
            EntryKind::Target => current.target(name).is_some(),
        };
        in_current.then_some(Provisioned::Api)
    }

    /// The entry as it was given through the API, secrets masked.
    pub async fn entry(&self, kind: EntryKind, name: &str) -> Option<Value> {
        let entries = self.inner.entries.lock().await;
        entries
            .list(kind)
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.masked(kind))
    }

    /// Creates an entry; its name, from the body.
    pub async fn create(&self, kind: EntryKind, body: Value) -> Result<String, ChangeError> {
        let mut entries = self.inner.entries.lock().await;
        let body = prepare(kind, None, body, None)?;
        let name = entry_name(&body);
        if self.in_file(kind, &name) {
            return Err(ChangeError::NameTaken {
                message: format!(
                    "the config file already has a {} named {name:?}; choose another name",
                    kind.as_str()
                ),
            });
        }
        if entries.position(kind, &name).is_some() {
            return Err(ChangeError::NameTaken {
                message: format!(
                    "{} {name:?} exists already; PUT /api/v1/{}s/{name} changes it",
                    kind.as_str(),
                    kind.as_str()
                ),
            });
        }
        entries.list_mut(kind).push(Entry {
            name: name.clone(),
            body,
        });
        let result = self.commit(&entries, kind, &name).await;
        if result.is_err() {
            entries.list_mut(kind).pop();
        }
        result?;
        tracing::info!(kind = kind.as_str(), name, "created through the admin API");
        Ok(name)
    }

    /// Replaces an entry created through the API with `body` (a secret given as
    /// [`MASKED`] keeps the stored one).
    pub async fn replace(
        &self,
        kind: EntryKind,
        name: &str,
        body: Value,
    ) -> Result<(), ChangeError> {
        let mut entries = self.inner.entries.lock().await;
        let at = self.existing(&entries, kind, name)?;
        let body = prepare(kind, Some(name), body, Some(&entries.list(kind)[at].body))?;
        let previous = std::mem::replace(&mut entries.list_mut(kind)[at].body, body);
        let result = self.commit(&entries, kind, name).await;
        if result.is_err() {
            entries.list_mut(kind)[at].body = previous;
        }
        result?;
        tracing::info!(kind = kind.as_str(), name, "changed through the admin API");
        Ok(())
    }

    /// Deletes an entry created through the API. A target that an app names is kept: the app
    /// is changed (or deleted) first. An app's history stays.
    pub async fn delete(&self, kind: EntryKind, name: &str) -> Result<(), ChangeError> {
        let mut entries = self.inner.entries.lock().await;
        let at = self.existing(&entries, kind, name)?;
        if kind == EntryKind::Target {
            let current = self.current();
            let feeding: Vec<&str> = current
                .apps
                .iter()
                .filter(|a| a.targets.iter().any(|t| t == name) || a.overrides.contains_key(name))
                .map(|a| a.name.as_str())
                .collect();
            if !feeding.is_empty() {
                return Err(ChangeError::InUse {
                    message: format!(
                        "target {name:?} is fed by app{} {}: remove it from their `targets` (and `overrides`) first",
                        if feeding.len() > 1 { "s" } else { "" },
                        feeding
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let removed = entries.list_mut(kind).remove(at);
        let config = match compose(&self.inner.file, &entries) {
            Ok(config) => config,
            Err(problems) => {
                let message = describe_all(&self.inner.file, &entries, &problems);
                entries.list_mut(kind).insert(at, removed);
                return Err(ChangeError::InUse {
                    message: format!(
                        "without {} {name:?} the config would not be valid: {message}",
                        kind.as_str()
                    ),
                });
            }
        };
        if let Err(e) = self.inner.store.delete_api_entry(kind, name).await {
            entries.list_mut(kind).insert(at, removed);
            return Err(e.into());
        }
        self.inner.current.send_replace(Arc::new(config));
        tracing::info!(kind = kind.as_str(), name, "deleted through the admin API");
        Ok(())
    }

    fn in_file(&self, kind: EntryKind, name: &str) -> bool {
        match kind {
            EntryKind::App => self.inner.file.app(name).is_some(),
            EntryKind::Target => self.inner.file.target(name).is_some(),
        }
    }

    fn existing(
        &self,
        entries: &Entries,
        kind: EntryKind,
        name: &str,
    ) -> Result<usize, ChangeError> {
        if self.in_file(kind, name) {
            return Err(ChangeError::ProvisionedByFile {
                kind,
                name: name.to_owned(),
            });
        }
        entries
            .position(kind, name)
            .ok_or_else(|| ChangeError::NotFound {
                kind,
                name: name.to_owned(),
            })
    }

    /// Checks the entries with the file's config, stores the one changed (`kind`, `name`) and
    /// publishes the result.
    async fn commit(
        &self,
        entries: &Entries,
        kind: EntryKind,
        name: &str,
    ) -> Result<(), ChangeError> {
        let config = compose(&self.inner.file, entries)
            .map_err(|problems| invalid(&self.inner.file, entries, &problems, kind, name))?;
        let entry = entries
            .list(kind)
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ChangeError::NotFound {
                kind,
                name: name.to_owned(),
            })?;
        let key = self.sealing_key()?;
        let sealed = seal_secrets(&key, kind, name, &entry.body)?;
        self.inner.store.put_api_entry(kind, name, &sealed).await?;
        self.inner.current.send_replace(Arc::new(config));
        Ok(())
    }

    fn sealing_key(&self) -> Result<Arc<SecretKey>, SealError> {
        let mut key = self.inner.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = key.as_ref() {
            return Ok(Arc::clone(key));
        }
        let loaded = Arc::new(self.inner.key_source.load_or_create()?);
        *key = Some(Arc::clone(&loaded));
        Ok(loaded)
    }
}

/// `kind:name:field`: what a sealed value is bound to.
fn sealed_as(kind: EntryKind, name: &str, field: &str) -> String {
    format!("{}:{name}:{field}", kind.as_str())
}

fn seal_secrets(
    key: &SecretKey,
    kind: EntryKind,
    name: &str,
    body: &Value,
) -> Result<Value, SealError> {
    let mut sealed = body.clone();
    if let Some(object) = sealed.as_object_mut() {
        for field in secret_fields(kind) {
            if let Some(Value::String(secret)) = object.get_mut(*field) {
                *secret = key.seal(&sealed_as(kind, name, field), secret)?;
            }
        }
    }
    Ok(sealed)
}

fn open_secrets(
    key: &SecretKey,
    kind: EntryKind,
    name: &str,
    mut body: Value,
) -> Result<Value, SealError> {
    if let Some(object) = body.as_object_mut() {
        for field in secret_fields(kind) {
            if let Some(Value::String(sealed)) = object.get_mut(*field) {
                let what = sealed_as(kind, name, field);
                if !is_sealed(sealed) {
                    return Err(SealError::Malformed { what });
                }
                *sealed = key.open(&what, sealed)?;
            }
        }
    }
    Ok(body)
}

/// The longest name an entry created through the API may have.
const MAX_NAME: usize = 64;

/// An entry as given in a request, made ready to check and keep: a JSON object, `null` taken
/// as absent, the name checked (and on a `PUT`, taken from the path), secrets inline.
fn prepare(
    kind: EntryKind,
    path_name: Option<&str>,
    body: Value,
    previous: Option<&Value>,
) -> Result<Value, ChangeError> {
    let refuse = |field: &str, message: String| ChangeError::Invalid {
        field: Some(field.to_owned()),
        message: format!("{field}: {message}"),
    };
    let Value::Object(mut object) = drop_nulls(body) else {
        return Err(ChangeError::Invalid {
            field: None,
            message: format!(
                "the body must be a JSON object: one {} as a [[{}s]] entry of the config file has it",
                kind.as_str(),
                kind.as_str()
            ),
        });
    };
    match (object.get("name"), path_name) {
        (None, Some(name)) => {
            object.insert("name".into(), Value::String(name.to_owned()));
        }
        (Some(Value::String(given)), Some(name)) if given != name => {
            return Err(refuse(
                "name",
                format!(
                    "is {given:?}, but this is {} {name:?}: an entry cannot be renamed (create the new one, then delete this one)",
                    kind.as_str()
                ),
            ));
        }
        (None, None) => return Err(refuse("name", "is missing".into())),
        (Some(Value::String(given)), None) if !is_api_name(given) => {
            return Err(refuse(
                "name",
                format!(
                    "{given:?} cannot be used through the API: names of entries created here are 1 to {MAX_NAME} characters, letters, digits, '.', '_' and '-', starting with a letter or digit (they are parts of URLs)"
                ),
            ));
        }
        (Some(Value::String(_)), _) => {}
        (Some(_), _) => return Err(refuse("name", "must be a string".into())),
    }
    for field in secret_fields(kind) {
        let Some(Value::String(secret)) = object.get(*field) else {
            continue;
        };
        if secret == MASKED {
            let kept = previous
                .and_then(|p| p.get(*field))
                .filter(|v| v.is_string())
                .cloned();
            let moved = secret_destination_fields(kind)
                .iter()
                .find(|f| previous.is_some_and(|p| p.get(**f) != object.get(**f)));
            if let Some(moved) = moved {
                return Err(refuse(
                    field,
                    format!(
                        "{MASKED} keeps the stored secret only while {moved} stays as it is; {moved} changes, so give the secret again (a kept secret is never sent somewhere new)"
                    ),
                ));
            }
            match kept {
                Some(kept) => {
                    object.insert((*field).to_owned(), kept);
                }
                None => {
                    return Err(refuse(
                        field,
                        format!(
                            "{MASKED} keeps the stored secret, but there is none: give the secret itself"
                        ),
                    ));
                }
            }
        } else if secret.starts_with("env:") || secret.starts_with("file:") {
            return Err(refuse(
                field,
                "env: and file: references are for the config file only: through the API they would let a caller read the service's environment variables and files (and send them wherever the entry points). Give the secret itself; it is stored encrypted".into(),
            ));
        }
    }
    Ok(Value::Object(object))
}

fn is_api_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn entry_name(body: &Value) -> String {
    body.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// JSON `null` means absent (TOML has no null), in objects at any depth.
fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

fn compose(file: &Config, entries: &Entries) -> Result<Config, Vec<Problem>> {
    let bodies = |list: &Vec<Entry>| list.iter().map(|e| e.body.clone()).collect::<Vec<_>>();
    idsync_config::compose(file, &bodies(&entries.apps), &bodies(&entries.targets))
}

/// Which entry a problem's field is in, and the field within it: `apps[3].users.email` →
/// (app, its name, where it is defined, `users.email`).
fn locate<'a>(
    file: &'a Config,
    entries: &'a Entries,
    field: &'a str,
) -> Option<(EntryKind, &'a str, Provisioned, &'a str)> {
    for (list, kind) in [("apps", EntryKind::App), ("targets", EntryKind::Target)] {
        let Some(rest) = field.strip_prefix(list).and_then(|r| r.strip_prefix('[')) else {
            continue;
        };
        let (index, rest) = rest.split_once(']')?;
        let index: usize = index.parse().ok()?;
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        let in_file = match kind {
            EntryKind::App => file.apps.len(),
            EntryKind::Target => file.targets.len(),
        };
        let (name, provisioned) = if index < in_file {
            let name = match kind {
                EntryKind::App => file.apps[index].name.as_str(),
                EntryKind::Target => file.targets[index].name.as_str(),
            };
            (name, Provisioned::File)
        } else {
            let entry = entries.list(kind).get(index - in_file)?;
            (entry.name.as_str(), Provisioned::Api)
        };
        return Some((kind, name, provisioned, rest));
    }
    None
}

/// The field a problem names: its own, or the one a "missing field `x`" message names.
fn field_of<'a>(rest: &'a str, message: &'a str) -> &'a str {
    if rest.is_empty()
        && let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
    {
        return missing;
    }
    rest
}

fn describe(file: &Config, entries: &Entries, problem: &Problem) -> String {
    match locate(file, entries, &problem.field) {
        Some((kind, name, provisioned, rest)) => {
            let place = match provisioned {
                Provisioned::File => "in the config file",
                Provisioned::Api => "created through the API",
            };
            let field = field_of(rest, &problem.message);
            if field.is_empty() {
                format!("{} {name:?} ({place}): {}", kind.as_str(), problem.message)
            } else {
                format!(
                    "{} {name:?} ({place}): {field}: {}",
                    kind.as_str(),
                    problem.message
                )
            }
        }
        None => problem.to_string(),
    }
}

fn describe_all(file: &Config, entries: &Entries, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| describe(file, entries, p))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The problems of a change, told from the changed entry's side: `field` is the first of its
/// own fields with a problem (`users.username.replace[0].pattern`), the message tells every
/// problem.
fn invalid(
    file: &Config,
    entries: &Entries,
    problems: &[Problem],
    kind: EntryKind,
    name: &str,
) -> ChangeError {
    let mut field = None;
    let mut messages = Vec::new();
    for problem in problems {
        match locate(file, entries, &problem.field) {
            Some((k, n, Provisioned::Api, rest)) if k == kind && n == name => {
                let own = field_of(rest, &problem.message);
                if field.is_none() && !own.is_empty() {
                    field = Some(own.to_owned());
                }
                messages.push(if own.is_empty() {
                    problem.message.clone()
                } else {
                    format!("{own}: {}", problem.message)
                });
            }
            _ => messages.push(describe(file, entries, problem)),
        }
    }
    ChangeError::Invalid {
        field,
        message: messages.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_nulls_and_secret_references_are_checked_before_anything_else() {
        let ok = prepare(
            EntryKind::Target,
            None,
            json!({"name": "jira-2", "token": "t", "max_requests_per_second": null}),
            None,
        )
        .expect("fine");
        assert!(ok.get("max_requests_per_second").is_none());
        for (body, field) in [
            (json!({"name": "a/b"}), "name"),
            (json!({"kind": "jira-dc"}), "name"),
            (json!({"name": "x", "token": "env:HOME"}), "token"),
            (
                json!({"name": "x", "password": "file:/etc/shadow"}),
                "password",
            ),
            (json!({"name": "x", "token": MASKED}), "token"),
        ] {
            match prepare(EntryKind::Target, None, body.clone(), None) {
                Err(ChangeError::Invalid { field: Some(f), .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let kept = prepare(
            EntryKind::App,
            Some("main"),
            json!({"client_secret": MASKED}),
            Some(&json!({"client_secret": "old"})),
        )
        .expect("kept");
        assert_eq!(kept, json!({"name": "main", "client_secret": "old"}));
        assert!(matches!(
            prepare(EntryKind::App, Some("main"), json!({"name": "other"}), None),
            Err(ChangeError::Invalid { .. })
        ));
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field_of("", "missing field `client_id`"), "client_id");
        assert_eq!(field_of("users.email", "whatever"), "users.email");
    }
}
