//! The `/Groups` endpoints: list, create, read, replace, patch (members by value list, no
//! rename) and delete.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::filter::{excluded, list_response, parse_filter};
use super::patch::{PatchOp, invalid_path, parse_path, patch_operations};
use super::resource::{get_ci, group_resource};
use super::{
    DirPath, PREFIX, Res, base_url, body_object, check_directory, created, err, invalid_value,
    not_found, path_id, read_only, scim_json,
};
use crate::Inner;
use crate::common::{Params, empty};
use crate::state::{Dir, GroupRec, lower, now_rfc3339};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
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
}

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
    Ok(created(&format!("{base}/Groups/{id}"), resource))
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
