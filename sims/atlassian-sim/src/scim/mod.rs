//! Atlassian Cloud user provisioning, SCIM 2.0 (`/scim/directory/{directoryId}`): Users and
//! Groups with single-`eq` filters, 1-based paging (at most 100 per page), PatchOp, 409
//! `uniqueness`, no group rename, and the three discovery endpoints.
//!
//! As strict as the product documents: `emails` with one primary value on every create and
//! modify; only documented attributes are kept (others are dropped); group members are removed
//! with the value-list form only; `userName` changes by PATCH `replace` with path `userName`
//! or by PUT. Each rule's source is beside it.
//!
//! Reference: https://developer.atlassian.com/cloud/admin/user-provisioning/rest/intro/ and
//! the operations under .../rest/api-group-users/ and .../rest/api-group-groups/; RFC 7643/7644
//! where Atlassian's docs are silent (marked [U]); api-contracts.md F.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod discovery;
mod filter;
mod groups;
mod patch;
mod resource;
mod users;

use crate::Inner;
use crate::common::{json_response, parse_json};

pub(crate) const CONTENT_TYPE: &str = "application/scim+json";

const PREFIX: &str = "/scim/directory/{directoryId}";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ATLASSIAN_SCHEMA: &str = "urn:scim:schemas:extension:atlassian-external:1.0";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Atlassian serves at most 100 resources per page (KB "How to fetch all users via SCIM").
const MAX_COUNT: usize = 100;

type Res = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .merge(users::routes())
        .merge(groups::routes())
        .merge(discovery::routes())
}

// ---------------------------------------------------------------------------------------------
// Responses and errors.

fn scim_json(status: StatusCode, value: Value) -> Response {
    let mut response = json_response(status, value);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// 201 with the new resource and its URL in `Location`.
fn created(location: &str, resource: Value) -> Response {
    let mut response = scim_json(StatusCode::CREATED, resource);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// RFC 7644 §3.12 error; `status` is a string.
fn err(status: StatusCode, scim_type: Option<&str>, detail: impl Into<String>) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_u16().to_string(),
        "detail": detail.into(),
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim_json(status, body)
}

fn invalid_value(detail: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
}

fn invalid_syntax(detail: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
}

fn not_found(what: &str, id: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        None,
        format!("{what} {id} not found"),
    )
}

/// [U] SCIM directories are not LDAP-backed; the knob is honoured anyway (403) so tests can
/// check a client's handling of refused writes.
fn read_only() -> Response {
    err(
        StatusCode::FORBIDDEN,
        None,
        "The directory is read-only: provisioning writes are disabled.",
    )
}

#[derive(Deserialize)]
struct DirPath {
    #[serde(rename = "directoryId")]
    directory_id: String,
    #[serde(default)]
    id: Option<String>,
}

/// [U] A directory id other than the configured one: 404.
fn check_directory(sim: &Inner, path: &DirPath) -> Result<(), Response> {
    if path.directory_id == sim.config.scim_directory_id {
        Ok(())
    } else {
        Err(err(
            StatusCode::NOT_FOUND,
            None,
            format!("Directory {} not found", path.directory_id),
        ))
    }
}

fn base_url(sim: &Inner) -> String {
    format!(
        "{}/scim/directory/{}",
        sim.base(),
        sim.config.scim_directory_id
    )
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match parse_json(body).map_err(invalid_syntax)? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid_syntax("The request body must be a JSON object")),
    }
}

fn path_id(path: &DirPath) -> String {
    path.id.clone().unwrap_or_default()
}
