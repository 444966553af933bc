//! Jira Data Center REST API v2 (`/jira/rest/api/2`): users, user properties, groups,
//! group membership (nested groups included in listings), and the project / component leads
//! that block deleting or deactivating a user.
//!
//! Reference: https://developer.atlassian.com/server/jira/platform/rest/v10002/ and the
//! DC 11.3 OpenAPI as generated into jira.js (`src/server/**`); api-contracts.md C.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::common::{Caller, Params, empty, enc, json_response, parse_json, window};
use crate::state::{Dir, State as SimState, UserRec, lower, now_rfc3339};

const API: &str = "/jira/rest/api/2";

type Res = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-get
        // (and -post, -put, -delete on the same page)
        .route(
            &format!("{API}/user"),
            get(get_user)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-search-get
        .route(&format!("{API}/user/search"), get(search_users))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-list-get (DC 10.3+)
        .route(&format!("{API}/user/list"), get(list_users))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-serverinfo/
        .route(
            &format!("{API}/serverInfo"),
            get(crate::versions::jira_server_info),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-myself/#api-api-2-myself-get
        .route(&format!("{API}/myself"), get(myself))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-applicationrole/#api-api-2-applicationrole-get
        // (Administer Jira global permission)
        .route(&format!("{API}/applicationrole"), get(application_roles))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-get
        .route(&format!("{API}/user/properties"), get(property_keys))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-propertykey-get
        // (and -put, -delete)
        .route(
            &format!("{API}/user/properties/{{propertyKey}}"),
            get(get_property).put(set_property).delete(delete_property),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-post
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-delete
        .route(
            &format!("{API}/group"),
            post(create_group).delete(delete_group),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-member-get
        .route(&format!("{API}/group/member"), get(group_members))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-user-post
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-user-delete
        .route(
            &format!("{API}/group/user"),
            post(add_member).delete(remove_member),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-groups/#api-api-2-groups-picker-get
        .route(&format!("{API}/groups/picker"), get(groups_picker))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-get
        .route(&format!("{API}/project"), get(list_projects))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-get
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-put
        .route(
            &format!("{API}/project/{{projectIdOrKey}}"),
            get(get_project).put(update_project),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-components-get
        .route(
            &format!("{API}/project/{{projectIdOrKey}}/components"),
            get(project_components),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-component/#api-api-2-component-id-get
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-component/#api-api-2-component-id-put
        .route(
            &format!("{API}/component/{{id}}"),
            get(get_component).put(update_component),
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

// ---------------------------------------------------------------------------------------------
// Users.

/// Finds the user addressed by `username` or `key` (the two query parameters Jira DC accepts).
fn find_user<'a>(dir: &'a Dir, params: &Params, key_param: &str) -> Result<&'a UserRec, Response> {
    if let Some(name) = params.text("username") {
        return dir.user(name).ok_or_else(|| no_user(name));
    }
    if let Some(key) = params.text(key_param) {
        return dir.user_by_key(key).ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("The user with the key '{key}' does not exist"),
            )
        });
    }
    Err(bad(
        "Either the 'username' or the 'key' query parameters need to be provided",
    ))
}

async fn get_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let user = find_user(&state.jira, &params, "key")?;
    let expand_groups = params
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "groups"));
    Ok(json_response(
        StatusCode::OK,
        user_json(&base, &state.jira, user, expand_groups),
    ))
}

/// `GET /myself`: the account the credentials belong to. One the directory does not hold (the
/// simulator's built-in administrator) is shown as accounts made before Jira 8 are, with its
/// username as its key.
async fn myself(State(sim): State<Arc<Inner>>, Extension(caller): Extension<Caller>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let body = match state.jira.user(&caller.name) {
        Some(user) => user_json(&base, &state.jira, user, false),
        None => json!({
            "self": user_self(&base, &caller.name),
            "key": caller.name,
            "name": caller.name,
            "emailAddress": format!("{}@example.com", caller.name),
            "avatarUrls": avatar_urls(&base, &caller.name),
            "displayName": caller.name,
            "active": true,
            "deleted": false,
            "timeZone": "UTC",
            "locale": "en_US",
            "groups": {"size": 0, "items": []},
            "applicationRoles": {"size": 0, "items": []},
            "expand": "groups,applicationRoles",
        }),
    };
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /applicationrole`: one application role, Jira Software, whose seats follow the
/// licence-seat knob (`AtlassianSim::set_licence_seats`): active users count against it.
/// [U] An unlimited licence is shown with `hasUnlimitedSeats` and -1 seats.
async fn application_roles(State(sim): State<Arc<Inner>>) -> Res {
    let state = crate::lock(&sim.state);
    let used = state.jira.active_count();
    let (seats, remaining) = match state.jira.seats {
        Some(seats) => (
            i64::try_from(seats).unwrap_or(i64::MAX),
            i64::try_from(seats.saturating_sub(used)).unwrap_or(i64::MAX),
        ),
        None => (-1, -1),
    };
    Ok(json_response(
        StatusCode::OK,
        json!([{
            "key": "jira-software",
            "name": "Jira Software",
            "groups": ["jira-software-users"],
            "defaultGroups": ["jira-software-users"],
            "selectedByDefault": true,
            "defined": true,
            "numberOfSeats": seats,
            "remainingSeats": remaining,
            "userCount": used,
            "userCountDescription": "users",
            "hasUnlimitedSeats": state.jira.seats.is_none(),
            "platform": false,
        }]),
    ))
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, Response> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(field_err(
            StatusCode::BAD_REQUEST,
            name,
            format!("'{name}' must be a string"),
        )),
    }
}

fn bool_field(body: &Value, name: &str) -> Result<Option<bool>, Response> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        // Jira's Jackson binding also takes "true"/"false" strings.
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(field_err(
            StatusCode::BAD_REQUEST,
            name,
            format!("'{name}' must be a boolean"),
        )),
    }
}

fn object_body(body: &Bytes) -> Result<Value, Response> {
    let value = parse_json(body).map_err(bad)?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object"));
    }
    Ok(value)
}

fn valid_email(email: &str) -> bool {
    let mut parts = email.splitn(2, '@');
    matches!((parts.next(), parts.next()), (Some(a), Some(b)) if !a.is_empty() && !b.is_empty())
}

/// Projects led by the user (by key), for the lead refusal (C.3).
fn led_projects(state: &SimState, key: &str) -> Vec<String> {
    state
        .projects
        .values()
        .filter(|p| p.lead == key)
        .map(|p| p.key.clone())
        .collect()
}

async fn create_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = str_field(&body, "name")?.unwrap_or("").trim().to_owned();
    let email = str_field(&body, "emailAddress")?
        .unwrap_or("")
        .trim()
        .to_owned();
    let display_name = str_field(&body, "displayName")?
        .unwrap_or("")
        .trim()
        .to_owned();
    let active = bool_field(&body, "active")?.unwrap_or(true);
    if name.is_empty() {
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "username",
            "You must specify a username.",
        ));
    }
    if email.is_empty() {
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "email",
            "You must specify an email address.",
        ));
    }
    if !valid_email(&email) {
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "email",
            "You must specify a valid email address.",
        ));
    }
    if display_name.is_empty() {
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "displayName",
            "You must specify a full name.",
        ));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    if state.jira.read_only {
        return Err(read_only_error("add user"));
    }
    if state.jira.user(&name).is_some() {
        // C.2: an existing user is a 400 with the field error, not a 409.
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "username",
            "A user with that username already exists.",
        ));
    }
    if active
        && state
            .jira
            .seats
            .is_some_and(|seats| state.jira.active_count() >= seats)
    {
        return Err(licence_error());
    }
    let key = state.new_key(crate::Product::Jira);
    let now = now_rfc3339();
    state.jira.insert_user(UserRec {
        key: key.clone(),
        name: name.clone(),
        email,
        display_name,
        active,
        external_id: None,
        attributes: Default::default(),
        properties: Default::default(),
        created: now.clone(),
        modified: now,
    });
    let user = state.jira.user_by_key(&key).ok_or_else(|| no_user(&name))?;
    let mut response = json_response(
        StatusCode::CREATED,
        user_json(&base, &state.jira, user, false),
    );
    if let Ok(location) = HeaderValue::from_str(&user_self(&base, &name)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn update_user(State(sim): State<Arc<Inner>>, params: Params, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let new_name = str_field(&body, "name")?.map(|s| s.trim().to_owned());
    let email = str_field(&body, "emailAddress")?.map(|s| s.trim().to_owned());
    let display_name = str_field(&body, "displayName")?.map(|s| s.trim().to_owned());
    let active = bool_field(&body, "active")?;
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let user = find_user(&state.jira, &params, "key")?.clone();
    if state.jira.read_only {
        return Err(read_only_error("update user"));
    }
    if let Some(email) = &email
        && !valid_email(email)
    {
        return Err(field_err(
            StatusCode::BAD_REQUEST,
            "email",
            "You must specify a valid email address.",
        ));
    }
    if let Some(name) = &new_name {
        if name.is_empty() {
            return Err(field_err(
                StatusCode::BAD_REQUEST,
                "username",
                "You must specify a username.",
            ));
        }
        if lower(name) != lower(&user.name) && state.jira.user(name).is_some() {
            return Err(field_err(
                StatusCode::BAD_REQUEST,
                "username",
                "A user with that username already exists.",
            ));
        }
    }
    if active == Some(false) && user.active {
        let projects = led_projects(&state, &user.key);
        if !projects.is_empty() {
            // [U text] C.3: deactivating a project lead is refused until the lead changes.
            return Err(bad(format!(
                "Cannot deactivate user '{}': the user is currently a project lead of the following project(s): {}. Assign a new project lead first.",
                user.name,
                projects.join(", ")
            )));
        }
    }
    if active == Some(true)
        && !user.active
        && state
            .jira
            .seats
            .is_some_and(|seats| state.jira.active_count() >= seats)
    {
        return Err(licence_error());
    }
    if let Some(name) = &new_name
        && name != &user.name
    {
        state.jira.rename_user(&user.key, name);
    }
    if let Some(rec) = state.jira.user_by_key_mut(&user.key) {
        if let Some(email) = email {
            rec.email = email;
        }
        if let Some(display_name) = display_name.filter(|d| !d.is_empty()) {
            rec.display_name = display_name;
        }
        if let Some(active) = active {
            rec.active = active;
        }
        rec.modified = now_rfc3339();
    }
    let rec = state
        .jira
        .user_by_key(&user.key)
        .ok_or_else(|| no_user(&user.name))?;
    Ok(json_response(
        StatusCode::OK,
        user_json(&base, &state.jira, rec, false),
    ))
}

async fn delete_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let mut state = crate::lock(&sim.state);
    let user = find_user(&state.jira, &params, "key")?.clone();
    if state.jira.read_only {
        return Err(read_only_error("delete user"));
    }
    let projects = led_projects(&state, &user.key);
    if !projects.is_empty() {
        // [U text] C.3: Jira refuses to delete a project lead.
        return Err(bad(format!(
            "Cannot delete user '{}': the user is currently a project lead of the following project(s): {}. Assign a new project lead first.",
            user.name,
            projects.join(", ")
        )));
    }
    // C.3: component leads do not block; the component falls back to the project default.
    for component in state.components.values_mut() {
        if component.lead.as_deref() == Some(user.key.as_str()) {
            component.lead = None;
        }
    }
    state.jira.remove_user(&user.key);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET /user/search`: a bare array. The DC 10/11 spec: maxResults default 50, max 100, and
/// startAt+maxResults only reach into the first 100 matches ("startAt=98 and maxResults=20
/// returns 2 users").
async fn search_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let start_at = params.usize("startAt", 0).map_err(bad)?;
    let max_results = params.usize("maxResults", 50).map_err(bad)?.min(100);
    let include_active = params.bool("includeActive", true).map_err(bad)?;
    let include_inactive = params.bool("includeInactive", false).map_err(bad)?;
    // [U] `username` is optional in the 10/11 spec; "." (the usual idiom) and an absent or
    // empty value match everyone.
    let query = lower(params.get("username").unwrap_or("").trim());
    let match_all = query.is_empty() || query == "." || query == "%" || query == "*";
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let matches: Vec<&UserRec> = state
        .jira
        .users
        .values()
        .filter(|u| (u.active && include_active) || (!u.active && include_inactive))
        .filter(|u| match_all || user_matches(u, &query))
        .take(100)
        .collect();
    let (page, _) = window(&matches, start_at, max_results);
    let values: Vec<Value> = page
        .iter()
        .map(|u| user_json(&base, &state.jira, u, false))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(values)))
}

/// Jira's user search matches the start of the username, of the e-mail address, and of the
/// display name or any word of it.
fn user_matches(user: &UserRec, query: &str) -> bool {
    let display = lower(&user.display_name);
    lower(&user.name).starts_with(query)
        || lower(&user.email).starts_with(query)
        || display.starts_with(query)
        || display.split_whitespace().any(|w| w.starts_with(query))
}

/// `GET /user/list` (DC 10.3+ / 11): cursor paging over every user. The cursor is opaque to
/// clients; here it is the hex of the last username returned, so deletions between pages do
/// not make the walk skip anyone.
async fn list_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let max_results = params
        .usize("maxResults", 2000)
        .map_err(bad)?
        .clamp(1, 2000);
    let after = match params.text("cursor") {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| bad("Invalid cursor"))?),
    };
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let mut iter: Box<dyn Iterator<Item = (&String, &UserRec)>> =
        match &after {
            Some(after) => Box::new(state.jira.users.range::<String, _>((
                std::ops::Bound::Excluded(after),
                std::ops::Bound::Unbounded,
            ))),
            None => Box::new(state.jira.users.iter()),
        };
    let mut values = Vec::new();
    let mut last = None;
    for (name, user) in iter.by_ref().take(max_results) {
        values.push(user_json(&base, &state.jira, user, false));
        last = Some(name.clone());
    }
    let is_last = iter.next().is_none();
    let mut self_url = format!("{base}{API}/user/list?maxResults={max_results}");
    if let Some(cursor) = params.text("cursor") {
        self_url.push_str(&format!("&cursor={}", enc(cursor)));
    }
    let mut page = json!({
        "self": self_url,
        "maxResults": max_results,
        "isLast": is_last,
        "values": values,
    });
    if !is_last && let Some(last) = last {
        let cursor = encode_cursor(&last);
        page["nextCursor"] = json!(cursor);
        page["nextPage"] = json!(format!(
            "{base}{API}/user/list?cursor={cursor}&maxResults={max_results}"
        ));
    }
    Ok(json_response(StatusCode::OK, page))
}

fn encode_cursor(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

// ---------------------------------------------------------------------------------------------
// User properties.

fn property_user<'a>(dir: &'a Dir, params: &Params) -> Result<&'a UserRec, Response> {
    find_user(dir, params, "userKey")
}

async fn property_keys(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let user = property_user(&state.jira, &params)?;
    let keys: Vec<Value> = user
        .properties
        .keys()
        .map(|k| {
            json!({
                "self": format!("{base}{API}/user/properties/{}?userKey={}", enc(k), enc(&user.key)),
                "key": k,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!({"keys": keys})))
}

fn no_property(key: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("Property with key '{key}' not found."),
    )
}

async fn get_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
) -> Res {
    let state = crate::lock(&sim.state);
    let user = property_user(&state.jira, &params)?;
    let value = user.properties.get(&key).ok_or_else(|| no_property(&key))?;
    Ok(json_response(
        StatusCode::OK,
        json!({"key": key, "value": value}),
    ))
}

async fn set_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
    body: Bytes,
) -> Res {
    let value = parse_json(&body).map_err(bad)?;
    if key.len() > 255 {
        return Err(bad(
            "The property key cannot be longer than 255 characters.",
        ));
    }
    let mut state = crate::lock(&sim.state);
    let user_key = property_user(&state.jira, &params)?.key.clone();
    let user = state
        .jira
        .user_by_key_mut(&user_key)
        .ok_or_else(|| no_user(&user_key))?;
    // [U] 201 when created, 200 when replaced (the usual Jira entity-property contract).
    let status = if user.properties.insert(key, value).is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(empty(status))
}

async fn delete_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
) -> Res {
    let mut state = crate::lock(&sim.state);
    let user_key = property_user(&state.jira, &params)?.key.clone();
    let user = state
        .jira
        .user_by_key_mut(&user_key)
        .ok_or_else(|| no_user(&user_key))?;
    user.properties
        .remove(&key)
        .ok_or_else(|| no_property(&key))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// Groups.

async fn create_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = str_field(&body, "name")?.unwrap_or("").trim().to_owned();
    if name.is_empty() {
        return Err(bad("You must specify a valid group name."));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    if state.jira.read_only {
        return Err(read_only_error("create group"));
    }
    if state.jira.group(&name).is_some() {
        // H.6: an existing group is a 400, not a 409.
        return Err(bad(format!(
            "A group or user with this name already exists: '{name}'."
        )));
    }
    state
        .jira
        .insert_group(&name, uuid::Uuid::new_v4().to_string());
    let mut response = json_response(StatusCode::CREATED, group_json(&base, &name));
    if let Ok(location) = HeaderValue::from_str(&group_self(&base, &name)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `DELETE /group?groupname=&swapGroup=`. The doc lists "400 group does not exist" and
/// "404"; the simulator gives 400 for a missing group and 404 for a missing swapGroup.
async fn delete_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = params
        .text("groupname")
        .ok_or_else(|| bad("You must specify a group name."))?;
    let mut state = crate::lock(&sim.state);
    if state.jira.group(name).is_none() {
        return Err(bad(format!("Specified group '{name}' does not exist.")));
    }
    if let Some(swap) = params.text("swapGroup")
        && state.jira.group(swap).is_none()
    {
        return Err(no_group(swap));
    }
    if state.jira.read_only {
        return Err(read_only_error("delete group"));
    }
    state.jira.remove_group(name);
    // [U] 200 with no body (api-contracts.md J.4).
    Ok(empty(StatusCode::OK))
}

/// `GET /group/member`: members of the group AND of its nested subgroups (C.2).
async fn group_members(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = params
        .text("groupname")
        .ok_or_else(|| bad("You must specify a group name."))?;
    let include_inactive = params.bool("includeInactiveUsers", false).map_err(bad)?;
    let start_at = params.usize("startAt", 0).map_err(bad)?;
    // [U] Jira caps this page at 50 users, the default.
    let max_results = params.usize("maxResults", 50).map_err(bad)?.clamp(1, 50);
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let group = state.jira.group(name).ok_or_else(|| no_group(name))?;
    let members: Vec<&UserRec> = state
        .jira
        .transitive_members(group)
        .into_iter()
        .filter(|u| include_inactive || u.active)
        .collect();
    let total = members.len();
    let (page, is_last) = window(&members, start_at, max_results);
    let values: Vec<Value> = page.iter().map(|u| user_brief(&base, u)).collect();
    let page_url = |start: usize| {
        format!(
            "{base}{API}/group/member?groupname={}&includeInactiveUsers={include_inactive}&startAt={start}&maxResults={max_results}",
            enc(&group.name)
        )
    };
    let mut body = json!({
        "self": page_url(start_at),
        "maxResults": max_results,
        "startAt": start_at,
        "total": total,
        "isLast": is_last,
        "values": values,
    });
    if !is_last {
        body["nextPage"] = json!(page_url(start_at + max_results));
    }
    Ok(json_response(StatusCode::OK, body))
}

async fn add_member(State(sim): State<Arc<Inner>>, params: Params, body: Bytes) -> Res {
    let group_name = params
        .text("groupname")
        .ok_or_else(|| bad("You must specify a group name."))?
        .to_owned();
    let body = object_body(&body)?;
    let username = str_field(&body, "name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("You must specify a username."))?
        .to_owned();
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let group_display = state
        .jira
        .group(&group_name)
        .ok_or_else(|| no_group(&group_name))?
        .name
        .clone();
    let user = state
        .jira
        .user(&username)
        .ok_or_else(|| no_user(&username))?;
    let key = user.key.clone();
    if state.jira.read_only {
        return Err(read_only_error("add user to group"));
    }
    let group = state
        .jira
        .group_mut(&group_name)
        .ok_or_else(|| no_group(&group_name))?;
    if !group.members.insert(key) {
        // H.6: adding an existing (direct) member is a 400.
        return Err(bad(format!(
            "Cannot add user. '{username}' is already a member of '{group_display}'"
        )));
    }
    group.modified = now_rfc3339();
    Ok(json_response(
        StatusCode::CREATED,
        group_json(&base, &group_display),
    ))
}

async fn remove_member(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let group_name = params
        .text("groupname")
        .ok_or_else(|| bad("You must specify a group name."))?;
    let username = params
        .text("username")
        .ok_or_else(|| bad("You must specify a username."))?;
    let mut state = crate::lock(&sim.state);
    let group_display = state
        .jira
        .group(group_name)
        .ok_or_else(|| no_group(group_name))?
        .name
        .clone();
    let key = state
        .jira
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    if state.jira.read_only {
        return Err(read_only_error("remove user from group"));
    }
    let group = state
        .jira
        .group_mut(group_name)
        .ok_or_else(|| no_group(group_name))?;
    if !group.members.remove(&key) {
        // [U text] Only direct memberships can be removed; a nested member is not one.
        return Err(bad(format!(
            "Cannot remove user '{username}' from group '{group_display}' since user is not a member of '{group_display}'"
        )));
    }
    // [U] 200 with no body (api-contracts.md J.4).
    Ok(empty(StatusCode::OK))
}

/// `GET /groups/picker`: the only way to list groups in Jira DC (C.3). Case-insensitive
/// substring match; `maxResults` [U] defaults to 20 (jira.ajax.autocomplete.limit).
async fn groups_picker(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let query = lower(params.get("query").unwrap_or(""));
    let max_results = params.usize("maxResults", 20).map_err(bad)?;
    let exclude: Vec<String> = params.all("exclude").into_iter().map(lower).collect();
    let state = crate::lock(&sim.state);
    let matching: Vec<&str> = state
        .jira
        .groups
        .iter()
        .filter(|(k, _)| k.contains(&query) && !exclude.contains(k))
        .map(|(_, g)| g.name.as_str())
        .collect();
    let shown: Vec<Value> = matching
        .iter()
        .take(max_results)
        .map(|name| json!({"name": name, "html": highlight(name, &query), "labels": []}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "header": format!("Showing {} of {} matching groups", shown.len(), matching.len()),
            "total": matching.len(),
            "groups": shown,
        }),
    ))
}

fn highlight(name: &str, query: &str) -> String {
    if query.is_empty() {
        return name.to_owned();
    }
    match lower(name).find(query) {
        Some(i) if name.is_char_boundary(i) && name.is_char_boundary(i + query.len()) => format!(
            "{}<b>{}</b>{}",
            &name[..i],
            &name[i..i + query.len()],
            &name[i + query.len()..]
        ),
        _ => name.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Projects and components.

fn project_json(base: &str, state: &SimState, key: &str, with_lead: bool) -> Option<Value> {
    let project = state.projects.get(key)?;
    let mut value = json!({
        "self": format!("{base}{API}/project/{}", project.id),
        "id": project.id.to_string(),
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
        "avatarUrls": {},
    });
    if with_lead {
        value["lead"] = match state.jira.user_by_key(&project.lead) {
            Some(user) => user_brief(base, user),
            None => json!({"key": project.lead, "name": project.lead, "active": false}),
        };
    }
    Some(value)
}

fn find_project_key(state: &SimState, id_or_key: &str) -> Option<String> {
    let upper = id_or_key.to_uppercase();
    if state.projects.contains_key(&upper) {
        return Some(upper);
    }
    state
        .projects
        .values()
        .find(|p| p.id.to_string() == id_or_key)
        .map(|p| p.key.clone())
}

fn no_project(key: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No project could be found with key '{key}'."),
    )
}

async fn list_projects(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let with_lead = params
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "lead"));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let projects: Vec<Value> = state
        .projects
        .keys()
        .filter_map(|k| project_json(&base, &state, k, with_lead))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(projects)))
}

async fn get_project(State(sim): State<Arc<Inner>>, Path(id_or_key): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let value = project_json(&base, &state, &key, true).ok_or_else(|| no_project(&id_or_key))?;
    Ok(json_response(StatusCode::OK, value))
}

/// `PUT /project/{key}` `{"lead":"username"}`. [U] Jira DC documents 201 for a successful
/// project update.
async fn update_project(
    State(sim): State<Arc<Inner>>,
    Path(id_or_key): Path<String>,
    body: Bytes,
) -> Res {
    let body = object_body(&body)?;
    let lead = str_field(&body, "lead")?.map(str::to_owned);
    let name = str_field(&body, "name")?.map(str::to_owned);
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let lead_key = match &lead {
        Some(lead) => {
            let user = state.jira.user(lead).ok_or_else(|| {
                field_err(
                    StatusCode::BAD_REQUEST,
                    "projectLead",
                    "The user you have specified as project lead does not exist.",
                )
            })?;
            if !user.active {
                return Err(field_err(
                    StatusCode::BAD_REQUEST,
                    "projectLead",
                    "The user you have specified as project lead is not active.",
                ));
            }
            Some(user.key.clone())
        }
        None => None,
    };
    if let Some(project) = state.projects.get_mut(&key) {
        if let Some(lead_key) = lead_key {
            project.lead = lead_key;
        }
        if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
            project.name = name;
        }
    }
    let value = project_json(&base, &state, &key, true).ok_or_else(|| no_project(&key))?;
    Ok(json_response(StatusCode::CREATED, value))
}

fn component_json(base: &str, state: &SimState, id: u64) -> Option<Value> {
    let component = state.components.get(&id)?;
    let project = state.projects.get(&component.project);
    let mut value = json!({
        "self": format!("{base}{API}/component/{id}"),
        "id": id.to_string(),
        "name": component.name,
        "project": component.project,
        "projectId": project.map(|p| p.id),
        "assigneeType": if component.lead.is_some() { "COMPONENT_LEAD" } else { "PROJECT_DEFAULT" },
        "isAssigneeTypeValid": true,
    });
    if let Some(lead) = component.lead.as_deref()
        && let Some(user) = state.jira.user_by_key(lead)
    {
        value["lead"] = user_brief(base, user);
        value["leadUserName"] = json!(user.name);
    }
    Some(value)
}

async fn project_components(State(sim): State<Arc<Inner>>, Path(id_or_key): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let components: Vec<Value> = state
        .components
        .values()
        .filter(|c| c.project == key)
        .filter_map(|c| component_json(&base, &state, c.id))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(components)))
}

fn no_component(id: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("The component with id {id} does not exist."),
    )
}

async fn get_component(State(sim): State<Arc<Inner>>, Path(id): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let value = id
        .parse::<u64>()
        .ok()
        .and_then(|n| component_json(&base, &state, n))
        .ok_or_else(|| no_component(&id))?;
    Ok(json_response(StatusCode::OK, value))
}

/// `PUT /component/{id}` `{"leadUserName":"x"}`; an empty name clears the lead.
async fn update_component(
    State(sim): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    let body = object_body(&body)?;
    let lead = str_field(&body, "leadUserName")?.map(str::to_owned);
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let n = id
        .parse::<u64>()
        .ok()
        .filter(|n| state.components.contains_key(n))
        .ok_or_else(|| no_component(&id))?;
    let new_lead = match lead.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(name) => {
            let user = state.jira.user(name).ok_or_else(|| {
                field_err(
                    StatusCode::BAD_REQUEST,
                    "leadUserName",
                    format!("The user {name} does not exist."),
                )
            })?;
            Some(Some(user.key.clone()))
        }
    };
    if let (Some(new_lead), Some(component)) = (new_lead, state.components.get_mut(&n)) {
        component.lead = new_lead;
    }
    let value = component_json(&base, &state, n).ok_or_else(|| no_component(&id))?;
    Ok(json_response(StatusCode::OK, value))
}
