//! Groups (`/admin/groups...`, `/groups`): list, create, delete and the group's members.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use serde_json::json;

use crate::Inner;
use crate::common::{Params, empty, json_response};
use crate::state::{UserRec, lower, now_rfc3339};

use super::licence::{licence_groups, licensed, licensed_count};
use super::users::remove_membership;
use super::{
    Res, contains_ci, detailed_group, detailed_user, err_ctx, licence_error, no_group, no_user,
    object_body, paged, read_only_groups, req_param, req_str, str_list, user_filter,
};

/// The routes served here, by path under each API prefix, each with its operationId.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Inner>>)> {
    vec![
        // getGroups_1 / createGroup / deleteGroup
        (
            "/admin/groups",
            get(admin_groups).post(create_group).delete(delete_group),
        ),
        // addUsersToGroup
        ("/admin/groups/add-users", post(add_users_to_group)),
        // addUserToGroup (deprecated since 2.10, still in 8.14)
        ("/admin/groups/add-user", post(add_user_to_group)),
        // removeUserFromGroup
        ("/admin/groups/remove-user", post(remove_user_from_group)),
        // findUsersInGroup
        ("/admin/groups/more-members", get(users_in_group)),
        // findUsersNotInGroup
        ("/admin/groups/more-non-members", get(users_not_in_group)),
        // getGroups
        ("/groups", get(group_names)),
    ]
}

async fn admin_groups(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let names: Vec<String> = state
        .bitbucket
        .groups
        .values()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getGroups: a page of group names (strings).
async fn group_names(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let names: Vec<String> = state
        .bitbucket
        .groups
        .values()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| json!(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// createGroup: `?name=`; 200 RestDetailedGroup; 409 when it exists.
async fn create_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.trim().to_owned();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    if dir.group(&name).is_some() {
        return Err(err_ctx(
            StatusCode::CONFLICT,
            Some("name"),
            format!("A group named {name} already exists."),
        ));
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    dir.insert_group(&name, uuid::Uuid::new_v4().to_string());
    Ok(json_response(StatusCode::OK, detailed_group(&name)))
}

/// deleteGroup: `?name=`; 200 with the deleted RestDetailedGroup.
async fn delete_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.to_owned();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let display = dir
        .group(&name)
        .ok_or_else(|| no_group(&name))?
        .name
        .clone();
    if dir.read_only {
        return Err(read_only_groups());
    }
    dir.remove_group(&name);
    Ok(json_response(StatusCode::OK, detailed_group(&display)))
}

/// Adds several users to one group: all must exist; the licence is checked for each newcomer.
fn add_users(sim: &Inner, group: &str, users: &[String]) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    let mut keys = Vec::new();
    for user in users {
        keys.push(dir.user(user).ok_or_else(|| no_user(user))?.key.clone());
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    if let Some(seats) = dir.seats {
        let grants = licence_groups(sim);
        if grants.contains(&lower(group)) {
            let newcomers: BTreeSet<&String> =
                keys.iter().filter(|k| !licensed(dir, &grants, k)).collect();
            if licensed_count(dir, &grants) + newcomers.len() > seats {
                return Err(licence_error());
            }
        }
    }
    if let Some(g) = dir.group_mut(group) {
        g.members.extend(keys);
        g.modified = now_rfc3339();
    }
    Ok(empty(StatusCode::OK))
}

/// addUsersToGroup: body GroupAndUsers `{group, users[]}`.
async fn add_users_to_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "group")?.to_owned();
    let users = str_list(&body, "users")?;
    add_users(&sim, &group, &users)
}

/// addUserToGroup (deprecated): UserPickerContext, `context` = group, `itemName` = user.
async fn add_user_to_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "context")?.to_owned();
    let user = req_str(&body, "itemName")?.to_owned();
    add_users(&sim, &group, &[user])
}

/// removeUserFromGroup: UserPickerContext, `context` = group, `itemName` = user.
async fn remove_user_from_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "context")?.to_owned();
    let user = req_str(&body, "itemName")?.to_owned();
    remove_membership(&sim, &user, &group)
}

/// findUsersInGroup: direct members of `context` (a group), RestDetailedUser page.
async fn users_in_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let group = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let users: Vec<&UserRec> = dir
        .direct_members(g)
        .into_iter()
        .filter(|u| user_filter(u, &filter))
        .collect();
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// findUsersNotInGroup: users not directly in `context` (a group).
async fn users_not_in_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let group = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let users: Vec<&UserRec> = dir
        .users
        .values()
        .filter(|u| !g.members.contains(&u.key) && user_filter(u, &filter))
        .collect();
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}
