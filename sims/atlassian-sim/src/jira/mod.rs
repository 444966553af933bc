//! Jira Data Center REST API v2 (`/jira/rest/api/2`): users, user properties, groups,
//! group membership (nested groups included in listings), and the project / component leads
//! that block deleting or deactivating a user.
//!
//! Reference: https://developer.atlassian.com/server/jira/platform/rest/v10002/ and the
//! DC 11.3 OpenAPI as generated into jira.js (`src/server/**`); api-contracts.md C.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::common::{enc, json_response};
use crate::state::{Dir, UserRec};

mod groups;
mod projects;
mod properties;
mod users;

const API: &str = "/jira/rest/api/2";

type Res = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .merge(users::routes())
        .merge(properties::routes())
        .merge(groups::routes())
        .merge(projects::routes())
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-serverinfo/
        .route(
            &format!("{API}/serverInfo"),
            get(crate::versions::jira_server_info),
        )
}

// ---------------------------------------------------------------------------------------------
// Errors: {"errorMessages":[...],"errors":{...}} (jira.js error-handling doc).

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"errorMessages": [message.into()], "errors": {}}),
    )
}

fn field_err(status: StatusCode, field: &str, message: impl Into<String>) -> Response {
    let mut errors = Map::new();
    errors.insert(field.to_owned(), Value::String(message.into()));
    json_response(status, json!({"errorMessages": [], "errors": errors}))
}

fn bad(message: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, message)
}

/// [U] Jira answers writes against a read-only directory (LDAP/Crowd) with a validation
/// error; api-contracts.md C.3 says "typically 400 or 403"; the simulator uses 400.
fn read_only_error(what: &str) -> Response {
    bad(format!(
        "Cannot {what}: the user directory is read-only (all user directories are read-only)."
    ))
}

/// [U text] Jira's licence user-limit refusal when creating or reactivating a user.
fn licence_error() -> Response {
    bad(
        "You have reached the user limit of your licence: no more users can be given access to Jira.",
    )
}

fn no_user(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("The user named '{name}' does not exist"),
    )
}

fn no_group(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("The group named '{name}' does not exist."),
    )
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

fn avatar_urls(base: &str, key: &str) -> Value {
    let url = |size: u32| {
        format!(
            "{base}/jira/secure/useravatar?size={size}&ownerId={}",
            enc(key)
        )
    };
    json!({"48x48": url(48), "24x24": url(24), "16x16": url(16), "32x32": url(32)})
}

fn user_self(base: &str, name: &str) -> String {
    format!("{base}{API}/user?username={}", enc(name))
}

/// User (C.1). `groups.items` is filled only with `expand=groups`, as in Jira.
fn user_json(base: &str, dir: &Dir, user: &UserRec, expand_groups: bool) -> Value {
    let groups = dir.groups_of(&user.key);
    let items: Vec<Value> = if expand_groups {
        groups
            .iter()
            .map(|g| json!({"name": g.name, "self": group_self(base, &g.name)}))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "self": user_self(base, &user.name),
        "key": user.key,
        "name": user.name,
        "emailAddress": user.email,
        "avatarUrls": avatar_urls(base, &user.key),
        "displayName": user.display_name,
        "active": user.active,
        "deleted": false,
        "timeZone": "UTC",
        "locale": "en_US",
        "groups": {"size": groups.len(), "items": items},
        "applicationRoles": {"size": 0, "items": []},
        "expand": "groups,applicationRoles",
    })
}

/// The short user form used in member pages and project / component leads.
fn user_brief(base: &str, user: &UserRec) -> Value {
    json!({
        "self": user_self(base, &user.name),
        "key": user.key,
        "name": user.name,
        "emailAddress": user.email,
        "avatarUrls": avatar_urls(base, &user.key),
        "displayName": user.display_name,
        "active": user.active,
        "timeZone": "UTC",
    })
}

fn group_self(base: &str, name: &str) -> String {
    format!("{base}{API}/group?groupname={}", enc(name))
}

fn group_json(base: &str, name: &str) -> Value {
    json!({
        "name": name,
        "self": group_self(base, name),
        "users": {"size": 0, "items": [], "max-results": 50, "start-index": 0, "end-index": 0},
        "expand": "users",
    })
}
