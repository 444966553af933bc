//! A config made of the file's entries and entries kept elsewhere: the apps and targets
//! created through the admin API, which the store keeps. Together they get exactly the checks
//! the file alone gets (names unique, targets known, regexes, required fields per kind,
//! schedules...): the file's config is written out again as a TOML document, the other entries
//! are appended to its `[[apps]]` and `[[targets]]`, and the whole is loaded as a file is.

use std::path::Path;

use serde::Serialize;

use crate::load::{Env, parse_with_env};
use crate::problem::Problem;
use crate::schema::Config;

/// `base` (a config loaded from its file) with `apps` and `targets` appended, each the same
/// shape as one `[[apps]]` / `[[targets]]` entry (secrets inline: `env:` and `file:` are
/// resolved from nothing, so they do not resolve). Every problem names its field as the
/// loader does; the entries given here are `apps[base.apps.len() + i]` and
/// `targets[base.targets.len() + i]`.
///
/// `IDSYNC_*` variables are not applied again: `base` holds them already, and the entries
/// given here are changed where they are kept, not through the environment.
pub fn compose<A: Serialize, T: Serialize>(
    base: &Config,
    apps: &[A],
    targets: &[T],
) -> Result<Config, Vec<Problem>> {
    let mut doc = toml::Table::try_from(base)
        .map_err(|e| vec![Problem::new("", format!("cannot restate the config: {e}"))])?;
    restore_secrets(&mut doc, base);
    let mut problems = Vec::new();
    append(&mut doc, "apps", base.apps.len(), apps, &mut problems);
    append(
        &mut doc,
        "targets",
        base.targets.len(),
        targets,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    let text = toml::to_string(&doc)
        .map_err(|e| vec![Problem::new("", format!("cannot restate the config: {e}"))])?;
    // The name only appears in messages, which callers rebuild from the problems; lines point
    // into the document made here, which nobody can see, so they are dropped.
    match parse_with_env(&text, Path::new("idsync.toml"), &Env::new()) {
        Ok(mut config) => {
            // As the file's loader settled them (a relative `data_dir` from the environment
            // stays relative; the store is already open there).
            config.data_dir = base.data_dir.clone();
            config.store = base.store.clone();
            config.warnings = base.warnings.clone();
            Ok(config)
        }
        Err(e) => Err(e
            .problems()
            .iter()
            .map(|p| Problem {
                line: None,
                ..p.clone()
            })
            .collect()),
    }
}

/// `Secret` serializes without its value (so that a config can be shown); the document must
/// hold the values themselves to load again.
fn restore_secrets(doc: &mut toml::Table, base: &Config) {
    if let Some(toml::Value::Array(apps)) = doc.get_mut("apps") {
        for (entry, app) in apps.iter_mut().zip(&base.apps) {
            if let Some(t) = entry.as_table_mut() {
                t.insert(
                    "client_secret".into(),
                    toml::Value::String(app.client_secret.expose().to_owned()),
                );
            }
        }
    }
    if let Some(toml::Value::Array(targets)) = doc.get_mut("targets") {
        for (entry, target) in targets.iter_mut().zip(&base.targets) {
            let Some(t) = entry.as_table_mut() else {
                continue;
            };
            for (field, secret) in [("token", &target.token), ("password", &target.password)] {
                if let Some(secret) = secret {
                    t.insert(
                        field.into(),
                        toml::Value::String(secret.expose().to_owned()),
                    );
                }
            }
        }
    }
}

fn append<E: Serialize>(
    doc: &mut toml::Table,
    list: &str,
    first: usize,
    entries: &[E],
    problems: &mut Vec<Problem>,
) {
    if entries.is_empty() {
        return;
    }
    let array = doc
        .entry(list)
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(array) = array else {
        problems.push(Problem::new(list, "must be an array of tables"));
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        match toml::Value::try_from(entry) {
            Ok(value @ toml::Value::Table(_)) => array.push(value),
            Ok(_) => problems.push(Problem::new(
                format!("{list}[{}]", first + i),
                "must be a table (a JSON object)",
            )),
            Err(e) => problems.push(Problem::new(
                format!("{list}[{}]", first + i),
                format!("cannot be written as TOML: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let text = r#"
data_dir = "/var/lib/idsync"

[[apps]]
name = "main"
kind = "entra"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "env:SECRET"
schedule = "30m"

[apps.users.username]
replace = [{ pattern = "^x", with = "y" }]

[[targets]]
name = "jira"
kind = "jira-dc"
base_url = "https://jira.example.com"
token = "file-token"
"#;
        let env = Env::from([("SECRET".to_owned(), "from-env".to_owned())]);
        parse_with_env(text, Path::new("/etc/idsync/idsync.toml"), &env).expect("loads")
    }

    #[derive(Serialize)]
    struct Entry<'a> {
        name: &'a str,
        kind: &'a str,
        base_url: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
    }

    #[test]
    fn the_file_loads_again_with_its_secrets_and_entries_are_appended() {
        let base = base();
        let extra = Entry {
            name: "confluence",
            kind: "confluence-dc",
            base_url: "https://wiki.example.com",
            token: Some("api-token"),
        };
        let none: &[Entry<'_>] = &[];
        let config = compose(&base, none, &[extra]).expect("valid");
        assert_eq!(config.apps[0].client_secret.expose(), "from-env");
        assert_eq!(
            config.apps[0].schedule.as_ref().map(|s| s.to_string()),
            Some("30m".into())
        );
        assert_eq!(config.apps[0].users, base.apps[0].users);
        assert_eq!(config.data_dir, base.data_dir);
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["jira", "confluence"]);
        assert_eq!(
            config.targets[1].token.as_ref().map(|t| t.expose()),
            Some("api-token")
        );
    }

    #[test]
    fn problems_of_appended_entries_name_their_field() {
        let base = base();
        let clash = Entry {
            name: "jira",
            kind: "jira-dc",
            base_url: "https://other.example.com",
            token: Some("t"),
        };
        let none: &[Entry<'_>] = &[];
        let problems = compose(&base, none, &[clash]).expect_err("a second jira");
        assert!(
            problems.iter().any(|p| p.field == "targets[1].name"),
            "{problems:?}"
        );
        let no_credentials = Entry {
            name: "wiki",
            kind: "confluence-dc",
            base_url: "https://wiki.example.com",
            token: None,
        };
        let problems = compose(&base, none, &[no_credentials]).expect_err("no credentials");
        assert!(
            problems
                .iter()
                .all(|p| p.field.starts_with("targets[1]") && p.line.is_none()),
            "{problems:?}"
        );
        let bad_kind = Entry {
            name: "wiki",
            kind: "sharepoint",
            base_url: "https://wiki.example.com",
            token: Some("t"),
        };
        let problems = compose(&base, none, &[bad_kind]).expect_err("unknown kind");
        assert_eq!(problems[0].field, "targets[1].kind", "{problems:?}");
    }
}
