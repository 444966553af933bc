//! HTTP control of the product state, for a simulator run as a separate process. Everything
//! here mirrors a method of [`crate::AtlassianSim`]:
//!
//! | route | body / answer |
//! |---|---|
//! | `GET/POST /_sim/{product}/users` | list / seed a [`SimUser`] → `{"key"}` |
//! | `GET /_sim/{product}/users/{name}` | one user |
//! | `GET/POST /_sim/{product}/groups` | names / `{"name"}` |
//! | `GET /_sim/{product}/groups/{name}/members` | direct usernames |
//! | `POST /_sim/{product}/memberships` | `{"group","user"}` |
//! | `POST /_sim/{product}/nested-groups` | `{"parent","child"}` |
//! | `PUT /_sim/{product}/licence` | `{"seats": n or null}` |
//! | `PUT /_sim/{product}/read-only` | `{"read_only": bool}` |
//! | `PUT /_sim/{product}/rate-limit` | [`RateLimit`] or `null` |
//! | `GET/POST /_sim/jira/projects` | `{"key","name","lead"}`; list with lead usernames |
//! | `POST /_sim/jira/components` | `{"project_key","name","lead"?}` → `{"id"}` |
//! | `GET /_sim/jira/components/{id}` | `{"id","lead"}` |
//! | `GET /_sim/jira/users/{name}/properties` | the user's properties |
//! | `GET/DELETE /_sim/bitbucket/requests` | the Bitbucket request log |
//! | `POST /_sim/confluence/long-tasks/complete` | finish pending deletions |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AtlassianSim, Inner, Product, RateLimit, SimUser};

fn product(slug: &str) -> Result<Product, Response> {
    Product::from_slug(slug).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown product '{slug}'")})),
        )
            .into_response()
    })
}

fn handle(inner: Arc<Inner>) -> AtlassianSim {
    AtlassianSim { inner }
}

type Res = Result<Response, Response>;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/_sim/{product}/users", get(list_users).post(seed_user))
        .route("/_sim/{product}/users/{name}", get(get_user))
        .route("/_sim/{product}/groups", get(list_groups).post(seed_group))
        .route("/_sim/{product}/groups/{name}/members", get(members))
        .route("/_sim/{product}/memberships", post(seed_membership))
        .route("/_sim/{product}/nested-groups", post(nest_group))
        .route("/_sim/{product}/licence", put(set_licence))
        .route("/_sim/{product}/read-only", put(set_read_only))
        .route("/_sim/{product}/version", put(crate::versions::set_version))
        .route("/_sim/{product}/rate-limit", put(set_rate_limit))
        .route("/_sim/jira/projects", get(list_projects).post(add_project))
        .route("/_sim/jira/components", post(add_component))
        .route("/_sim/jira/components/{id}", get(get_component))
        .route("/_sim/jira/users/{name}/properties", get(properties))
        .route(
            "/_sim/bitbucket/requests",
            get(requests).delete(clear_requests),
        )
        .route("/_sim/confluence/long-tasks/complete", post(complete_tasks))
        .with_state(inner)
}

async fn list_users(State(inner): State<Arc<Inner>>, Path(p): Path<String>) -> Res {
    Ok(Json(handle(inner).users(product(&p)?)).into_response())
}

async fn seed_user(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(user): Json<SimUser>,
) -> Res {
    let key = handle(inner).seed_user(product(&p)?, user);
    Ok((StatusCode::CREATED, Json(json!({"key": key}))).into_response())
}

async fn get_user(State(inner): State<Arc<Inner>>, Path((p, name)): Path<(String, String)>) -> Res {
    match handle(inner).user(product(&p)?, &name) {
        Some(user) => Ok(Json(user).into_response()),
        None => Ok(StatusCode::NOT_FOUND.into_response()),
    }
}

async fn list_groups(State(inner): State<Arc<Inner>>, Path(p): Path<String>) -> Res {
    Ok(Json(handle(inner).groups(product(&p)?)).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn seed_group(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<NameBody>,
) -> Res {
    handle(inner).seed_group(product(&p)?, &body.name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn members(State(inner): State<Arc<Inner>>, Path((p, name)): Path<(String, String)>) -> Res {
    Ok(Json(handle(inner).members(product(&p)?, &name)).into_response())
}

#[derive(Deserialize)]
struct MembershipBody {
    group: String,
    user: String,
}

async fn seed_membership(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<MembershipBody>,
) -> Res {
    if handle(inner).seed_membership(product(&p)?, &body.group, &body.user) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_FOUND.into_response())
    }
}

#[derive(Deserialize)]
struct NestBody {
    parent: String,
    child: String,
}

async fn nest_group(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<NestBody>,
) -> Res {
    handle(inner).nest_group(product(&p)?, &body.parent, &body.child);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct SeatsBody {
    seats: Option<usize>,
}

async fn set_licence(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<SeatsBody>,
) -> Res {
    handle(inner).set_licence_seats(product(&p)?, body.seats);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ReadOnlyBody {
    read_only: bool,
}

async fn set_read_only(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<ReadOnlyBody>,
) -> Res {
    handle(inner).set_read_only(product(&p)?, body.read_only);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_rate_limit(
    State(inner): State<Arc<Inner>>,
    Path(p): Path<String>,
    Json(body): Json<Option<RateLimit>>,
) -> Res {
    handle(inner).set_rate_limit(product(&p)?, body);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ProjectBody {
    key: String,
    name: String,
    lead: String,
}

async fn add_project(State(inner): State<Arc<Inner>>, Json(body): Json<ProjectBody>) -> Response {
    handle(inner).add_project(&body.key, &body.name, &body.lead);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_projects(State(inner): State<Arc<Inner>>) -> Response {
    let sim = handle(inner);
    let keys: Vec<String> = crate::lock(&sim.inner.state)
        .projects
        .keys()
        .cloned()
        .collect();
    let projects: Vec<Value> = keys
        .iter()
        .map(|k| json!({"key": k, "lead": sim.project_lead(k)}))
        .collect();
    Json(projects).into_response()
}

#[derive(Deserialize)]
struct ComponentBody {
    project_key: String,
    name: String,
    #[serde(default)]
    lead: Option<String>,
}

async fn add_component(
    State(inner): State<Arc<Inner>>,
    Json(body): Json<ComponentBody>,
) -> Response {
    let id = handle(inner).add_component(&body.project_key, &body.name, body.lead.as_deref());
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn get_component(State(inner): State<Arc<Inner>>, Path(id): Path<u64>) -> Response {
    Json(json!({"id": id, "lead": handle(inner).component_lead(id)})).into_response()
}

async fn properties(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    Json(handle(inner).user_properties(&name)).into_response()
}

async fn requests(State(inner): State<Arc<Inner>>) -> Response {
    Json(handle(inner).bitbucket_requests()).into_response()
}

async fn clear_requests(State(inner): State<Arc<Inner>>) -> Response {
    handle(inner).clear_bitbucket_requests();
    StatusCode::NO_CONTENT.into_response()
}

async fn complete_tasks(State(inner): State<Arc<Inner>>) -> Response {
    handle(inner).complete_long_tasks();
    StatusCode::NO_CONTENT.into_response()
}
