//! The environment over the file: `IDSYNC_*` variables set fields of the parsed document before
//! it is deserialized, and remember where they did, so that a problem with such a value names
//! the variable instead of a line (see the table in [`crate::load`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::locate::Seg;
use crate::problem::Problem;

/// Environment variables by name (an explicit value so that tests need not touch the process
/// environment).
pub type Env = BTreeMap<String, String>;

/// The process environment (variables that are not valid Unicode are left out).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

pub(crate) const APP_FIELDS: &[&str] = &[
    "TENANT_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "AUTHORITY_URL",
    "GRAPH_URL",
];
pub(crate) const TARGET_FIELDS: &[&str] = &["BASE_URL", "TOKEN", "USERNAME", "PASSWORD"];

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
pub(crate) struct Overrides {
    /// span start → (field path, variable)
    pub(crate) by_span: BTreeMap<usize, (String, String)>,
    /// field path → variable
    pub(crate) by_path: BTreeMap<String, String>,
}

impl Overrides {
    pub(crate) fn at(&self, offset: usize) -> Option<&(String, String)> {
        self.by_span.get(&offset)
    }

    pub(crate) fn apply(
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

pub(crate) fn env_problem(var: &str, message: String) -> Problem {
    Problem {
        field: String::new(),
        line: None,
        env_var: Some(var.to_owned()),
        message,
    }
}

/// For `IDSYNC_APP_<NAME>_<FIELD>`: which `[[apps]]` entry and which field `rest`
/// (`<NAME>_<FIELD>`) means.
pub(crate) fn find_named(
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
pub(crate) fn set_string(
    root: &mut DeTable<'_>,
    path: &[Seg],
    value: String,
    span: Range<usize>,
) -> bool {
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
pub(crate) fn set_in_array(
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
