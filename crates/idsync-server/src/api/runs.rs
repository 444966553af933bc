//! Runs: start one (or a dry run, answered with the plan and its reasons), the history with
//! filters and paging, one run with its operations (JSON or CSV), and approving or discarding a
//! run the mass-change guard held.

use axum::Json;
use axum::extract::State;

use crate::error::{ApiPath, ApiQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use idsync_runner::{RunStatus, Trigger};
use idsync_store::{OperationRecord, RunFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::runs::Request;

/// The most runs one page of the history holds.
const MAX_PAGE: i64 = 200;

/// What run to start.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// Plan only, apply nothing, and answer with the plan.
    #[serde(default)]
    dry_run: bool,
    /// Read the source and every target in full.
    #[serde(default)]
    full_read: bool,
}

/// `POST /apps/{app}/runs`: a sync (202, started or queued behind the run in progress) or,
/// with `dry_run`, the plan (200, once made).
#[utoipa::path(
    post,
    path = "/apps/{app}/runs",
    tag = "runs",
    params(("app" = String, Path, description = "The app's name")),
    request_body(content = Option<StartRun>),
    responses((status = 202, description = "`{\"app\", \"accepted\": \"started\" | \"queued\" | \"already_queued\"}`", body = Object), (status = 200, description = "dry run: the run report, each operation with its reason", body = Object), (status = 404, body = ErrorEnvelope), (status = 503, description = "stopping: idsync is stopping and starts nothing", body = ErrorEnvelope))
)]
pub async fn start_run(
    State(state): State<ApiState>,
    ApiPath(app): ApiPath<String>,
    body: Option<Json<StartRun>>,
) -> Result<Response, ApiError> {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    if state.config.current().app(&app).is_none() {
        return Err(ApiError::not_found(format!(
            "there is no app {app:?}; GET /api/v1/apps lists them"
        )));
    }
    if request.dry_run {
        // A dry run answers with its plan, so it runs here rather than in the queue; it waits
        // for a run of the app in progress (the store's lock keeps them apart).
        let report = state.coordinator.dry_run(&app, request.full_read).await?;
        if report.status == RunStatus::Interrupted {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                format!(
                    "idsync is stopping: dry run {} ended before its plan was made",
                    report.run_id
                ),
            ));
        }
        return Ok((StatusCode::OK, Json(report)).into_response());
    }
    let accepted = state
        .coordinator
        .trigger(
            &app,
            Request {
                trigger: Trigger::Manual,
                full_read: request.full_read,
            },
        )
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "app": app, "accepted": accepted })),
    )
        .into_response())
}

/// Filters and paging of the history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    app: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    user: Option<String>,
    /// Only runs older than this run id (the `next_before` of the previous page).
    before: Option<i64>,
    limit: Option<i64>,
}

/// `GET /runs`: newest first, filtered, one page at a time (`next_before` asks for the next).
#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    params(HistoryQuery),
    responses((status = 200, description = "`{\"runs\": [...], \"next_before\": id | null}`, newest first", body = Object), (status = 400, body = ErrorEnvelope))
)]
pub async fn list_runs(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE}"))
                .with_field("limit"),
        );
    }
    let filter = RunFilter {
        app: query.app,
        status: query.status,
        trigger: query.trigger,
        target: query.target,
        kind: query.kind,
        user: query.user,
        before: query.before,
        // One more than asked, to know whether there is a next page.
        limit: limit + 1,
    };
    let mut runs = state.store.find_runs(&filter).await?;
    let more = runs.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    runs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(json!({ "runs": runs, "next_before": next_before })))
}

fn no_run(id: i64) -> ApiError {
    ApiError::not_found(format!("there is no run {id}; GET /api/v1/runs lists them"))
}

/// `GET /runs/{id}`: the run, and for a run the guard held, the plan it held.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "`{\"run\", \"plan\"?}`", body = Object), (status = 404, body = ErrorEnvelope))
)]
pub async fn get_run(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let run = state.store.run(id).await?.ok_or_else(|| no_run(id))?;
    let plan = state.store.held_plan(id).await?;
    let mut body = json!({ "run": run });
    if let Some(plan) = plan {
        body["plan"] = plan;
    }
    Ok(Json(body))
}

/// How to export a run's operations.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// `GET /runs/{id}/operations[?format=csv]`: every operation of the run, for export.
#[utoipa::path(
    get,
    path = "/runs/{id}/operations",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id"), OperationsQuery),
    responses((status = 200, description = "JSON `{\"run_id\", \"operations\"}`, or CSV (text/csv) with `format=csv`", body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
pub async fn run_operations(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<OperationsQuery>,
) -> Result<Response, ApiError> {
    state.store.run(id).await?.ok_or_else(|| no_run(id))?;
    let operations = state.store.operations(id).await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(json!({ "run_id": id, "operations": operations })).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"idsync-run-{id}-operations.csv\""),
                ),
            ],
            operations_csv(&operations),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "format {other:?} is not one idsync exports: use json or csv"
        ))
        .with_field("format")),
    }
}

/// RFC 4180 CSV: one header line, one line per operation, fields quoted when they must be.
fn operations_csv(operations: &[OperationRecord]) -> String {
    let mut out = String::from("seq,target,kind,subject,status,error,duration_ms,reason\r\n");
    for op in operations {
        let reason = op
            .detail
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fields = [
            op.seq.to_string(),
            op.target.clone(),
            op.kind.clone(),
            op.subject.clone(),
            op.status.clone(),
            op.error.clone().unwrap_or_default(),
            op.duration_ms.to_string(),
            reason.to_owned(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(value: &str) -> String {
    // A leading = + - @ would be run as a formula by spreadsheet programs (CSV injection): a
    // quote mark keeps it text.
    let formula = value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err();
    if formula {
        return format!("\"'{}\"", value.replace('"', "\"\""));
    }
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// `POST /runs/{id}/approve`: the next run of the app may deprovision what the held plan
/// named, and that run is started (or queued) now, as `idsync approve` does.
#[utoipa::path(
    post,
    path = "/runs/{id}/approve",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 202, description = "approved; the app's run that applies it started or queued", body = Object), (status = 404, body = ErrorEnvelope), (status = 409, description = "not_approvable", body = ErrorEnvelope), (status = 503, description = "stopping: idsync is stopping and starts nothing", body = ErrorEnvelope))
)]
pub async fn approve_run(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Refused before the approval is kept: a 503 must not leave an approval behind.
    if state.coordinator.is_stopping() {
        return Err(crate::runs::TriggerError::Stopping.into());
    }
    let run = state.store.run(id).await?.ok_or_else(|| no_run(id))?;
    let guard = state
        .config
        .current()
        .app(&run.app)
        .map(|a| a.guard)
        .ok_or_else(|| {
            ApiError::conflict(
                "unknown_app",
                format!(
                    "run {id} belongs to app {:?}, which is no longer in the config",
                    run.app
                ),
            )
        })?;
    state
        .store
        .approve_run_within(id, guard.approval_expires_minutes)
        .await?;
    let accepted = state
        .coordinator
        .trigger(&run.app, Request::new(Trigger::Approval))
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "approved": id, "app": run.app, "accepted": accepted })),
    ))
}

/// `POST /runs/{id}/discard`: the held plan is never applied.
#[utoipa::path(
    post,
    path = "/runs/{id}/discard",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "`{\"run\"}` with status discarded", body = Object), (status = 404, body = ErrorEnvelope), (status = 409, description = "not_discardable", body = ErrorEnvelope))
)]
pub async fn discard_run(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let run = state.store.discard_run(id).await?;
    Ok(Json(json!({ "run": run })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be_and_formulas_stay_text() {
        assert_eq!(csv_field("jdoe"), "jdoe");
        assert_eq!(csv_field("Doe, John"), "\"Doe, John\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-12"), "-12");
    }
}
