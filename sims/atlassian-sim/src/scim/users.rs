//! The `/Users` endpoints: list, create, read, replace (PUT), patch and delete.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value};

use super::filter::{list_response, parse_filter};
use super::patch::{apply_op, patch_operations};
use super::resource::{user_document, user_from_document, user_resource};
use super::{
    DirPath, PREFIX, Res, base_url, body_object, check_directory, created, err, not_found, path_id,
    read_only, scim_json,
};
use crate::common::{Params, empty};
use crate::state::{UserRec, lower, now_rfc3339};
use crate::{Inner, Product};

pub(super) fn routes() -> Router<Arc<Inner>> {
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
}

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
        return Err(user_name_taken(&rec.name));
    }
    rec.key = state.new_key(Product::Scim);
    let key = rec.key.clone();
    state.scim.insert_user(rec);
    let user = state
        .scim
        .user_by_key(&key)
        .ok_or_else(|| not_found("User", &key))?;
    let resource = user_resource(&base, &state.scim, user);
    Ok(created(&format!("{base}/Users/{key}"), resource))
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

fn user_name_taken(name: &str) -> Response {
    err(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        format!("A user with userName '{name}' already exists"),
    )
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
            return Err(user_name_taken(&rec.name));
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
