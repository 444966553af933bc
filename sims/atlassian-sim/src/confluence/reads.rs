//! Reads: groups, a group's members, a user, the current user, the user list and a user's
//! groups, with `start`/`limit` paging.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use crate::Inner;
use crate::common::{Caller, Params, enc, json_response};
use crate::state::{Dir, UserRec, now_rfc3339};

use super::{
    API, Res, bad, err, expand_param, expands_status, group_json, no_group, no_user, page,
    path_enc, person,
};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-group/
        .route(&format!("{API}/group"), get(list_groups))
        .route(&format!("{API}/group/{{groupName}}"), get(get_group))
        .route(
            &format!("{API}/group/{{groupName}}/member"),
            get(group_members),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/
        .route(&format!("{API}/user"), get(get_user))
        // .../api-group-user/ (list all users, 8.4+; [U] start/limit params)
        .route(&format!("{API}/user/list"), get(list_users))
        // .../api-group-user/ (groups of a user)
        .route(&format!("{API}/user/memberof"), get(member_of))
        // https://developer.atlassian.com/server/confluence/rest/v910/api-group-user/ (the
        // current user)
        .route(&format!("{API}/user/current"), get(current_user))
}

async fn list_groups(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let groups: Vec<Value> = state
        .confluence
        .groups
        .values()
        .map(|g| group_json(&base, &g.name))
        .collect();
    let body = page(&base, "/group", &expand_param(&params), &params, groups)?;
    Ok(json_response(StatusCode::OK, body))
}

async fn get_group(State(sim): State<Arc<Inner>>, Path(group): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let g = state
        .confluence
        .group(&group)
        .ok_or_else(|| no_group(&group))?;
    Ok(json_response(StatusCode::OK, group_json(&base, &g.name)))
}

/// `GET /group/{groupName}/member`: direct members as Person objects.
async fn group_members(
    State(sim): State<Arc<Inner>>,
    Path(group): Path<String>,
    params: Params,
) -> Res {
    let with_status = expands_status(&params);
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.confluence;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let members: Vec<Value> = dir
        .direct_members(g)
        .into_iter()
        .map(|u| person(&base, u, with_status))
        .collect();
    let path = format!("/group/{}/member", path_enc(&g.name));
    let body = page(&base, &path, &expand_param(&params), &params, members)?;
    Ok(json_response(StatusCode::OK, body))
}

fn find_user<'a>(dir: &'a Dir, params: &Params) -> Result<&'a UserRec, Response> {
    if let Some(name) = params.text("username") {
        return dir.user(name).ok_or_else(|| no_user(name));
    }
    if let Some(key) = params.text("key") {
        return dir.user_by_key(key).ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("No user found with key: {key}"),
            )
        });
    }
    Err(bad("A username or key parameter is required"))
}

/// `GET /user?username=|key=`: Person; `expand=status` adds "Active"/"Deactivated".
async fn get_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let user = find_user(&state.confluence, &params)?;
    Ok(json_response(
        StatusCode::OK,
        person(&base, user, expands_status(&params)),
    ))
}

/// `GET /user/current`: the account the credentials belong to, as a Person. One the directory
/// does not hold (the simulator's built-in administrator) gets a user key made from its name.
async fn current_user(
    State(sim): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let body = match state.confluence.user(&caller.name) {
        Some(user) => person(&base, user, expands_status(&params)),
        None => {
            let key = format!(
                "{:0>32}",
                caller
                    .name
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            person(
                &base,
                &UserRec {
                    key,
                    name: caller.name.clone(),
                    email: String::new(),
                    display_name: caller.name.clone(),
                    active: true,
                    external_id: None,
                    attributes: Default::default(),
                    properties: Default::default(),
                    created: now_rfc3339(),
                    modified: now_rfc3339(),
                },
                expands_status(&params),
            )
        }
    };
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /user/list`: every user (active and deactivated), paged like the other lists.
async fn list_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let with_status = expands_status(&params);
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let users: Vec<Value> = state
        .confluence
        .users
        .values()
        .map(|u| person(&base, u, with_status))
        .collect();
    let body = page(&base, "/user/list", &expand_param(&params), &params, users)?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /user/memberof?username=|key=`: the user's groups.
async fn member_of(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.confluence;
    let user = find_user(dir, &params)?;
    let groups: Vec<Value> = dir
        .groups_of(&user.key)
        .into_iter()
        .map(|g| group_json(&base, &g.name))
        .collect();
    let extra = format!("username={}&", enc(&user.name));
    let body = page(&base, "/user/memberof", &extra, &params, groups)?;
    Ok(json_response(StatusCode::OK, body))
}
