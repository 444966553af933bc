//! Bitbucket Data Center REST 1.0, exactly the user/group operations of the official 8.14
//! OpenAPI (`/work/shared/specs/bitbucket-dc-8.14-openapi.yaml`), served under both
//! `/bitbucket/rest/api/1.0` and `/bitbucket/rest/api/latest` (the same API). The operationId
//! of each route is noted beside it.
//!
//! There is deliberately no activate/deactivate and no `remove-groups` endpoint: 8.14 has none.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use crate::Inner;
use crate::common::{Params, bitbucket_exception, json_response, parse_json, window};
use crate::state::{Dir, UserRec, lower};

mod groups;
mod licence;
mod users;

type Res = Result<Response, Response>;

const PREFIXES: [&str; 2] = ["/bitbucket/rest/api/1.0", "/bitbucket/rest/api/latest"];

pub(crate) fn routes() -> Router<Arc<Inner>> {
    let mut table: Vec<(&str, MethodRouter<Arc<Inner>>)> = vec![
        // getApplicationProperties (version; no authentication needed)
        (
            "/application-properties",
            get(crate::versions::bitbucket_application_properties),
        ),
    ];
    table.extend(users::routes());
    table.extend(groups::routes());
    table.extend(licence::routes());
    let mut router = Router::new();
    for prefix in PREFIXES {
        for (path, method_router) in &table {
            router = router.route(&format!("{prefix}{path}"), method_router.clone());
        }
    }
    router
}

// ---------------------------------------------------------------------------------------------
// Errors: {"errors":[{"context","message","exceptionName"}]} for every status (RestErrors).

fn err_ctx(status: StatusCode, context: Option<&str>, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"errors": [{
            "context": context,
            "message": message.into(),
            "exceptionName": bitbucket_exception(status),
        }]}),
    )
}

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    err_ctx(status, None, message)
}

fn bad(message: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, message)
}

fn no_user(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("User {name} does not exist."),
    )
}

fn no_group(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("Group {name} does not exist."),
    )
}

/// [U] User-detail writes in a read-only directory: the spec has no dedicated status; 400
/// ("the request was malformed") is the only failure it lists for create/update/rename.
fn read_only_details() -> Response {
    bad("The user directory is read-only: user details cannot be changed in Bitbucket.")
}

/// [U] Membership writes in a read-only directory: 403 (the spec's "disallowed" status for
/// group changes).
fn read_only_groups() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "The user directory is read-only: group memberships cannot be changed in Bitbucket.",
    )
}

fn licence_error() -> Response {
    err_ctx(
        StatusCode::FORBIDDEN,
        None,
        "Adding this user would exceed the number of users allowed by the server's license.",
    )
}

// ---------------------------------------------------------------------------------------------
// Paging: {size,limit,isLastPage,start,nextPageStart?,values}; start/limit, default 25.

/// [U] The cap is 1000 (the usual Bitbucket `page.max.*` setting).
const MAX_LIMIT: usize = 1000;

fn paging(params: &Params) -> Result<(usize, usize), Response> {
    let start = params.usize("start", 0).map_err(bad)?;
    let limit = params.usize("limit", 25).map_err(bad)?;
    let limit = if limit == 0 { 25 } else { limit.min(MAX_LIMIT) };
    Ok((start, limit))
}

fn page(values: Vec<Value>, start: usize, limit: usize, total: usize) -> Value {
    let is_last = start.saturating_add(values.len()) >= total;
    let mut page = json!({
        "size": values.len(),
        "limit": limit,
        "isLastPage": is_last,
        "start": start,
        "values": values,
    });
    if !is_last {
        page["nextPageStart"] = json!(start + limit);
    }
    page
}

fn paged<T: Clone>(
    items: &[T],
    params: &Params,
    render: impl Fn(&T) -> Value,
) -> Result<Value, Response> {
    let (start, limit) = paging(params)?;
    let (slice, _) = window(items, start, limit);
    let values: Vec<Value> = slice.iter().map(render).collect();
    Ok(page(values, start, limit, items.len()))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

/// Bitbucket derives a URL-safe slug from the username.
fn slug(name: &str) -> String {
    lower(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn numeric_id(user: &UserRec) -> Value {
    user.key
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(user.key.clone()))
}

/// RestApplicationUser.
fn app_user(base: &str, user: &UserRec) -> Value {
    json!({
        "name": user.name,
        "emailAddress": user.email,
        "active": user.active,
        "displayName": user.display_name,
        "id": numeric_id(user),
        "slug": slug(&user.name),
        "type": "NORMAL",
        "links": {"self": [{"href": format!("{base}/bitbucket/users/{}", slug(&user.name))}]},
    })
}

/// RestDetailedUser: `mutableDetails` / `mutableGroups` are false for read-only directories.
fn detailed_user(base: &str, dir: &Dir, user: &UserRec) -> Value {
    let mut value = app_user(base, user);
    let directory = if dir.read_only {
        "Read-only LDAP directory"
    } else {
        "Bitbucket Internal Directory"
    };
    value["directoryName"] = json!(directory);
    value["deletable"] = json!(true);
    value["mutableDetails"] = json!(!dir.read_only);
    value["mutableGroups"] = json!(!dir.read_only);
    value
}

/// RestDetailedGroup.
fn detailed_group(name: &str) -> Value {
    json!({"name": name, "deletable": true})
}

/// Whether `haystack` contains `needle` (already lower case), ignoring case. Filters scan every
/// user, so the ASCII case compares in place instead of lower-casing a copy of each field.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    if h.is_ascii() && n.is_ascii() {
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    lower(haystack).contains(needle)
}

fn user_filter(user: &UserRec, filter: &str) -> bool {
    filter.is_empty()
        || contains_ci(&user.name, filter)
        || contains_ci(&user.display_name, filter)
        || contains_ci(&user.email, filter)
}

// ---------------------------------------------------------------------------------------------
// Body helpers.

fn object_body(body: &Bytes) -> Result<Value, Response> {
    let value = parse_json(body).map_err(bad)?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object"));
    }
    Ok(value)
}

fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some(field),
            format!("{field} must be a string"),
        )),
    }
}

fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, Response> {
    opt_str(body, field)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            err_ctx(
                StatusCode::BAD_REQUEST,
                Some(field),
                format!("{field} is required"),
            )
        })
}

fn str_list(body: &Value, field: &str) -> Result<Vec<String>, Response> {
    match body.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    err_ctx(
                        StatusCode::BAD_REQUEST,
                        Some(field),
                        format!("{field} must be a list of strings"),
                    )
                })
            })
            .collect(),
        _ => Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some(field),
            format!("{field} is required"),
        )),
    }
}

fn req_param<'a>(params: &'a Params, name: &str) -> Result<&'a str, Response> {
    params.text(name).ok_or_else(|| {
        err_ctx(
            StatusCode::BAD_REQUEST,
            Some(name),
            format!("The {name} parameter is required."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Dir, lower};

    fn user(key: &str, name: &str, display_name: &str, email: &str) -> UserRec {
        UserRec {
            key: key.into(),
            name: name.into(),
            email: email.into(),
            display_name: display_name.into(),
            active: true,
            external_id: None,
            attributes: Default::default(),
            properties: Default::default(),
            created: String::new(),
            modified: String::new(),
        }
    }

    /// Whom the plain scan finds for `filter`, by key in `Dir::users`.
    fn scan(dir: &Dir, filter: &str) -> Vec<String> {
        let filter = lower(filter);
        dir.users
            .iter()
            .filter(|(_, u)| user_filter(u, &filter))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The index finds exactly whom the scan finds, for every kind of filter.
    fn agrees(dir: &Dir) {
        for filter in [
            "", "ada", "ADA", "example", ".org", "äd", "b", "l@", "nobody", "a\0b",
        ] {
            let found: Vec<String> = dir
                .users_matching(&lower(filter))
                .into_iter()
                .map(|u| lower(&u.name))
                .collect();
            assert_eq!(found, scan(dir, filter), "{filter:?}");
        }
    }

    fn names(dir: &Dir, filter: &str) -> Vec<String> {
        dir.users_matching(filter)
            .into_iter()
            .map(|u| u.name.clone())
            .collect()
    }

    /// The index finds exactly whom the plain scan finds, and follows every change to a user.
    #[test]
    fn the_user_search_finds_what_the_scan_finds() {
        let mut dir = Dir::default();
        dir.insert_user(user("1", "Ada.L", "Ada Lovelace", "ada@example.com"));
        dir.insert_user(user("2", "bob", "Bob Ädams", "bob@Example.com"));
        dir.insert_user(user("3", "cy", "Cy Ada", "cy@example.org"));
        agrees(&dir);
        // A match never spans two fields: "lovelaceada" is in no one field.
        assert!(dir.users_matching("lovelaceada").is_empty());
        assert!(dir.users_matching("lovelace\0ada").is_empty());
        // Changes after the index is built: renamed, changed in place, removed, added.
        dir.rename_user("3", "cyada");
        if let Some(u) = dir.user_by_key_mut("2") {
            u.display_name = "Robert Ada".into();
        }
        dir.remove_user("1");
        dir.insert_user(user("4", "dee", "Dee", "dee@ada.example"));
        agrees(&dir);
        assert_eq!(names(&dir, "ada"), vec!["bob", "cyada", "dee"]);
        // Many changes: the index is built again, and still agrees.
        for round in 0..5 {
            if let Some(u) = dir.user_by_key_mut("4") {
                u.email = format!("dee{round}@example.com");
            }
            agrees(&dir);
        }
        assert_eq!(names(&dir, "dee4@"), vec!["dee"]);
        assert!(names(&dir, "dee0@").is_empty());
    }
}
