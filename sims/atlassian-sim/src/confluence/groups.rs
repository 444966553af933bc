//! Admin: groups and memberships: create and delete a group, add and remove a member.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post, put};

use crate::Inner;
use crate::common::{empty, json_response};

use super::{API, Res, bad, body_object, err, group_json, no_group, no_user, opt_str, read_only};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-group/
        .route(&format!("{API}/admin/group"), post(create_group))
        .route(
            &format!("{API}/admin/group/{{groupName}}"),
            delete(delete_group),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/ (user-group membership)
        .route(
            &format!("{API}/user/{{username}}/group/{{groupName}}"),
            put(add_member).delete(remove_member),
        )
}

/// `POST /admin/group` `{"name","type":"group"}`: [U] 201 with the Group; 409 when it exists.
async fn create_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = body_object(&body)?;
    let name = opt_str(&body, "name")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("name is required"))?;
    if let Some(kind) = opt_str(&body, "type")?
        && kind != "group"
    {
        return Err(bad(format!("Unsupported group type: {kind}")));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    if state.confluence.read_only {
        return Err(read_only());
    }
    if state.confluence.group(&name).is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("A group with name '{name}' already exists"),
        ));
    }
    state
        .confluence
        .insert_group(&name, uuid::Uuid::new_v4().to_string());
    Ok(json_response(StatusCode::CREATED, group_json(&base, &name)))
}

/// `DELETE /admin/group/{groupName}`: [U] 204; 404 when missing.
async fn delete_group(State(sim): State<Arc<Inner>>, Path(group): Path<String>) -> Res {
    let mut state = crate::lock(&sim.state);
    if state.confluence.group(&group).is_none() {
        return Err(no_group(&group));
    }
    if state.confluence.read_only {
        return Err(read_only());
    }
    state.confluence.remove_group(&group);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn membership(sim: &Inner, username: &str, group: &str, add: bool) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.confluence;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    if dir.read_only {
        return Err(read_only());
    }
    if let Some(g) = dir.group_mut(group) {
        // Idempotent both ways: 204 whether or not anything changed.
        if add {
            g.members.insert(key);
        } else {
            g.members.remove(&key);
        }
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn add_member(
    State(sim): State<Arc<Inner>>,
    Path((username, group)): Path<(String, String)>,
) -> Res {
    membership(&sim, &username, &group, true)
}

async fn remove_member(
    State(sim): State<Arc<Inner>>,
    Path((username, group)): Path<(String, String)>,
) -> Res {
    membership(&sim, &username, &group, false)
}
