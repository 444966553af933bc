//! Users: read, create, update (rename, deactivate), delete, search and the paged list,
//! plus `myself` and `applicationrole` (the caller and the licensed roles).

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::Inner;
use crate::common::{Caller, Params, empty, enc, json_response, parse_json, window};
use crate::state::{Dir, State as SimState, UserRec, lower, now_rfc3339};

use super::{
    API, Res, avatar_urls, bad, err, field_err, licence_error, no_user, read_only_error, user_json,
    user_self,
};

pub(super) fn routes() -> Router<Arc<Inner>> {
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
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-myself/#api-api-2-myself-get
        .route(&format!("{API}/myself"), get(myself))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-applicationrole/#api-api-2-applicationrole-get
        // (Administer Jira global permission)
        .route(&format!("{API}/applicationrole"), get(application_roles))
}

/// Finds the user addressed by `username` or `key` (the two query parameters Jira DC accepts).
pub(super) fn find_user<'a>(
    dir: &'a Dir,
    params: &Params,
    key_param: &str,
) -> Result<&'a UserRec, Response> {
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

pub(super) fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, Response> {
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

pub(super) fn object_body(body: &Bytes) -> Result<Value, Response> {
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
