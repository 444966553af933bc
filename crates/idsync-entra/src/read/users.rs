//! Users: `/users/delta` rounds applied to the users known, and Graph's refusals of the
//! `$select` made into errors that name the config fields asking for the property.

use std::collections::BTreeMap;

use idsync_model::SourceUser;
use serde_json::{Map, Value};

use super::delta_round;
use super::restart::{initial_round, restarting};
use crate::graph::CallKind;
use crate::{EntraError, EntraSource, ReadKind};

pub(super) struct UsersPart {
    pub(super) users: BTreeMap<String, SourceUser>,
    pub(super) link: String,
    pub(super) kind: ReadKind,
    pub(super) notes: Vec<String>,
}

/// `GET /users/delta` — https://learn.microsoft.com/graph/api/user-delta?view=graph-rest-1.0
pub(super) async fn read_users(
    source: &EntraSource,
    previous: Option<(BTreeMap<String, SourceUser>, String)>,
) -> Result<UsersPart, EntraError> {
    let mut notes = Vec::new();
    if let Some((mut users, link)) = previous {
        // Restarting a round from its deltaLink re-applies what the cut-short try applied:
        // delta items are whole objects and removals, so applying them twice is harmless
        // (the same holds for Graph's own replays).
        let result = restarting!(
            "users",
            &mut notes,
            users_round(source, link.clone(), &mut users).await
        );
        match result {
            Ok(link) => {
                return Ok(UsersPart {
                    users,
                    link,
                    kind: ReadKind::Delta,
                    notes,
                });
            }
            Err(EntraError::DeltaReset { reason, .. }) => {
                tracing::warn!(app = %source.app, %reason, "users delta token refused; reading all users");
                notes.push(format!(
                    "users: the delta token was refused ({reason}); did a full read of users"
                ));
            }
            Err(other) => return Err(other),
        }
    }
    let first = source
        .graph
        .url(&format!("/users/delta?$select={}", source.select.join(",")));
    let mut users: BTreeMap<String, SourceUser>;
    // Left unset: `initial_round!` makes it fresh on every try, so nothing of a cut-short one
    // is kept when the round starts over.
    let link = restarting!(
        "users",
        &mut notes,
        initial_round!(users, users_round(source, first.clone(), &mut users).await)
    )
    .map_err(|e| explain_select_error(source, e))?;
    Ok(UsersPart {
        users,
        link,
        kind: ReadKind::Full,
        notes,
    })
}

/// Graph's answer to a users `$select` it will not serve, 400 with the names in its message:
/// a property that change tracking does not support ("... $expand/$select is not supported
/// for the following properties: birthday", observed; the limits are in
/// https://learn.microsoft.com/graph/delta-query-overview#limitations), or a name users do not
/// have ("Could not find a property named 'x' on type 'microsoft.graph.user'"). Made into an
/// error that names each property and the fields of the app's config that ask for it, since
/// that is where it has to be fixed. Any other error is returned as it is.
fn explain_select_error(source: &EntraSource, error: EntraError) -> EntraError {
    let EntraError::Graph {
        what,
        status: 400,
        code,
        message,
        request_id,
    } = error
    else {
        return error;
    };
    const NOT_IN_DELTA: &str = "not supported for the following properties:";
    let (names, not_in_delta): (Vec<String>, bool) =
        if let Some((_, list)) = message.split_once(NOT_IN_DELTA) {
            let names = list
                .split(',')
                .map(|n| n.trim().trim_end_matches('.').to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            (names, true)
        } else if let Some((_, rest)) = message.split_once("property named '") {
            let name = rest.split('\'').next().unwrap_or_default().to_owned();
            (vec![name], false)
        } else {
            return EntraError::Graph {
                what,
                status: 400,
                code,
                message,
                request_id,
            };
        };
    let mut explained = Vec::new();
    for name in &names {
        // Graph may spell a name in its own case; the config's spelling is the one to show.
        let fields = source
            .attribute_fields
            .iter()
            .find(|(property, _)| property.eq_ignore_ascii_case(name));
        let asked_by = match fields {
            Some((property, fields)) => format!(
                "'{property}' is asked for by {} of app '{}'",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                source.app
            ),
            None => format!(
                "'{name}' is asked for by the users rules or read_attributes of app '{}'",
                source.app
            ),
        };
        explained.push(asked_by);
    }
    let advice = if not_in_delta {
        "idsync reads users with a delta query, and Microsoft Graph does not track these \
         properties there (properties kept outside the directory's main store, such as skills or \
         birthday, and signInActivity; https://learn.microsoft.com/graph/delta-query-overview#limitations). \
         Remove them from those fields, or map a directory property instead (an extension \
         attribute, for example)"
    } else {
        "Users have no property of that name: check its spelling (directory extensions are \
         extension_<appIdWithoutHyphens>_<name>)"
    };
    EntraError::Graph {
        what,
        status: 400,
        code,
        message: format!(
            "{}. {}. {advice}.",
            message.trim_end_matches(['.', ' ']),
            explained.join("; ")
        ),
        request_id,
    }
}

/// One delta round from `url` to its deltaLink, applied to `users`.
async fn users_round(
    source: &EntraSource,
    url: String,
    users: &mut BTreeMap<String, SourceUser>,
) -> Result<String, EntraError> {
    delta_round(source, CallKind::UsersDelta, "reading users", url, |item| {
        apply_user(users, item)
    })
    .await
}

/// Applies one users-delta item. Objects come with every selected property (we never ask for
/// `return=minimal`), so a user is replaced whole; that also drops attributes Graph leaves out
/// when they are empty (unset directory extensions). Replays are harmless.
pub(crate) fn apply_user(
    users: &mut BTreeMap<String, SourceUser>,
    item: Value,
) -> Result<(), String> {
    let Value::Object(map) = item else {
        return Err("a users-delta item that is not an object".into());
    };
    let id = object_id(&map)?;
    if map.contains_key("@removed") {
        // `changed` (soft-deleted, restorable) and `deleted` alike: the user is gone from the
        // directory, so the engine sees them leave the scope.
        users.remove(&id);
        return Ok(());
    }
    let enabled = match map.get("accountEnabled") {
        Some(Value::Bool(b)) => *b,
        // Never seen in full responses; keep what we knew, and never assume enabled for a
        // user we know nothing about.
        _ => users.get(&id).is_some_and(|u| u.enabled),
    };
    let mut attributes = BTreeMap::new();
    for (key, value) in &map {
        if key == "id" || key.starts_with('@') || key.contains("@odata") {
            continue;
        }
        flatten(key, value, &mut attributes);
    }
    users.insert(
        id.clone(),
        SourceUser {
            id,
            enabled,
            attributes,
        },
    );
    Ok(())
}

/// Graph property → attribute strings: nested objects flattened with a dot, arrays keep their
/// first value, null and empty omitted.
fn flatten(key: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            out.insert(key.to_owned(), s.clone());
        }
        Value::Bool(_) | Value::Number(_) => {
            out.insert(key.to_owned(), value.to_string());
        }
        Value::Array(items) => {
            if let Some(first) = items.iter().find(|v| !v.is_null()) {
                flatten(key, first, out);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                if !k.starts_with('@') {
                    flatten(&format!("{key}.{k}"), v, out);
                }
            }
        }
    }
}

pub(super) fn object_id(map: &Map<String, Value>) -> Result<String, String> {
    map.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "an item without an id".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_are_flattened() {
        let mut users = BTreeMap::new();
        apply_user(
            &mut users,
            json!({
                "id": "u1", "accountEnabled": false, "mail": null,
                "userPrincipalName": "a@x", "otherMails": ["first@x", "second@x"],
                "proxyAddresses": [],
                "onPremisesExtensionAttributes": {"extensionAttribute3": "cc-1", "extensionAttribute4": null},
                "extension_abc_costCenter": 42
            }),
        )
        .expect("valid");
        let u = &users["u1"];
        assert!(!u.enabled);
        assert_eq!(u.attr("otherMails"), Some("first@x"));
        assert_eq!(u.attr("mail"), None);
        assert_eq!(u.attr("proxyAddresses"), None);
        assert_eq!(
            u.attr("onPremisesExtensionAttributes.extensionAttribute3"),
            Some("cc-1")
        );
        assert_eq!(
            u.attr("onPremisesExtensionAttributes.extensionAttribute4"),
            None
        );
        assert_eq!(u.attr("extension_abc_costCenter"), Some("42"));
        apply_user(
            &mut users,
            json!({"id": "u1", "@removed": {"reason": "changed"}}),
        )
        .expect("valid");
        assert!(users.is_empty());
        assert!(apply_user(&mut users, json!({"displayName": "no id"})).is_err());
    }
}
