//! Users (`/admin/users...`, `/users`): list, create, update, rename, delete, the user's group
//! memberships, and the non-admin user resources.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};

use crate::common::{Params, empty, json_response};
use crate::state::{UserRec, lower, now_rfc3339};
use crate::{Inner, Product};

use super::licence::check_seat;
use super::{
    Res, app_user, bad, contains_ci, detailed_group, detailed_user, err, err_ctx, no_group,
    no_user, object_body, opt_str, paged, read_only_details, read_only_groups, req_param, req_str,
    slug, str_list, user_filter,
};

/// The routes served here, by path under each API prefix, each with its operationId.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Inner>>)> {
    vec![
        // getUsers_1 / createUser / updateUserDetails / deleteUser
        (
            "/admin/users",
            get(admin_users)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        ),
        // renameUser
        ("/admin/users/rename", post(rename_user)),
        // addUserToGroups
        ("/admin/users/add-groups", post(add_user_to_groups)),
        // addGroupToUser (deprecated since 2.10, still in 8.14)
        ("/admin/users/add-group", post(add_group_to_user)),
        // removeGroupFromUser
        ("/admin/users/remove-group", post(remove_group_from_user)),
        // findGroupsForUser
        ("/admin/users/more-members", get(groups_for_user)),
        // findOtherGroupsForUser
        ("/admin/users/more-non-members", get(other_groups_for_user)),
        // getUsers_2
        ("/users", get(users)),
        // getUser
        ("/users/{userSlug}", get(user_by_slug)),
    ]
}

async fn admin_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let users: Vec<&UserRec> = dir.users_matching(&filter);
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// createUser: QUERY parameters, no body; 204 on success.
async fn create_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.trim().to_owned();
    let display_name = req_param(&params, "displayName")?.trim().to_owned();
    let email = req_param(&params, "emailAddress")?.trim().to_owned();
    let notify = params.bool("notify", false).map_err(bad)?;
    let add_to_default = params.bool("addToDefaultGroup", true).map_err(bad)?;
    if !notify && params.text("password").is_none() {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("password"),
            "A password is required unless notify is set.",
        ));
    }
    if !email.contains('@') {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("emailAddress"),
            "Please enter a valid e-mail address.",
        ));
    }
    let mut state = crate::lock(&sim.state);
    if state.bitbucket.read_only {
        return Err(read_only_details());
    }
    if state.bitbucket.user(&name).is_some() {
        return Err(err_ctx(
            StatusCode::CONFLICT,
            Some("name"),
            format!("A user with the name {name} already exists."),
        ));
    }
    let default_group = sim.config.bitbucket_default_group.clone();
    if add_to_default {
        // The user is not created when the default group would exceed the licence.
        check_seat(
            &sim,
            &state.bitbucket,
            None,
            std::slice::from_ref(&default_group),
        )?;
    }
    let key = state.new_key(Product::Bitbucket);
    let now = now_rfc3339();
    let dir = &mut state.bitbucket;
    dir.insert_user(UserRec {
        key: key.clone(),
        name,
        email,
        display_name,
        active: true,
        external_id: None,
        attributes: Default::default(),
        properties: Default::default(),
        created: now.clone(),
        modified: now,
    });
    if add_to_default {
        if dir.group(&default_group).is_none() {
            dir.insert_group(&default_group, uuid::Uuid::new_v4().to_string());
        }
        if let Some(group) = dir.group_mut(&default_group) {
            group.members.insert(key);
        }
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// updateUserDetails: body UserUpdate `{name, displayName, email}`; 200 RestDetailedUser.
async fn update_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = req_str(&body, "name")?.to_owned();
    let display_name = opt_str(&body, "displayName")?.map(str::to_owned);
    let email = opt_str(&body, "email")?.map(str::to_owned);
    if let Some(email) = &email
        && !email.contains('@')
    {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("email"),
            "Please enter a valid e-mail address.",
        ));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    if dir.read_only {
        return Err(read_only_details());
    }
    if let Some(user) = dir.user_by_key_mut(&key) {
        if let Some(d) = display_name.filter(|d| !d.trim().is_empty()) {
            user.display_name = d;
        }
        if let Some(e) = email {
            user.email = e;
        }
        user.modified = now_rfc3339();
    }
    let user = dir.user_by_key(&key).ok_or_else(|| no_user(&name))?;
    Ok(json_response(
        StatusCode::OK,
        detailed_user(&base, dir, user),
    ))
}

/// deleteUser: `?name=`; 200 with the deleted RestDetailedUser.
async fn delete_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.to_owned();
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let user = dir.user(&name).ok_or_else(|| no_user(&name))?;
    if lower(&name) == lower(&sim.config.admin_user) {
        return Err(err(StatusCode::CONFLICT, "You cannot delete yourself."));
    }
    if dir.read_only {
        return Err(read_only_details());
    }
    let body = detailed_user(&base, dir, user);
    let key = user.key.clone();
    dir.remove_user(&key);
    Ok(json_response(StatusCode::OK, body))
}

/// renameUser: body UserRename `{name, newName}`; 200 RestDetailedUser. The spec lists no 409,
/// so a taken name is a 400.
async fn rename_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = req_str(&body, "name")?.to_owned();
    let new_name = req_str(&body, "newName")?.trim().to_owned();
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    if dir.read_only {
        return Err(read_only_details());
    }
    if !dir.rename_user(&key, &new_name) {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("newName"),
            format!("A user with the name {new_name} already exists."),
        ));
    }
    let user = dir.user_by_key(&key).ok_or_else(|| no_user(&new_name))?;
    Ok(json_response(
        StatusCode::OK,
        detailed_user(&base, dir, user),
    ))
}

/// Adds one user to several groups after checking they all exist and the licence allows it.
fn add_memberships(sim: &Inner, username: &str, groups: &[String]) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    for group in groups {
        if dir.group(group).is_none() {
            return Err(no_group(group));
        }
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    check_seat(sim, dir, Some(&key), groups)?;
    for group in groups {
        if let Some(g) = dir.group_mut(group) {
            g.members.insert(key.clone());
            g.modified = now_rfc3339();
        }
    }
    // 200 with an empty JSON body ("content: application/json: {}").
    Ok(empty(StatusCode::OK))
}

/// addUserToGroups: body UserAndGroups `{user, groups[]}`.
async fn add_user_to_groups(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "user")?.to_owned();
    let groups = str_list(&body, "groups")?;
    add_memberships(&sim, &user, &groups)
}

/// addGroupToUser (deprecated): GroupPickerContext, `context` = user, `itemName` = group.
async fn add_group_to_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "context")?.to_owned();
    let group = req_str(&body, "itemName")?.to_owned();
    add_memberships(&sim, &user, &[group])
}

pub(super) fn remove_membership(sim: &Inner, username: &str, group: &str) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    if let Some(g) = dir.group_mut(group) {
        // Removing a non-member is not an error.
        g.members.remove(&key);
    }
    Ok(empty(StatusCode::OK))
}

/// removeGroupFromUser: GroupPickerContext, `context` = user, `itemName` = group.
async fn remove_group_from_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "context")?.to_owned();
    let group = req_str(&body, "itemName")?.to_owned();
    remove_membership(&sim, &user, &group)
}

/// findGroupsForUser: the groups `context` (a user) belongs to. The 8.14 document's
/// description and response schema for this operation are copied from the users listing; the
/// operation's name and Bitbucket itself return a page of RestDetailedGroup.
async fn groups_for_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    let names: Vec<String> = dir
        .groups_of(&key)
        .into_iter()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// findOtherGroupsForUser: groups `context` (a user) is not in.
async fn other_groups_for_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    let names: Vec<String> = dir
        .groups
        .values()
        .filter(|g| !g.members.contains(&key) && contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getUsers_2: page of RestApplicationUser, `filter` and `group` supported.
async fn users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let users: Vec<&UserRec> = match params.text("group") {
        Some(group) => match dir.group(group) {
            Some(g) => dir.direct_members(g),
            None => Vec::new(),
        },
        None => dir.users.values().collect(),
    }
    .into_iter()
    .filter(|u| user_filter(u, &filter))
    .collect();
    let body = paged(&users, &params, |u| app_user(&base, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getUser: by slug (not necessarily the username).
async fn user_by_slug(State(sim): State<Arc<Inner>>, Path(user_slug): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let wanted = lower(&user_slug);
    let user = state
        .bitbucket
        .users
        .values()
        .find(|u| slug(&u.name) == wanted)
        .ok_or_else(|| no_user(&user_slug))?;
    Ok(json_response(StatusCode::OK, app_user(&base, user)))
}
