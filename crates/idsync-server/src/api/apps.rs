//! Apps (identity-provider connections) and targets: list, read, test the connection; create,
//! change and delete those the API provisions (kept in the store, see [`crate::live`]). Those
//! from the config file are provisioned there: the API shows them and says so when asked to
//! change one.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use crate::error::ApiPath;
use axum::http::StatusCode;
use idsync_config::{AppConfig, AppKind, TargetConfig};
use idsync_store::EntryKind;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiState, rfc3339};
use crate::error::{ApiError, ErrorEnvelope};
use crate::live::{ChangeError, MASKED, Provisioned};

/// An app (identity-provider connection) as the API shows it: secrets masked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AppView {
    name: String,
    #[schema(value_type = String, example = "entra")]
    kind: AppKind,
    tenant_id: String,
    client_id: String,
    #[schema(value_type = String, example = "********")]
    client_secret: &'static str,
    /// `{"kind": "directory"}`, `{"kind": "groups", "groups": [...]}` or
    /// `{"kind": "enterprise_app", "app_id": ..., "expand_nested_groups": bool}`.
    #[schema(value_type = Object)]
    scope: idsync_config::Scope,
    nested_groups: bool,
    /// The targets this app feeds.
    targets: Vec<String>,
    schedule: Option<String>,
    next_run: Option<String>,
    running: bool,
    last_success: Option<String>,
    /// Where the app is defined: `file` (the TOML file; change it there) or `api` (created
    /// through the API, kept in the store).
    #[schema(value_type = String, example = "file")]
    provisioned: &'static str,
    /// For an app created through the API: the entry as given, secrets masked (what a `PUT`
    /// takes back, `********` keeping the stored secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<Value>,
}

/// A target (Atlassian instance) as the API shows it: credentials masked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TargetView {
    name: String,
    kind: String,
    base_url: String,
    /// `token` or `basic`; the secret itself is masked.
    #[schema(value_type = String, example = "token")]
    auth: &'static str,
    username: Option<String>,
    #[schema(value_type = String, example = "********")]
    credentials: &'static str,
    concurrency: usize,
    max_requests_per_second: Option<f64>,
    full_read_every_minutes: u64,
    /// The apps that feed this target.
    apps: Vec<String>,
    /// `file` or `api`, as for apps.
    #[schema(value_type = String, example = "file")]
    provisioned: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<Value>,
}

fn find_app(state: &ApiState, name: &str) -> Result<AppConfig, ApiError> {
    state.config.current().app(name).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no app {name:?}; GET /api/v1/apps lists them"
        ))
    })
}

fn find_target(state: &ApiState, name: &str) -> Result<TargetConfig, ApiError> {
    state.config.current().target(name).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no target {name:?}; GET /api/v1/targets lists them"
        ))
    })
}

fn provisioned(state: &ApiState, kind: EntryKind, name: &str) -> Provisioned {
    state
        .config
        .provisioned(kind, name)
        .unwrap_or(Provisioned::File)
}

/// The entry as given through the API (secrets masked), for entries the API provisions.
async fn entry(state: &ApiState, kind: EntryKind, name: &str) -> Option<Value> {
    match provisioned(state, kind, name) {
        Provisioned::File => None,
        Provisioned::Api => state.config.entry(kind, name).await,
    }
}

async fn app_view(state: &ApiState, app: &AppConfig) -> Result<AppView, ApiError> {
    let config = state.config.current();
    Ok(AppView {
        name: app.name.clone(),
        kind: app.kind,
        tenant_id: app.tenant_id.clone(),
        client_id: app.client_id.clone(),
        client_secret: MASKED,
        scope: app.scope.clone(),
        nested_groups: app.nested_groups,
        targets: idsync_runner::targets_of(&config, app)
            .into_iter()
            .map(|t| t.name.clone())
            .collect(),
        schedule: app.schedule.as_ref().map(|s| s.to_string()),
        next_run: state.next_runs.get(&app.name).map(rfc3339),
        running: state.coordinator.is_running(&app.name),
        last_success: state.store.last_successful_run(&app.name).await?,
        provisioned: provisioned(state, EntryKind::App, &app.name).as_str(),
        entry: entry(state, EntryKind::App, &app.name).await,
    })
}

async fn target_view(state: &ApiState, target: &TargetConfig) -> TargetView {
    TargetView {
        name: target.name.clone(),
        kind: target.kind.to_string(),
        base_url: idsync_config::load::redact_url(target.base_url.as_str()),
        auth: if target.token.is_some() {
            "token"
        } else {
            "basic"
        },
        username: target.username.clone(),
        credentials: MASKED,
        concurrency: target.concurrency,
        max_requests_per_second: target.max_requests_per_second,
        full_read_every_minutes: target.full_read_every_minutes,
        apps: state
            .config
            .current()
            .apps
            .iter()
            .filter(|a| a.targets.is_empty() || a.targets.contains(&target.name))
            .map(|a| a.name.clone())
            .collect(),
        provisioned: provisioned(state, EntryKind::Target, &target.name).as_str(),
        entry: entry(state, EntryKind::Target, &target.name).await,
    }
}

/// `GET /idps`: the identity providers idsync reads, one per app.
#[utoipa::path(
    get,
    path = "/idps",
    tag = "idps",
    responses((status = 200, description = "`{\"idps\": [{\"app\", \"kind\", \"tenant_id\", \"scope\"}]}`", body = Object))
)]
pub async fn list_idps(State(state): State<ApiState>) -> Json<Value> {
    let idps: Vec<Value> = state
        .config
        .current()
        .apps
        .iter()
        .map(|a| {
            json!({
                "app": a.name,
                "kind": a.kind,
                "tenant_id": a.tenant_id,
                "scope": a.scope,
            })
        })
        .collect();
    Json(json!({ "idps": idps }))
}

/// `GET /apps`.
#[utoipa::path(
    get,
    path = "/apps",
    tag = "apps",
    responses((status = 200, description = "`{\"apps\": [AppView]}`", body = Object))
)]
pub async fn list_apps(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let mut apps = Vec::new();
    for app in &state.config.current().apps {
        apps.push(app_view(&state, app).await?);
    }
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /apps/{app}`.
#[utoipa::path(
    get,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorEnvelope))
)]
pub async fn get_app(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AppView>, ApiError> {
    let app = find_app(&state, &name)?;
    Ok(Json(app_view(&state, &app).await?))
}

fn provisioned_by_file(state: &ApiState, what: &str, name: &str) -> ApiError {
    let file = state
        .config_path
        .as_ref()
        .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
    ApiError::conflict(
        "provisioned_by_file",
        format!(
            "{what} {name:?} is provisioned from {file} and cannot be changed through the API: edit the file and restart `idsync serve`"
        ),
    )
}

fn change_error(state: &ApiState, e: ChangeError) -> ApiError {
    match e {
        ChangeError::ProvisionedByFile { kind, name } => {
            provisioned_by_file(state, kind.as_str(), &name)
        }
        e => ApiError::from(e),
    }
}

/// 404 unless the app or target `name` is in the config in force.
fn find(state: &ApiState, kind: EntryKind, name: &str) -> Result<(), ApiError> {
    match kind {
        EntryKind::App => find_app(state, name).map(drop),
        EntryKind::Target => find_target(state, name).map(drop),
    }
}

/// Creates an app or target from the request's body; the name it has.
async fn create_entry(
    state: &ApiState,
    kind: EntryKind,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<String, ApiError> {
    let Json(body) = body?;
    state
        .config
        .create(kind, body)
        .await
        .map_err(|e| change_error(state, e))
}

/// Replaces an app or target the API provisions with the request's body. An unknown name is
/// a 404 before the body is looked at.
async fn replace_entry(
    state: &ApiState,
    kind: EntryKind,
    name: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(), ApiError> {
    find(state, kind, name)?;
    let Json(body) = body?;
    state
        .config
        .replace(kind, name, body)
        .await
        .map_err(|e| change_error(state, e))
}

/// Deletes an app or target the API provisions: 204.
async fn delete_entry(
    state: &ApiState,
    kind: EntryKind,
    name: &str,
) -> Result<StatusCode, ApiError> {
    find(state, kind, name)?;
    state
        .config
        .delete(kind, name)
        .await
        .map_err(|e| change_error(state, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /apps`: creates an app, given as one `[[apps]]` entry of the config file is (JSON,
/// secrets inline), checked as the file is. 201 with the app.
#[utoipa::path(
    post,
    path = "/apps",
    tag = "apps",
    request_body(content = Object, description = "One entry as in the config file, secrets inline"),
    responses((status = 201, body = AppView), (status = 400, description = "invalid: `field` names the problem", body = ErrorEnvelope), (status = 409, description = "name_taken", body = ErrorEnvelope))
)]
pub async fn create_app(
    State(state): State<ApiState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let name = create_entry(&state, EntryKind::App, body).await?;
    let Json(app) = get_app(State(state), ApiPath(name)).await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// `PUT /apps/{app}`: replaces an app created through the API (the whole entry; a secret
/// given as `********` keeps the stored one). Refused for apps from the file.
#[utoipa::path(
    put,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name")),
    request_body(content = Object, description = "One entry as in the config file, secrets inline"),
    responses((status = 200, body = AppView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, description = "provisioned_by_file", body = ErrorEnvelope))
)]
pub async fn replace_app(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<AppView>, ApiError> {
    replace_entry(&state, EntryKind::App, &name, body).await?;
    get_app(State(state), ApiPath(name)).await
}

/// `DELETE /apps/{app}`: deletes an app created through the API; its history stays. Refused
/// for apps from the file.
#[utoipa::path(
    delete,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorEnvelope), (status = 409, description = "provisioned_by_file", body = ErrorEnvelope))
)]
pub async fn delete_app(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_entry(&state, EntryKind::App, &name).await
}

/// `GET /targets`.
#[utoipa::path(
    get,
    path = "/targets",
    tag = "targets",
    responses((status = 200, description = "`{\"targets\": [TargetView]}`", body = Object))
)]
pub async fn list_targets(State(state): State<ApiState>) -> Json<Value> {
    let mut targets = Vec::new();
    for target in &state.config.current().targets {
        targets.push(target_view(&state, target).await);
    }
    Json(json!({ "targets": targets }))
}

/// `GET /targets/{target}`.
#[utoipa::path(
    get,
    path = "/targets/{target}",
    tag = "targets",
    params(("target" = String, Path, description = "The target's name")),
    responses((status = 200, body = TargetView), (status = 404, body = ErrorEnvelope))
)]
pub async fn get_target(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TargetView>, ApiError> {
    let target = find_target(&state, &name)?;
    Ok(Json(target_view(&state, &target).await))
}

/// `POST /targets`: creates a target, given as one `[[targets]]` entry of the config file is.
#[utoipa::path(
    post,
    path = "/targets",
    tag = "targets",
    request_body(content = Object, description = "One entry as in the config file, secrets inline"),
    responses((status = 201, body = TargetView), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope))
)]
pub async fn create_target(
    State(state): State<ApiState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    let name = create_entry(&state, EntryKind::Target, body).await?;
    let Json(target) = get_target(State(state), ApiPath(name)).await?;
    Ok((StatusCode::CREATED, Json(target)))
}

/// `PUT /targets/{target}`: replaces a target created through the API. Refused for targets
/// from the file.
#[utoipa::path(
    put,
    path = "/targets/{target}",
    tag = "targets",
    params(("target" = String, Path, description = "The target's name")),
    request_body(content = Object, description = "One entry as in the config file, secrets inline"),
    responses((status = 200, body = TargetView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope))
)]
pub async fn replace_target(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<TargetView>, ApiError> {
    replace_entry(&state, EntryKind::Target, &name, body).await?;
    get_target(State(state), ApiPath(name)).await
}

/// `DELETE /targets/{target}`: deletes a target created through the API, unless an app names
/// it (409, naming the apps). Refused for targets from the file.
#[utoipa::path(
    delete,
    path = "/targets/{target}",
    tag = "targets",
    params(("target" = String, Path, description = "The target's name")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorEnvelope), (status = 409, description = "provisioned_by_file or in_use", body = ErrorEnvelope))
)]
pub async fn delete_target(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_entry(&state, EntryKind::Target, &name).await
}

/// `POST /targets/{target}/test`: what `idsync check` shows for the target (reachable,
/// credentials, admin rights, version, what is not synced at that version, seats), changing
/// nothing. 200 whether or not the target passed: `ok` says.
#[utoipa::path(
    post,
    path = "/targets/{target}/test",
    tag = "targets",
    params(("target" = String, Path, description = "The target's name")),
    responses((status = 200, description = "`{\"target\", \"ok\", \"probe\" | \"error\"}`", body = Object), (status = 404, body = ErrorEnvelope), (status = 503, description = "stopping: idsync is stopping and starts nothing", body = ErrorEnvelope))
)]
pub async fn test_target(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let config = find_target(&state, &name)?;
    // Work a stop waits for; once stopping, refused.
    let _working = state.coordinator.begin()?;
    let started = Instant::now();
    let probe = match idsync_atlassian::build_target(&config) {
        Ok(target) => target.probe().await,
        Err(e) => {
            return Ok(Json(json!({
                "target": name,
                "ok": false,
                "error": e.to_string(),
            })));
        }
    };
    Ok(Json(json!({
        "target": name,
        "ok": probe.ok(),
        "probe": probe,
        "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })))
}

/// `POST /apps/{app}/test`: signs in to the source and reads what is in scope, as
/// `idsync check` does (a full read: on a large tenant this takes as long as a first sync's
/// source read).
#[utoipa::path(
    post,
    path = "/apps/{app}/test",
    tag = "apps",
    params(("app" = String, Path, description = "The app's name")),
    responses((status = 200, description = "`{\"app\", \"ok\", \"source\" | \"error\"}`", body = Object), (status = 404, body = ErrorEnvelope), (status = 503, description = "stopping: idsync is stopping and starts nothing", body = ErrorEnvelope))
)]
pub async fn test_app(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = find_app(&state, &name)?;
    // Work a stop waits for; once stopping, refused.
    let _working = state.coordinator.begin()?;
    let started = Instant::now();
    let result = match idsync_entra::EntraSource::new(&app, &app.source_attributes()) {
        Ok(source) => source.read(None).await,
        Err(e) => Err(e),
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let body = match result {
        Ok(read) => {
            json!({ "app": name, "ok": true, "source": read.stats, "elapsed_ms": elapsed_ms })
        }
        Err(e) => {
            json!({ "app": name, "ok": false, "error": e.to_string(), "elapsed_ms": elapsed_ms })
        }
    };
    Ok((StatusCode::OK, Json(body)))
}
