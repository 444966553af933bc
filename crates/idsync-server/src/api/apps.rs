//! Apps (identity-provider connections) and targets: list, read, test the connection. Those
//! from the config file are provisioned there: the API shows them and says so when asked to
//! change one.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use idsync_config::{AppConfig, AppKind, TargetConfig};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiState, rfc3339};
use crate::error::ApiError;

/// Shown in place of every secret: the API never returns one.
const MASKED: &str = "********";

#[derive(Serialize)]
pub struct AppView {
    name: String,
    kind: AppKind,
    tenant_id: String,
    client_id: String,
    client_secret: &'static str,
    scope: idsync_config::Scope,
    nested_groups: bool,
    /// The targets this app feeds.
    targets: Vec<String>,
    schedule: Option<String>,
    next_run: Option<String>,
    running: bool,
    last_success: Option<String>,
    /// Where the app is defined: `file` (the TOML file; change it there).
    provisioned: &'static str,
}

#[derive(Serialize)]
pub struct TargetView {
    name: String,
    kind: String,
    base_url: String,
    /// `token` or `basic`; the secret itself is masked.
    auth: &'static str,
    username: Option<String>,
    credentials: &'static str,
    concurrency: usize,
    max_requests_per_second: Option<f64>,
    full_read_every_minutes: u64,
    /// The apps that feed this target.
    apps: Vec<String>,
    provisioned: &'static str,
}

fn find_app<'c>(state: &'c ApiState, name: &str) -> Result<&'c AppConfig, ApiError> {
    state.config.app(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no app {name:?}; GET /api/v1/apps lists them"
        ))
    })
}

fn find_target<'c>(state: &'c ApiState, name: &str) -> Result<&'c TargetConfig, ApiError> {
    state
        .config
        .targets
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no target {name:?}; GET /api/v1/targets lists them"
            ))
        })
}

async fn app_view(state: &ApiState, app: &AppConfig) -> Result<AppView, ApiError> {
    Ok(AppView {
        name: app.name.clone(),
        kind: app.kind,
        tenant_id: app.tenant_id.clone(),
        client_id: app.client_id.clone(),
        client_secret: MASKED,
        scope: app.scope.clone(),
        nested_groups: app.nested_groups,
        targets: idsync_runner::targets_of(&state.config, app)
            .into_iter()
            .map(|t| t.name.clone())
            .collect(),
        schedule: app.schedule.as_ref().map(|s| s.to_string()),
        next_run: state.next_runs.get(&app.name).map(rfc3339),
        running: state.coordinator.is_running(&app.name),
        last_success: state.store.last_successful_run(&app.name).await?,
        provisioned: "file",
    })
}

fn target_view(state: &ApiState, target: &TargetConfig) -> TargetView {
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
            .apps
            .iter()
            .filter(|a| a.targets.is_empty() || a.targets.contains(&target.name))
            .map(|a| a.name.clone())
            .collect(),
        provisioned: "file",
    }
}

/// `GET /idps`: the identity providers idsync reads, one per app.
pub async fn list_idps(State(state): State<ApiState>) -> Json<Value> {
    let idps: Vec<Value> = state
        .config
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
pub async fn list_apps(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let mut apps = Vec::new();
    for app in &state.config.apps {
        apps.push(app_view(&state, app).await?);
    }
    Ok(Json(json!({ "apps": apps })))
}

/// `GET /apps/{app}`.
pub async fn get_app(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let app = find_app(&state, &name)?;
    Ok(Json(app_view(&state, app).await?))
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

/// `PUT` and `DELETE /apps/{app}`: refused for apps from the file.
pub async fn change_app(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_app(&state, &name)?;
    Err(provisioned_by_file(&state, "app", &name))
}

/// `GET /targets`.
pub async fn list_targets(State(state): State<ApiState>) -> Json<Value> {
    let targets: Vec<TargetView> = state
        .config
        .targets
        .iter()
        .map(|t| target_view(&state, t))
        .collect();
    Json(json!({ "targets": targets }))
}

/// `GET /targets/{target}`.
pub async fn get_target(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<TargetView>, ApiError> {
    let target = find_target(&state, &name)?;
    Ok(Json(target_view(&state, target)))
}

/// `PUT` and `DELETE /targets/{target}`: refused for targets from the file.
pub async fn change_target(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find_target(&state, &name)?;
    Err(provisioned_by_file(&state, "target", &name))
}

/// `POST /targets/{target}/test`: what `idsync check` shows for the target (reachable,
/// credentials, admin rights, version, what is not synced at that version, seats), changing
/// nothing. 200 whether or not the target passed: `ok` says.
pub async fn test_target(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let config = find_target(&state, &name)?;
    let started = Instant::now();
    let probe = match idsync_atlassian::build_target(config) {
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
pub async fn test_app(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = find_app(&state, &name)?;
    let started = Instant::now();
    let result = match idsync_entra::EntraSource::new(app, &app.source_attributes()) {
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
