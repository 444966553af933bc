//! PatchOp (RFC 7644 §3.5.2): parsing operations and attribute paths, and applying one
//! operation to a User document. Group operations are applied in `groups.rs`, which reuses the
//! parsing.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::resource::{find_key, get_ci};
use super::{
    ATLASSIAN_SCHEMA, ENTERPRISE_SCHEMA, PATCH_SCHEMA, USER_SCHEMA, body_object, err,
    invalid_syntax, invalid_value,
};

#[derive(Debug)]
pub(super) struct PatchOp {
    pub(super) op: String,
    pub(super) path: Option<String>,
    pub(super) value: Option<Value>,
}

pub(super) fn patch_operations(body: &Bytes) -> Result<Vec<PatchOp>, Response> {
    let doc = body_object(body)?;
    if let Some(Value::Array(schemas)) = get_ci(&doc, "schemas")
        && !schemas.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA))
    {
        return Err(invalid_syntax(format!(
            "schemas must contain {PATCH_SCHEMA}"
        )));
    }
    // Atlassian's wire format is `Operations`; attribute names are case-insensitive in SCIM,
    // so `operations` (as the jira.js client sends it) is accepted too.
    let Some(Value::Array(ops)) = get_ci(&doc, "Operations") else {
        return Err(invalid_syntax("Operations is required"));
    };
    ops.iter()
        .map(|op| {
            let Value::Object(op) = op else {
                return Err(invalid_syntax("each operation must be an object"));
            };
            let name = get_ci(op, "op")
                .and_then(Value::as_str)
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| matches!(s.as_str(), "add" | "replace" | "remove"))
                .ok_or_else(|| invalid_syntax("op must be add, replace or remove"))?;
            let path = match get_ci(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
                Some(_) => return Err(invalid_path("path must be a non-empty string")),
            };
            let value = get_ci(op, "value").cloned();
            if name != "remove" && value.is_none() {
                return Err(invalid_syntax(format!("{name} requires a value")));
            }
            if name == "remove" && path.is_none() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    Some("noTarget"),
                    "remove requires a path",
                ));
            }
            Ok(PatchOp {
                op: name,
                path,
                value,
            })
        })
        .collect()
}

pub(super) fn invalid_path(detail: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
}

/// A parsed attribute path: `attr`, `attr.sub`, `attr[f eq "v"]`, `attr[f eq "v"].sub`, each
/// optionally inside an extension URN (`urn:...:User:attr`).
pub(super) struct AttrPath {
    pub(super) container: Option<String>,
    pub(super) attr: String,
    pub(super) filter: Option<(String, String)>,
    pub(super) sub: Option<String>,
}

pub(super) fn parse_path(path: &str) -> Result<AttrPath, Response> {
    let mut container = None;
    let mut rest = path;
    if path.to_ascii_lowercase().starts_with("urn:") {
        // The whole extension object, e.g. `urn:...:enterprise:2.0:User` with an object value.
        if [ENTERPRISE_SCHEMA, ATLASSIAN_SCHEMA]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(path))
        {
            return Ok(AttrPath {
                container: None,
                attr: path.to_owned(),
                filter: None,
                sub: None,
            });
        }
        let known = [ENTERPRISE_SCHEMA, ATLASSIAN_SCHEMA, USER_SCHEMA];
        let schema = known
            .iter()
            .find(|s| {
                path.len() > s.len()
                    && path[..s.len()].eq_ignore_ascii_case(s)
                    && path.as_bytes()[s.len()] == b':'
            })
            .ok_or_else(|| invalid_path(format!("Unsupported path {path}")))?;
        rest = &path[schema.len() + 1..];
        if *schema != USER_SCHEMA {
            container = Some((*schema).to_owned());
        }
    }
    let (head, sub_after_filter) = match rest.find('[') {
        Some(open) => {
            let close = rest
                .find(']')
                .filter(|c| *c > open)
                .ok_or_else(|| invalid_path(format!("Unbalanced filter in {path}")))?;
            let attr = &rest[..open];
            let filter = &rest[open + 1..close];
            let after = &rest[close + 1..];
            let sub = match after.strip_prefix('.') {
                Some(s) if !s.is_empty() => Some(s.to_owned()),
                None if after.is_empty() => None,
                _ => return Err(invalid_path(format!("Unsupported path {path}"))),
            };
            let parsed = parse_value_filter(filter)
                .ok_or_else(|| invalid_path(format!("Unsupported filter in path {path}")))?;
            return Ok(AttrPath {
                container,
                attr: attr.to_owned(),
                filter: Some(parsed),
                sub,
            });
        }
        None => match rest.split_once('.') {
            Some((a, s)) => (a, Some(s.to_owned())),
            None => (rest, None),
        },
    };
    if head.is_empty() {
        return Err(invalid_path(format!("Unsupported path {path}")));
    }
    Ok(AttrPath {
        container,
        attr: head.to_owned(),
        filter: None,
        sub: sub_after_filter,
    })
}

/// `value eq "x"` inside a path filter.
fn parse_value_filter(filter: &str) -> Option<(String, String)> {
    let mut parts = filter.trim().splitn(3, char::is_whitespace);
    let attr = parts.next()?.to_owned();
    let op = parts.next()?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value = parts.next()?.trim();
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let value: String = serde_json::from_str(&format!("\"{inner}\"")).ok()?;
    Some((attr, value))
}

fn set_ci(map: &mut Map<String, Value>, name: &str, value: Value) {
    let key = find_key(map, name).unwrap_or_else(|| name.to_owned());
    map.insert(key, value);
}

fn remove_ci(map: &mut Map<String, Value>, name: &str) {
    if let Some(key) = find_key(map, name) {
        map.remove(&key);
    }
}

/// add/replace one attribute: `add` appends to multi-valued attributes, `replace` overwrites.
fn put_value(map: &mut Map<String, Value>, name: &str, value: Value, add: bool) {
    if add
        && let (Some(key), Value::Array(new)) = (find_key(map, name), &value)
        && let Some(Value::Array(existing)) = map.get_mut(&key)
    {
        for item in new {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
        return;
    }
    if let (Some(key), Value::Object(new)) = (find_key(map, name), &value)
        && let Some(Value::Object(existing)) = map.get_mut(&key)
        && (add || name.starts_with("urn:"))
    {
        // Complex attributes and extension objects merge sub-attribute by sub-attribute.
        for (k, v) in new {
            set_ci(existing, k, v.clone());
        }
        return;
    }
    set_ci(map, name, value);
}

/// How a user's `userName` changes: PUT with the new name (Atlassian replaces a user attribute
/// by attribute, and `userName` is "required during user creation or modification"), or a PATCH
/// `replace` whose path is `userName`, as Microsoft's provisioning service sends it ("Update User
/// [Single-valued properties]" in
/// https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups,
/// the requests its Atlassian Cloud connector makes; Atlassian is silent on PATCH forms beyond
/// pointing at ServiceProviderConfig). [U] Any other PATCH of `userName` (`add`, `remove`, or
/// inside a value without path) is refused with 400 `invalidPath`.
fn user_name_refused(how: &str) -> Response {
    invalid_path(format!(
        "userName cannot be changed by {how}: use op replace with path userName, or PUT the user"
    ))
}

/// The object under `name` in `map` (found case-insensitively), created empty, or replacing a
/// value that is no object, when missing.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    let key = find_key(map, name).unwrap_or_else(|| name.to_owned());
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

pub(super) fn apply_op(doc: &mut Map<String, Value>, op: &PatchOp) -> Result<(), Response> {
    let add = op.op == "add";
    let Some(path) = &op.path else {
        // No path: the value is a partial resource.
        let Some(Value::Object(values)) = &op.value else {
            return Err(invalid_value("a patch without path needs an object value"));
        };
        if find_key(values, "userName").is_some() {
            return Err(user_name_refused(&format!("{} without path", op.op)));
        }
        for (k, v) in values {
            put_value(doc, k, v.clone(), add);
        }
        return Ok(());
    };
    let parsed = parse_path(path)?;
    if parsed.container.is_none() && parsed.attr.eq_ignore_ascii_case("userName") {
        match (op.op.as_str(), &parsed.filter, &parsed.sub, &op.value) {
            ("replace", None, None, Some(Value::String(_))) => {}
            ("replace", None, None, _) => return Err(invalid_value("userName must be a string")),
            _ => return Err(user_name_refused(&format!("{} on path {path}", op.op))),
        }
    }
    let target: &mut Map<String, Value> = match &parsed.container {
        Some(urn) => object_entry(doc, urn)
            .ok_or_else(|| invalid_path(format!("Unsupported path {path}")))?,
        None => doc,
    };
    match (&parsed.filter, &parsed.sub) {
        (None, None) => match &op.value {
            _ if op.op == "remove" => remove_ci(target, &parsed.attr),
            Some(value) => put_value(target, &parsed.attr, value.clone(), add),
            None => {}
        },
        (None, Some(sub)) => {
            if op.op == "remove" {
                if let Some(key) = find_key(target, &parsed.attr)
                    && let Some(Value::Object(inner)) = target.get_mut(&key)
                {
                    remove_ci(inner, sub);
                }
            } else if let Some(value) = &op.value
                && let Some(inner) = object_entry(target, &parsed.attr)
            {
                set_ci(inner, sub, value.clone());
            }
        }
        (Some((field, wanted)), sub) => {
            apply_filtered(target, &parsed.attr, (field, wanted), sub.as_deref(), op)?;
        }
    }
    Ok(())
}

/// An operation on the values of a multi-valued attribute that match a path filter
/// (`attr[field eq "wanted"]`, optionally `.sub`); the attribute goes when no value is left.
fn apply_filtered(
    target: &mut Map<String, Value>,
    attr: &str,
    (field, wanted): (&str, &str),
    sub: Option<&str>,
    op: &PatchOp,
) -> Result<(), Response> {
    let key = find_key(target, attr).unwrap_or_else(|| attr.to_owned());
    let entry = target.entry(key.clone()).or_insert_with(|| json!([]));
    let Value::Array(items) = entry else {
        return Err(invalid_path(format!("{attr} is not multi-valued")));
    };
    let matches = |item: &Value| {
        item.as_object()
            .and_then(|o| get_ci(o, field))
            .and_then(Value::as_str)
            == Some(wanted)
    };
    match (op.op.as_str(), sub) {
        ("remove", None) => items.retain(|i| !matches(i)),
        ("remove", Some(sub)) => {
            for item in items.iter_mut().filter(|i| matches(i)) {
                if let Some(o) = item.as_object_mut() {
                    remove_ci(o, sub);
                }
            }
        }
        (_, sub) => {
            let value = op.value.clone().unwrap_or(Value::Null);
            let mut found = false;
            for item in items.iter_mut().filter(|i| matches(i)) {
                found = true;
                if let Some(o) = item.as_object_mut() {
                    match (sub, &value) {
                        (Some(sub), v) => set_ci(o, sub, v.clone()),
                        (None, Value::Object(new)) => {
                            for (k, v) in new {
                                set_ci(o, k, v.clone());
                            }
                        }
                        (None, _) => {}
                    }
                }
            }
            if !found {
                // [U] Azure-style `emails[type eq "work"].value` on a user without such
                // an entry: create it rather than fail with noTarget.
                let mut item = Map::new();
                item.insert(field.to_owned(), json!(wanted));
                match (sub, value) {
                    (Some(sub), v) => {
                        item.insert(sub.to_owned(), v);
                    }
                    (None, Value::Object(new)) => item.extend(new),
                    (None, _) => {}
                }
                items.push(Value::Object(item));
            }
        }
    }
    if items.is_empty() {
        target.remove(&key);
    }
    Ok(())
}
