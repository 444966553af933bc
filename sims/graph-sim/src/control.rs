//! `/_sim/` control routes: the [`GraphSim`] control API over HTTP, for a simulator run as a
//! separate process (the table is in the crate docs). Bodies and answers are JSON; errors are
//! `{"error": "..."}` with 404 (unknown object), 409 (conflict) or 400 (bad input).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::store::SimError;
use crate::{GraphSim, NewUser, ObjectKind, PagingKnobs};

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::NotFound(_) => StatusCode::NOT_FOUND,
            SimError::Conflict(_) => StatusCode::CONFLICT,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

type Answer = Result<Response, SimError>;

fn created(id: String) -> Answer {
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

fn done(result: Result<(), SimError>) -> Answer {
    result.map(|()| StatusCode::NO_CONTENT.into_response())
}

/// Axum's own JSON rejection is plain text; control clients get our JSON error instead.
fn body<T: serde::de::DeserializeOwned>(raw: &axum::body::Bytes) -> Result<T, SimError> {
    serde_json::from_slice(raw).map_err(|e| SimError::Invalid(format!("body: {e}")))
}

pub(crate) fn router(sim: GraphSim) -> Router {
    Router::new()
        .route("/_sim/tenant", get(tenant))
        .route("/_sim/credentials", get(credentials))
        .route("/_sim/snapshot", get(snapshot))
        .route("/_sim/users", get(list_users).post(add_user))
        .route(
            "/_sim/users/{id}",
            axum::routing::patch(update_user).delete(delete_user),
        )
        .route("/_sim/users/{id}/{action}", post(user_action))
        .route("/_sim/groups", get(list_groups).post(create_group))
        .route(
            "/_sim/groups/{id}",
            axum::routing::patch(update_group).delete(delete_group),
        )
        .route("/_sim/groups/{id}/members", post(add_member))
        .route("/_sim/groups/{id}/members/{member}", delete(remove_member))
        .route("/_sim/devices", post(add_device))
        .route("/_sim/contacts", post(add_contact))
        .route("/_sim/service-principals", post(add_sp))
        .route("/_sim/objects/{id}", delete(delete_object))
        .route("/_sim/apps", get(apps))
        .route("/_sim/apps/{app}/assignments", post(assign))
        .route("/_sim/apps/{app}/assignments/{principal}", delete(unassign))
        .route("/_sim/delta/expire", post(expire))
        .route("/_sim/delta/resync", post(resync))
        .route("/_sim/delta/replay", post(replay))
        .route("/_sim/auth", get(get_auth).put(set_auth))
        .route("/_sim/auth/revoke", post(revoke))
        .route("/_sim/paging", get(get_paging).put(set_paging))
        .with_state(sim)
}

async fn tenant(State(sim): State<GraphSim>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        sim.to_json(),
    )
        .into_response()
}

async fn credentials(State(sim): State<GraphSim>) -> Json<Value> {
    let c = sim.credentials();
    Json(
        json!({"tenantId": c.tenant_id, "tenantDomain": c.tenant_domain,
                "clientId": c.client_id, "clientSecret": c.client_secret,
                "extensionAppId": sim.extension_app_id()}),
    )
}

async fn snapshot(State(sim): State<GraphSim>) -> Json<crate::Snapshot> {
    Json(sim.snapshot())
}

async fn list_users(
    State(sim): State<GraphSim>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    match q.get("upn") {
        Some(upn) => sim
            .find_user_by_upn(upn)
            .map(|id| Json(json!({"id": id})).into_response())
            .ok_or_else(|| SimError::NotFound(format!("user '{upn}'"))),
        None => Ok(Json(sim.user_ids()).into_response()),
    }
}

async fn add_user(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    let user: NewUser = body(&raw)?;
    created(sim.add_user(user)?)
}

async fn update_user(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    done(sim.update_user(&id, body(&raw)?))
}

async fn delete_user(State(sim): State<GraphSim>, Path(id): Path<String>) -> Answer {
    done(sim.hard_delete_user(&id))
}

async fn user_action(
    State(sim): State<GraphSim>,
    Path((id, action)): Path<(String, String)>,
) -> Answer {
    done(match action.as_str() {
        "disable" => sim.disable_user(&id),
        "enable" => sim.enable_user(&id),
        "soft-delete" => sim.soft_delete_user(&id),
        "restore" => sim.restore_user(&id),
        other => Err(SimError::NotFound(format!("action '{other}'"))),
    })
}

async fn list_groups(
    State(sim): State<GraphSim>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Vec<String>> {
    Json(match q.get("name") {
        Some(name) => sim.find_groups_by_name(name),
        None => sim.group_ids(),
    })
}

async fn create_group(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    created(sim.create_group_with(body(&raw)?)?)
}

async fn update_group(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    done(sim.update_group(&id, body(&raw)?))
}

async fn delete_group(State(sim): State<GraphSim>, Path(id): Path<String>) -> Answer {
    done(sim.delete_group(&id))
}

#[derive(Deserialize)]
struct MemberBody {
    id: String,
}

async fn add_member(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    let member: MemberBody = body(&raw)?;
    done(sim.add_member(&id, &member.id))
}

async fn remove_member(
    State(sim): State<GraphSim>,
    Path((id, member)): Path<(String, String)>,
) -> Answer {
    done(sim.remove_member(&id, &member))
}

fn object_body(raw: &axum::body::Bytes) -> Result<serde_json::Map<String, Value>, SimError> {
    match body::<Value>(raw)? {
        Value::Object(m) => Ok(m),
        _ => Err(SimError::Invalid("body must be a JSON object".into())),
    }
}

async fn create_kind(sim: &GraphSim, kind: ObjectKind, raw: &axum::body::Bytes) -> Answer {
    let props = object_body(raw)?;
    if !props.get("displayName").is_some_and(Value::is_string) {
        return Err(SimError::Invalid("displayName is required".into()));
    }
    created(sim.write().create_object(kind, props)?)
}

async fn add_device(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    create_kind(&sim, ObjectKind::Device, &raw).await
}

async fn add_contact(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    create_kind(&sim, ObjectKind::OrgContact, &raw).await
}

async fn add_sp(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    create_kind(&sim, ObjectKind::ServicePrincipal, &raw).await
}

async fn delete_object(State(sim): State<GraphSim>, Path(id): Path<String>) -> Answer {
    done(sim.delete_object(&id))
}

async fn apps(State(sim): State<GraphSim>) -> Json<Value> {
    Json(Value::Array(
        sim.apps()
            .into_iter()
            .map(|(id, app_id, name)| json!({"id": id, "appId": app_id, "displayName": name}))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignBody {
    principal_id: String,
    #[serde(default)]
    app_role_id: Option<String>,
}

async fn assign(
    State(sim): State<GraphSim>,
    Path(app): Path<String>,
    raw: axum::body::Bytes,
) -> Answer {
    let req: AssignBody = body(&raw)?;
    let id = match req.app_role_id {
        Some(role) => sim.assign_app_role(&app, &req.principal_id, &role)?,
        None => sim.assign_app(&app, &req.principal_id)?,
    };
    created(id)
}

async fn unassign(
    State(sim): State<GraphSim>,
    Path((app, principal)): Path<(String, String)>,
) -> Answer {
    done(sim.unassign_app(&app, &principal))
}

async fn expire(State(sim): State<GraphSim>) -> StatusCode {
    sim.expire_delta_tokens();
    StatusCode::NO_CONTENT
}

async fn resync(State(sim): State<GraphSim>) -> StatusCode {
    sim.force_resync();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ReplayBody {
    count: usize,
}

async fn replay(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    let req: ReplayBody = body(&raw)?;
    sim.replay_next_delta(req.count);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthBody {
    #[serde(default)]
    secret_expired: Option<bool>,
    #[serde(default)]
    deny_permission: Option<bool>,
    #[serde(default)]
    token_lifetime_secs: Option<u64>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

async fn set_auth(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    let req: AuthBody = body(&raw)?;
    if let Some(v) = req.secret_expired {
        sim.set_secret_expired(v);
    }
    if let Some(v) = req.deny_permission {
        sim.deny_permission(v);
    }
    if let Some(v) = req.token_lifetime_secs {
        sim.set_token_lifetime(Duration::from_secs(v));
    }
    if let Some(v) = req.permissions {
        sim.set_permissions(&v);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_auth(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!({"permissions": sim.permissions()}))
}

async fn revoke(State(sim): State<GraphSim>) -> StatusCode {
    sim.revoke_tokens();
    StatusCode::NO_CONTENT
}

async fn get_paging(State(sim): State<GraphSim>) -> Json<PagingKnobs> {
    Json(sim.paging())
}

/// Merges the given fields into the current knobs (`"pageCap": null` removes the cap).
async fn set_paging(State(sim): State<GraphSim>, raw: axum::body::Bytes) -> Answer {
    let patch = object_body(&raw)?;
    let mut current =
        serde_json::to_value(sim.paging()).map_err(|e| SimError::Invalid(e.to_string()))?;
    if let Value::Object(map) = &mut current {
        for (k, v) in patch {
            if !map.contains_key(&k) {
                return Err(SimError::Invalid(format!("unknown paging knob '{k}'")));
            }
            map.insert(k, v);
        }
    }
    let knobs: PagingKnobs =
        serde_json::from_value(current).map_err(|e| SimError::Invalid(e.to_string()))?;
    sim.set_paging(knobs);
    Ok(Json(sim.paging()).into_response())
}
