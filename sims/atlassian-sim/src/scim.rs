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

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::common::{Params, empty, json_response, parse_json};
use crate::state::{Dir, GroupRec, UserRec, lower, now_rfc3339};
use crate::{Inner, Product};

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
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-get (and -post)
        .route(
            &format!("{PREFIX}/Users"),
            get(list_users).post(create_user),
        )
        // .../api-group-users/#api-scim-directory-directoryid-users-userid-get (-put, -patch, -delete)
        .route(
            &format!("{PREFIX}/Users/{{id}}"),
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-get (and -post)
        .route(
            &format!("{PREFIX}/Groups"),
            get(list_groups).post(create_group),
        )
        // .../api-group-groups/#api-scim-directory-directoryid-groups-id-get (-put, -patch, -delete)
        .route(
            &format!("{PREFIX}/Groups/{{id}}"),
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-service-provider-configuration/
        .route(
            &format!("{PREFIX}/ServiceProviderConfig"),
            get(service_provider_config),
        )
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-schemas/
        .route(&format!("{PREFIX}/Schemas"), get(schemas))
        .route(&format!("{PREFIX}/Schemas/{{id}}"), get(schema))
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-resource-types/
        .route(&format!("{PREFIX}/ResourceTypes"), get(resource_types))
        .route(
            &format!("{PREFIX}/ResourceTypes/{{id}}"),
            get(resource_type),
        )
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

// ---------------------------------------------------------------------------------------------
// Resources.

/// The User attributes Atlassian documents for its directory beyond those kept in dedicated
/// fields (`USER_CORE`): the ScimUser model of the user-provisioning API (create/replace body).
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
const USER_DOCUMENTED: [&str; 11] = [
    "emails",
    "name",
    "nickName",
    "title",
    "preferredLanguage",
    "department",
    "organization",
    "timezone",
    "phoneNumbers",
    ENTERPRISE_SCHEMA,
    ATLASSIAN_SCHEMA,
];

/// The enterprise extension as Atlassian documents it: `organization` and `department` only
/// (same page, the `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` object).
const ENTERPRISE_DOCUMENTED: [&str; 2] = ["organization", "department"];

/// Atlassian's own extension carries the linked account id.
const ATLASSIAN_DOCUMENTED: [&str; 1] = ["atlassianAccountId"];

/// Core attributes kept in dedicated fields; everything else lives in `attributes`.
const USER_CORE: [&str; 8] = [
    "schemas",
    "id",
    "meta",
    "groups",
    "userName",
    "displayName",
    "active",
    "externalId",
];

fn user_resource(base: &str, dir: &Dir, user: &UserRec) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    for key in user.attributes.keys() {
        if key.starts_with("urn:") {
            schemas.push(json!(key));
        }
    }
    let mut obj = Map::new();
    obj.insert("schemas".into(), Value::Array(schemas));
    obj.insert("id".into(), json!(user.key));
    if let Some(external) = &user.external_id {
        obj.insert("externalId".into(), json!(external));
    }
    obj.insert("userName".into(), json!(user.name));
    for (k, v) in &user.attributes {
        obj.insert(k.clone(), v.clone());
    }
    if !user.display_name.is_empty() {
        obj.insert("displayName".into(), json!(user.display_name));
    }
    obj.insert("active".into(), json!(user.active));
    let groups: Vec<Value> = dir
        .groups_of(&user.key)
        .into_iter()
        .map(|g| {
            json!({"value": g.id, "display": g.name, "type": "direct",
                   "$ref": format!("{base}/Groups/{}", g.id)})
        })
        .collect();
    obj.insert("groups".into(), Value::Array(groups));
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created,
            "lastModified": user.modified,
            "location": format!("{base}/Users/{}", user.key),
        }),
    );
    Value::Object(obj)
}

fn group_resource(base: &str, dir: &Dir, group: &GroupRec, with_members: bool) -> Value {
    let mut value = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.name,
        "meta": {
            "resourceType": "Group",
            "created": group.created,
            "lastModified": group.modified,
            "location": format!("{base}/Groups/{}", group.id),
        },
    });
    if let Some(external) = &group.external_id {
        value["externalId"] = json!(external);
    }
    if with_members {
        let members: Vec<Value> = dir
            .direct_members(group)
            .into_iter()
            .map(|u| {
                json!({"type": "User", "value": u.key, "display": u.name,
                       "$ref": format!("{base}/Users/{}", u.key)})
            })
            .collect();
        value["members"] = Value::Array(members);
    }
    value
}

fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    find_key(map, name).and_then(|k| map.get(&k))
}

/// Attributes of a user as a SCIM document without the read-only parts, for PATCH.
fn user_document(user: &UserRec) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("userName".into(), json!(user.name));
    if !user.display_name.is_empty() {
        doc.insert("displayName".into(), json!(user.display_name));
    }
    doc.insert("active".into(), json!(user.active));
    if let Some(external) = &user.external_id {
        doc.insert("externalId".into(), json!(external));
    }
    for (k, v) in &user.attributes {
        doc.insert(k.clone(), v.clone());
    }
    doc
}

/// Validates a user document and fills a record's fields from it.
fn user_from_document(doc: &Map<String, Value>, rec: &mut UserRec) -> Result<(), Response> {
    let user_name = match get_ci(doc, "userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(invalid_value("userName is required and must be a string")),
    };
    let display_name = match get_ci(doc, "displayName") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid_value("displayName must be a string")),
    };
    let active = match get_ci(doc, "active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        // Some IdPs send "True"/"False" strings; Atlassian accepts them [U].
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(invalid_value("active must be a boolean")),
    };
    let external_id = match get_ci(doc, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid_value("externalId must be a string")),
    };
    let mut attributes = std::collections::BTreeMap::new();
    for (k, v) in doc {
        if USER_CORE.iter().any(|core| core.eq_ignore_ascii_case(k)) || v.is_null() {
            continue;
        }
        // [U] An attribute Atlassian does not document is dropped, not refused: it is neither
        // stored nor returned (RFC 7644 §3.3 lets a provider ignore what it does not keep, and
        // the documented model has no room for it).
        let Some(name) = USER_DOCUMENTED.iter().find(|d| d.eq_ignore_ascii_case(k)) else {
            continue;
        };
        let value = match *name {
            ENTERPRISE_SCHEMA => documented_only(name, v, &ENTERPRISE_DOCUMENTED)?,
            ATLASSIAN_SCHEMA => documented_only(name, v, &ATLASSIAN_DOCUMENTED)?,
            _ => Some(v.clone()),
        };
        if let Some(value) = value {
            attributes.insert((*name).to_owned(), value);
        }
    }
    check_emails(attributes.get("emails"))?;
    let email = primary_email(attributes.get("emails"));
    rec.name = user_name;
    rec.display_name = display_name;
    rec.active = active;
    rec.external_id = external_id;
    rec.attributes = attributes;
    rec.email = email;
    rec.modified = now_rfc3339();
    Ok(())
}

/// An extension object with only the sub-attributes Atlassian documents; `None` when nothing
/// documented is left.
fn documented_only(
    urn: &str,
    value: &Value,
    documented: &[&str],
) -> Result<Option<Value>, Response> {
    let Value::Object(given) = value else {
        return Err(invalid_value(format!("{urn} must be an object")));
    };
    let kept: Map<String, Value> = given
        .iter()
        .filter(|(_, v)| !v.is_null())
        .filter_map(|(k, v)| {
            let name = documented.iter().find(|d| d.eq_ignore_ascii_case(k))?;
            Some(((*name).to_owned(), v.clone()))
        })
        .collect();
    Ok((!kept.is_empty()).then_some(Value::Object(kept)))
}

/// Atlassian: `emails` "is a required field during user creation or modification. One value
/// must be marked as primary." (the ScimUser model of the user-provisioning API,
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post).
/// Checked on POST, on PUT and on the result of a PATCH. [U] The answer: 400 `invalidValue`
/// in the SCIM error body, as for any other invalid attribute; "one" is read as exactly one
/// (RFC 7643 §2.4 allows `primary` on one value at most).
fn check_emails(emails: Option<&Value>) -> Result<(), Response> {
    const WHAT: &str =
        "emails is required on create and modify, with exactly one value marked primary: true";
    let Some(Value::Array(list)) = emails else {
        return Err(invalid_value(WHAT));
    };
    let primaries: Vec<&Value> = list
        .iter()
        .filter(|e| e.get("primary") == Some(&Value::Bool(true)))
        .collect();
    match primaries.as_slice() {
        [one]
            if one
                .get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty()) =>
        {
            Ok(())
        }
        _ => Err(invalid_value(WHAT)),
    }
}

fn primary_email(emails: Option<&Value>) -> String {
    let Some(Value::Array(list)) = emails else {
        return String::new();
    };
    list.iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| list.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match parse_json(body).map_err(invalid_syntax)? {
        Value::Object(map) => Ok(map),
        _ => Err(invalid_syntax("The request body must be a JSON object")),
    }
}

// ---------------------------------------------------------------------------------------------
// Filters and paging.

/// Parses `attr eq "value"`, the only filter Atlassian supports (one `eq`, no `and`/`or`).
fn parse_filter(filter: &str, allowed: &[&str]) -> Result<(String, String), Response> {
    let invalid = || {
        err(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            format!(
                "Unsupported filter '{filter}': only a single 'eq' on {} is supported",
                allowed.join(" or ")
            ),
        )
    };
    let trimmed = filter.trim();
    let (attr, rest) = trimmed
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let (op, rest) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let attr = allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(attr))
        .ok_or_else(invalid)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid());
    }
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(invalid)?;
    // A JSON string literal: handles \" and \\ escapes; an unescaped quote inside (another
    // clause) fails to parse.
    let value: String = serde_json::from_str(&format!("\"{inner}\"")).map_err(|_| invalid())?;
    Ok(((*attr).to_owned(), value))
}

fn list_response(params: &Params, resources: Vec<Value>) -> Res {
    let start_index = params.usize("startIndex", 1).map_err(invalid_value)?.max(1);
    let count = params
        .usize("count", MAX_COUNT)
        .map_err(invalid_value)?
        .min(MAX_COUNT);
    let total = resources.len();
    let page: Vec<Value> = resources
        .into_iter()
        .skip(start_index - 1)
        .take(count)
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

fn excluded(params: &Params, attr: &str) -> bool {
    params
        .get("excludedAttributes")
        .is_some_and(|list| list.split(',').any(|a| a.trim().eq_ignore_ascii_case(attr)))
}

// ---------------------------------------------------------------------------------------------
// Users.

async fn list_users(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    params: Params,
) -> Res {
    check_directory(&sim, &path)?;
    let filter = match params.text("filter") {
        Some(f) => Some(parse_filter(f, &["userName", "externalId"])?),
        None => None,
    };
    let base = base_url(&sim);
    let state = crate::lock(&sim.state);
    let dir = &state.scim;
    let resources: Vec<Value> = dir
        .users
        .values()
        .filter(|u| match &filter {
            None => true,
            // userName is case-insensitive (RFC 7643 caseExact=false); externalId is exact.
            Some((attr, value)) if attr == "userName" => lower(&u.name) == lower(value),
            Some((_, value)) => u.external_id.as_deref() == Some(value.as_str()),
        })
        .map(|u| user_resource(&base, dir, u))
        .collect();
    list_response(&params, resources)
}

async fn create_user(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>, body: Bytes) -> Res {
    check_directory(&sim, &path)?;
    let doc = body_object(&body)?;
    let now = now_rfc3339();
    let mut rec = UserRec {
        key: String::new(),
        name: String::new(),
        email: String::new(),
        display_name: String::new(),
        active: true,
        external_id: None,
        attributes: Default::default(),
        properties: Default::default(),
        created: now.clone(),
        modified: now,
    };
    user_from_document(&doc, &mut rec)?;
    let base = base_url(&sim);
    let mut state = crate::lock(&sim.state);
    if state.scim.read_only {
        return Err(read_only());
    }
    if state.scim.user(&rec.name).is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("A user with userName '{}' already exists", rec.name),
        ));
    }
    rec.key = state.new_key(Product::Scim);
    let key = rec.key.clone();
    state.scim.insert_user(rec);
    let user = state
        .scim
        .user_by_key(&key)
        .ok_or_else(|| not_found("User", &key))?;
    let resource = user_resource(&base, &state.scim, user);
    let mut response = scim_json(StatusCode::CREATED, resource);
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/Users/{key}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn path_id(path: &DirPath) -> String {
    path.id.clone().unwrap_or_default()
}

async fn get_user(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    let base = base_url(&sim);
    let state = crate::lock(&sim.state);
    let user = state
        .scim
        .user_by_key(&id)
        .ok_or_else(|| not_found("User", &id))?;
    Ok(scim_json(
        StatusCode::OK,
        user_resource(&base, &state.scim, user),
    ))
}

/// Stores a new document for an existing user, checking userName uniqueness.
fn store_user(sim: &Inner, id: &str, doc: &Map<String, Value>) -> Res {
    let base = base_url(sim);
    let mut state = crate::lock(&sim.state);
    let mut rec = state
        .scim
        .user_by_key(id)
        .ok_or_else(|| not_found("User", id))?
        .clone();
    if state.scim.read_only {
        return Err(read_only());
    }
    let old_name = rec.name.clone();
    user_from_document(doc, &mut rec)?;
    if lower(&rec.name) != lower(&old_name) {
        if state.scim.user(&rec.name).is_some() {
            return Err(err(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("A user with userName '{}' already exists", rec.name),
            ));
        }
        state.scim.rename_user(id, &rec.name);
    }
    let new_name = rec.name.clone();
    if let Some(stored) = state.scim.user_by_key_mut(id) {
        *stored = rec;
        stored.name = new_name;
    }
    let user = state
        .scim
        .user_by_key(id)
        .ok_or_else(|| not_found("User", id))?;
    Ok(scim_json(
        StatusCode::OK,
        user_resource(&base, &state.scim, user),
    ))
}

/// PUT replaces: attributes not in the body are cleared (api-contracts.md F).
async fn replace_user(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    body: Bytes,
) -> Res {
    check_directory(&sim, &path)?;
    let doc = body_object(&body)?;
    store_user(&sim, &path_id(&path), &doc)
}

async fn patch_user(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>, body: Bytes) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    let ops = patch_operations(&body)?;
    let mut doc = {
        let state = crate::lock(&sim.state);
        let user = state
            .scim
            .user_by_key(&id)
            .ok_or_else(|| not_found("User", &id))?;
        user_document(user)
    };
    for op in &ops {
        apply_op(&mut doc, op)?;
    }
    store_user(&sim, &id, &doc)
}

async fn delete_user(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    let mut state = crate::lock(&sim.state);
    if state.scim.user_by_key(&id).is_none() {
        return Err(not_found("User", &id));
    }
    if state.scim.read_only {
        return Err(read_only());
    }
    // The SCIM record is gone for good (the Atlassian account is deactivated, not deleted).
    state.scim.remove_user(&id);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// PatchOp.

#[derive(Debug)]
struct PatchOp {
    op: String,
    path: Option<String>,
    value: Option<Value>,
}

fn patch_operations(body: &Bytes) -> Result<Vec<PatchOp>, Response> {
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

fn invalid_path(detail: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
}

/// A parsed attribute path: `attr`, `attr.sub`, `attr[f eq "v"]`, `attr[f eq "v"].sub`, each
/// optionally inside an extension URN (`urn:...:User:attr`).
struct AttrPath {
    container: Option<String>,
    attr: String,
    filter: Option<(String, String)>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Result<AttrPath, Response> {
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

fn apply_op(doc: &mut Map<String, Value>, op: &PatchOp) -> Result<(), Response> {
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
        Some(urn) => {
            let key = find_key(doc, urn).unwrap_or_else(|| urn.clone());
            let entry = doc.entry(key).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            entry
                .as_object_mut()
                .ok_or_else(|| invalid_path(format!("Unsupported path {path}")))?
        }
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
            } else if let Some(value) = &op.value {
                let key = find_key(target, &parsed.attr).unwrap_or_else(|| parsed.attr.clone());
                let entry = target.entry(key).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                if let Some(inner) = entry.as_object_mut() {
                    set_ci(inner, sub, value.clone());
                }
            }
        }
        (Some((field, wanted)), sub) => {
            let key = find_key(target, &parsed.attr).unwrap_or_else(|| parsed.attr.clone());
            let entry = target.entry(key.clone()).or_insert_with(|| json!([]));
            let Value::Array(items) = entry else {
                return Err(invalid_path(format!("{} is not multi-valued", parsed.attr)));
            };
            let matches = |item: &Value| {
                item.as_object()
                    .and_then(|o| get_ci(o, field))
                    .and_then(Value::as_str)
                    == Some(wanted.as_str())
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
                        item.insert(field.clone(), json!(wanted));
                        match (sub, value) {
                            (Some(sub), v) => {
                                item.insert(sub.clone(), v);
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
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Groups.

async fn list_groups(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    params: Params,
) -> Res {
    check_directory(&sim, &path)?;
    let filter = match params.text("filter") {
        Some(f) => Some(parse_filter(f, &["displayName"])?.1),
        None => None,
    };
    let with_members = !excluded(&params, "members");
    let base = base_url(&sim);
    let state = crate::lock(&sim.state);
    let dir = &state.scim;
    let resources: Vec<Value> = dir
        .groups
        .values()
        .filter(|g| filter.as_ref().is_none_or(|f| lower(&g.name) == lower(f)))
        .map(|g| group_resource(&base, dir, g, with_members))
        .collect();
    list_response(&params, resources)
}

/// Member ids from a `members` value: `[{"value": id}, ...]`; every id must be a user.
fn member_ids(dir: &Dir, value: &Value) -> Result<Vec<String>, Response> {
    let Value::Array(items) = value else {
        return Err(invalid_value("members must be an array"));
    };
    items
        .iter()
        .map(|item| {
            let id = item
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_value("each member needs a value"))?;
            if dir.user_by_key(id).is_none() {
                return Err(invalid_value(format!("No user with id {id}")));
            }
            Ok(id.to_owned())
        })
        .collect()
}

async fn create_group(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    body: Bytes,
) -> Res {
    check_directory(&sim, &path)?;
    let doc = body_object(&body)?;
    let name = match get_ci(&doc, "displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(invalid_value("displayName is required")),
    };
    let external_id = get_ci(&doc, "externalId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let base = base_url(&sim);
    let mut state = crate::lock(&sim.state);
    if state.scim.read_only {
        return Err(read_only());
    }
    if state.scim.group(&name).is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("A group with displayName '{name}' already exists"),
        ));
    }
    let members = match get_ci(&doc, "members") {
        Some(value) if !value.is_null() => member_ids(&state.scim, value)?,
        _ => Vec::new(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let group = state.scim.insert_group(&name, id.clone());
    group.external_id = external_id;
    group.members.extend(members);
    let group = state
        .scim
        .group_by_id(&id)
        .ok_or_else(|| not_found("Group", &id))?;
    let resource = group_resource(&base, &state.scim, group, true);
    let mut response = scim_json(StatusCode::CREATED, resource);
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/Groups/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_group(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    params: Params,
) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    let base = base_url(&sim);
    let state = crate::lock(&sim.state);
    let group = state
        .scim
        .group_by_id(&id)
        .ok_or_else(|| not_found("Group", &id))?;
    Ok(scim_json(
        StatusCode::OK,
        group_resource(&base, &state.scim, group, !excluded(&params, "members")),
    ))
}

fn rename_refused(current: &str, wanted: &str) -> Response {
    // Atlassian: "Renaming is not supported (create a new group, move members, delete the old
    // one)". [U] scimType `mutability`.
    err(
        StatusCode::BAD_REQUEST,
        Some("mutability"),
        format!("Group rename is not supported ('{current}' → '{wanted}')"),
    )
}

/// Applies a change to a group under the lock and answers with the group resource.
fn change_group(
    sim: &Inner,
    id: &str,
    change: impl FnOnce(&Dir, &GroupRec) -> Result<GroupChange, Response>,
) -> Res {
    let base = base_url(sim);
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.scim;
    let group = dir.group_by_id(id).ok_or_else(|| not_found("Group", id))?;
    if dir.read_only {
        return Err(read_only());
    }
    let GroupChange {
        members,
        external_id,
    } = change(dir, group)?;
    let name = group.name.clone();
    if let Some(g) = dir.group_mut(&name) {
        g.members = members;
        if let Some(external_id) = external_id {
            g.external_id = external_id;
        }
        g.modified = now_rfc3339();
    }
    let group = dir.group_by_id(id).ok_or_else(|| not_found("Group", id))?;
    Ok(scim_json(
        StatusCode::OK,
        group_resource(&base, dir, group, true),
    ))
}

struct GroupChange {
    members: HashSet<String>,
    external_id: Option<Option<String>>,
}

async fn replace_group(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    body: Bytes,
) -> Res {
    check_directory(&sim, &path)?;
    let doc = body_object(&body)?;
    change_group(&sim, &path_id(&path), |dir, group| {
        match get_ci(&doc, "displayName") {
            Some(Value::String(name)) if name.trim() != group.name => {
                return Err(rename_refused(&group.name, name.trim()));
            }
            Some(Value::String(_)) => {}
            _ => return Err(invalid_value("displayName is required")),
        }
        let members = match get_ci(&doc, "members") {
            Some(value) if !value.is_null() => member_ids(dir, value)?.into_iter().collect(),
            _ => HashSet::new(),
        };
        let external_id = get_ci(&doc, "externalId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(GroupChange {
            members,
            external_id: Some(external_id),
        })
    })
}

async fn patch_group(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>, body: Bytes) -> Res {
    check_directory(&sim, &path)?;
    let ops = patch_operations(&body)?;
    change_group(&sim, &path_id(&path), |dir, group| {
        let mut members = group.members.clone();
        let mut external_id = None;
        for op in &ops {
            apply_group_op(dir, group, op, &mut members, &mut external_id)?;
        }
        Ok(GroupChange {
            members,
            external_id,
        })
    })
}

fn apply_group_op(
    dir: &Dir,
    group: &GroupRec,
    op: &PatchOp,
    members: &mut HashSet<String>,
    external_id: &mut Option<Option<String>>,
) -> Result<(), Response> {
    let Some(path) = &op.path else {
        // No path: a partial group (`{"displayName"?, "members"?, "externalId"?}`).
        let Some(Value::Object(values)) = &op.value else {
            return Err(invalid_value("a patch without path needs an object value"));
        };
        for (k, v) in values {
            let sub = PatchOp {
                op: op.op.clone(),
                path: Some(k.clone()),
                value: Some(v.clone()),
            };
            apply_group_op(dir, group, &sub, members, external_id)?;
        }
        return Ok(());
    };
    let parsed = parse_path(path)?;
    if parsed.container.is_some() {
        return Err(invalid_path(format!("Unsupported path {path}")));
    }
    let attr = parsed.attr.to_ascii_lowercase();
    match (attr.as_str(), &parsed.filter, op.op.as_str()) {
        ("members", None, "add") => {
            let value = op.value.clone().unwrap_or(Value::Null);
            members.extend(member_ids(dir, &value)?);
        }
        // Removal: the value-list form, `{"op":"remove","path":"members","value":[{"value":id}]}`.
        // Atlassian documents only `add` for members (the PATCH example on
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-id-patch);
        // this is the removal Microsoft's provisioning service sends ("Update Group [Remove
        // Members]" in
        // https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups),
        // which its Atlassian Cloud connector uses (batched group PATCH since 2020,
        // https://learn.microsoft.com/entra/identity/saas-apps/atlassian-cloud-provisioning-tutorial).
        ("members", None, "remove") => match &op.value {
            Some(Value::Array(items)) if !items.is_empty() => {
                for item in items {
                    let id = item
                        .get("value")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid_value("each member needs a value"))?;
                    members.remove(id);
                }
            }
            // [U] Without a value RFC 7644 would empty the group; neither Atlassian nor
            // Microsoft documents that for this directory, and a client that sends it by
            // mistake would empty a group that grants product access: refused.
            _ => {
                return Err(invalid_value(
                    "remove on members needs a value listing the members to remove",
                ));
            }
        },
        // [U] The filter form (`members[value eq "id"]`) and `replace` of the whole member list
        // are standard SCIM but documented neither by Atlassian nor by Microsoft for this
        // directory: refused with 400 `invalidPath` (the catch-all below).
        ("displayname", None, "add" | "replace") => match &op.value {
            Some(Value::String(name)) if name.trim() == group.name => {}
            Some(Value::String(name)) => return Err(rename_refused(&group.name, name.trim())),
            _ => return Err(invalid_value("displayName must be a string")),
        },
        ("externalid", None, "add" | "replace") => match &op.value {
            Some(Value::String(id)) => *external_id = Some(Some(id.clone())),
            _ => return Err(invalid_value("externalId must be a string")),
        },
        ("externalid", None, "remove") => *external_id = Some(None),
        _ => {
            return Err(invalid_path(format!(
                "Unsupported {} on path {path}",
                op.op
            )));
        }
    }
    Ok(())
}

async fn delete_group(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    let mut state = crate::lock(&sim.state);
    let name = state
        .scim
        .group_by_id(&id)
        .ok_or_else(|| not_found("Group", &id))?
        .name
        .clone();
    if state.scim.read_only {
        return Err(read_only());
    }
    state.scim.remove_group(&name);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// Discovery (RFC 7643 §5–7), trimmed to what Atlassian supports.

async fn service_provider_config(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let base = base_url(&sim);
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/intro/",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with the directory API key as a bearer token",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        }),
    ))
}

fn attribute(name: &str, kind: &str, multi: bool, required: bool) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    })
}

fn schema_documents(base: &str) -> Vec<Value> {
    let user_attrs = vec![
        {
            let mut a = attribute("userName", "string", false, true);
            a["uniqueness"] = json!("server");
            a
        },
        attribute("name", "complex", false, false),
        attribute("displayName", "string", false, false),
        attribute("nickName", "string", false, false),
        attribute("title", "string", false, false),
        attribute("preferredLanguage", "string", false, false),
        attribute("department", "string", false, false),
        attribute("organization", "string", false, false),
        attribute("timezone", "string", false, false),
        attribute("active", "boolean", false, false),
        attribute("emails", "complex", true, true),
        attribute("phoneNumbers", "complex", true, false),
        {
            let mut a = attribute("groups", "complex", true, false);
            a["mutability"] = json!("readOnly");
            a
        },
    ];
    let group_attrs = vec![
        attribute("displayName", "string", false, true),
        attribute("members", "complex", true, false),
    ];
    // Only what Atlassian documents for the enterprise extension (see ENTERPRISE_DOCUMENTED).
    let enterprise_attrs = vec![
        attribute("organization", "string", false, false),
        attribute("department", "string", false, false),
    ];
    [
        (USER_SCHEMA, "User", "User Account", user_attrs),
        (GROUP_SCHEMA, "Group", "Group", group_attrs),
        (
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Enterprise User",
            enterprise_attrs,
        ),
    ]
    .into_iter()
    .map(|(id, name, description, attributes)| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id,
            "name": name,
            "description": description,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    })
    .collect()
}

async fn schemas(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>, params: Params) -> Res {
    check_directory(&sim, &path)?;
    list_response(&params, schema_documents(&base_url(&sim)))
}

async fn schema(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    schema_documents(&base_url(&sim))
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| scim_json(StatusCode::OK, s))
        .ok_or_else(|| not_found("Schema", &id))
}

fn resource_type_documents(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": USER_SCHEMA,
            "schemaExtensions": [
                {"schema": ENTERPRISE_SCHEMA, "required": false},
                {"schema": ATLASSIAN_SCHEMA, "required": false},
            ],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group", "schema": GROUP_SCHEMA, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

async fn resource_types(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    params: Params,
) -> Res {
    check_directory(&sim, &path)?;
    list_response(&params, resource_type_documents(&base_url(&sim)))
}

async fn resource_type(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let id = path_id(&path);
    resource_type_documents(&base_url(&sim))
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| scim_json(StatusCode::OK, s))
        .ok_or_else(|| not_found("ResourceType", &id))
}
