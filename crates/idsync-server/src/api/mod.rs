//! The admin API under `/api/v1`: JSON in and out, one error envelope ([`crate::error`]),
//! every route behind the admin token ([`crate::auth`]). Enough for a console to need nothing
//! else: the configured IdPs, apps and targets (and creating, changing and deleting those the
//! file does not provision), runs (start one, dry-run one, approve or discard a held one), the
//! history, and the sign-in sync of one user.

use std::path::PathBuf;

use axum::Router;
use axum::routing::{get, post};
use idsync_store::Store;
use time::OffsetDateTime;

use crate::live::LiveConfig;
use crate::runs::Coordinator;
use crate::scheduler::NextRuns;

mod apps;
mod login;
pub mod openapi;
mod runs;

pub use login::LoginSyncs;

/// What every handler reaches.
#[derive(Clone)]
pub struct ApiState {
    /// The config in force (file and API entries); `config.current()` for a handler's view.
    pub config: LiveConfig,
    /// The file the config came from: apps and targets in it are changed there, not here.
    pub config_path: Option<PathBuf>,
    /// The state store: history, admin token, API entries.
    pub store: Store,
    /// Starts and queues runs.
    pub coordinator: Coordinator,
    /// When each scheduled app runs next, for the apps' views.
    pub next_runs: NextRuns,
    /// Sign-in syncs: the clients kept per app, and the answers given lately.
    pub logins: LoginSyncs,
}

/// The `/api/v1` routes (the caller adds the token check and the body limit).
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/idps", get(apps::list_idps))
        .route("/apps", get(apps::list_apps).post(apps::create_app))
        .route(
            "/apps/{app}",
            get(apps::get_app)
                .put(apps::replace_app)
                .delete(apps::delete_app),
        )
        .route("/apps/{app}/test", post(apps::test_app))
        .route("/apps/{app}/runs", post(runs::start_run))
        .route("/apps/{app}/users/{user}/sync", post(login::sync_user))
        .route(
            "/targets",
            get(apps::list_targets).post(apps::create_target),
        )
        .route(
            "/targets/{target}",
            get(apps::get_target)
                .put(apps::replace_target)
                .delete(apps::delete_target),
        )
        .route("/targets/{target}/test", post(apps::test_target))
        .route("/runs", get(runs::list_runs))
        .route("/runs/{id}", get(runs::get_run))
        .route("/runs/{id}/operations", get(runs::run_operations))
        .route("/runs/{id}/approve", post(runs::approve_run))
        .route("/runs/{id}/discard", post(runs::discard_run))
        .with_state(state)
}

/// A time as the API writes it (RFC 3339, UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
