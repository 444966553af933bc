//! Groups: create, delete, the member list (nested groups included), membership changes and
//! the groups picker.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::common::{Params, empty, enc, json_response, window};
use crate::state::{UserRec, lower, now_rfc3339};

use super::users::{object_body, str_field};
use super::{
    API, Res, bad, group_json, group_self, no_group, no_user, read_only_error, user_brief,
};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
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
}

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
