//! The admin API under `/api/v1`: JSON in and out, one error envelope ([`crate::error`]),
//! every route behind the admin token ([`crate::auth`]). Enough for a console to need nothing
//! else: the configured IdPs, apps and targets (and creating, changing and deleting those the
//! file does not provision), runs (start one, dry-run one, approve or discard a held one), the
//! history, and the sign-in sync of one user.

use std::path::PathBuf;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
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
    use apps::*;
    use login::sync_user;
    use runs::*;
    // One row per path: what each method does there.
    let table: [(&str, MethodRouter<ApiState>); 15] = [
        ("/openapi.json", get(openapi::openapi_json)),
        ("/idps", get(list_idps)),
        ("/apps", get(list_apps).post(create_app)),
        (
            "/apps/{app}",
            get(get_app).put(replace_app).delete(delete_app),
        ),
        ("/apps/{app}/test", post(test_app)),
        ("/apps/{app}/runs", post(start_run)),
        ("/apps/{app}/users/{user}/sync", post(sync_user)),
        ("/targets", get(list_targets).post(create_target)),
        (
            "/targets/{target}",
            get(get_target).put(replace_target).delete(delete_target),
        ),
        ("/targets/{target}/test", post(test_target)),
        ("/runs", get(list_runs)),
        ("/runs/{id}", get(get_run)),
        ("/runs/{id}/operations", get(run_operations)),
        ("/runs/{id}/approve", post(approve_run)),
        ("/runs/{id}/discard", post(discard_run)),
    ];
    table
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .with_state(state)
}

/// A time as the API writes it (RFC 3339, UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
