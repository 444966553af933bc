//! Confluence Data Center REST (`/confluence/rest/api`): admin user and group management
//! (8.4+ create user, 9.x/10.x user-group membership), Person and Group listings with
//! `start`/`limit` paging, and the asynchronous user deletion (202 + long task).
//!
//! Reference: https://developer.atlassian.com/server/confluence/rest/v1000/ (admin-user,
//! admin-group, group, user, longtask resources); api-contracts.md D. Confluence REST has no
//! rename: none is simulated.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::common::{Params, enc, error_body, json_response, parse_json, window};
use crate::state::{Dir, UserRec};
use crate::{Inner, Product};

mod groups;
mod reads;
mod users;

pub(crate) use users::finish_task;

const CONTEXT: &str = "/confluence";
const API: &str = "/confluence/rest/api";

type Res = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .merge(users::routes())
        .merge(groups::routes())
        .merge(reads::routes())
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-server-information/ (9.1+)
        .route(
            &format!("{API}/server-information"),
            get(crate::versions::confluence_server_information),
        )
        // The application-links manifest every Atlassian server product serves.
        .route(
            &format!("{CONTEXT}/rest/applinks/1.0/manifest"),
            get(crate::versions::confluence_manifest),
        )
}

// ---------------------------------------------------------------------------------------------
// Errors: {"statusCode","data":{...},"message","reason"} ([U] typical Confluence shape).

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(
        status,
        error_body(Some(Product::Confluence), status, &message.into()),
    )
}

fn bad(message: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, message)
}

fn no_user(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No user found with username: {name}"),
    )
}

fn no_group(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No group found with name: {name}"),
    )
}

/// [U] Writes against a read-only (LDAP/Crowd) directory: 403.
fn read_only() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "The user directory is read-only: users and groups cannot be changed in Confluence.",
    )
}

fn no_seats() -> Response {
    err(
        StatusCode::PAYMENT_REQUIRED,
        "Your Confluence license does not have enough seats for another user.",
    )
}

fn seats_full(dir: &Dir) -> bool {
    dir.seats.is_some_and(|seats| dir.active_count() >= seats)
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

/// Person (`type: known`); `status` ("Active"/"Deactivated") only with `expand=status`.
fn person(base: &str, user: &UserRec, with_status: bool) -> Value {
    let mut value = json!({
        "type": "known",
        "username": user.name,
        "userKey": user.key,
        "profilePicture": {
            "path": format!("{CONTEXT}/images/icons/profilepics/default.svg"),
            "width": 48,
            "height": 48,
            "isDefault": true,
        },
        "displayName": user.display_name,
        "_links": {"self": format!("{base}{API}/user?key={}", enc(&user.key))},
    });
    if with_status {
        value["status"] = json!(if user.active { "Active" } else { "Deactivated" });
    } else {
        value["_expandable"] = json!({"status": ""});
    }
    value
}

fn group_json(base: &str, name: &str) -> Value {
    json!({
        "type": "group",
        "name": name,
        "_links": {"self": format!("{base}{API}/group/{}", path_enc(name))},
    })
}

fn path_enc(s: &str) -> String {
    enc(s).replace('+', "%20")
}

fn expands_status(params: &Params) -> bool {
    params
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "status"))
}

/// [U] Confluence lowers `limit` to its own maximum; 200 (the documented default) is used.
const MAX_LIMIT: usize = 200;

/// `{results,start,limit,size,totalCount,_links:{base,context,self,next?}}`; `next` is
/// relative to the base URL, as Confluence writes it.
fn page(
    base: &str,
    path: &str,
    extra: &str,
    params: &Params,
    items: Vec<Value>,
) -> Result<Value, Response> {
    let start = params.usize("start", 0).map_err(bad)?;
    let limit = params.usize("limit", MAX_LIMIT).map_err(bad)?;
    let limit = if limit == 0 {
        MAX_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let total = items.len();
    let (results, is_last) = window(&items, start, limit);
    let relative = |s: usize| format!("/rest/api{path}?{extra}start={s}&limit={limit}");
    let mut links = json!({
        "base": format!("{base}{CONTEXT}"),
        "context": CONTEXT,
        "self": format!("{base}{CONTEXT}{}", relative(start)),
    });
    if !is_last {
        links["next"] = json!(relative(start + limit));
    }
    Ok(json!({
        "results": results,
        "start": start,
        "limit": limit,
        "size": results.len(),
        "totalCount": total,
        "_links": links,
    }))
}

fn expand_param(params: &Params) -> String {
    match params.get("expand") {
        Some(e) => format!("expand={}&", enc(e)),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Admin: users.

fn body_object(body: &Bytes) -> Result<Value, Response> {
    let value = parse_json(body).map_err(bad)?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object"));
    }
    Ok(value)
}

fn opt_str(body: &Value, field: &str) -> Result<Option<String>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(bad(format!("{field} must be a string"))),
    }
}
