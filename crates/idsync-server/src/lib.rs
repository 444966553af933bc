//! The idsync service (`idsync serve`): the runner as a long-lived process. It syncs each app
//! on its schedule ([`scheduler`]), one run per app at a time with triggers queued, not stacked
//! ([`runs`]); serves the admin API under `/api/v1` ([`api`], behind the admin token of
//! [`auth`]), `/healthz`, `/readyz` and Prometheus `/metrics` ([`metrics`]); and stops cleanly,
//! letting runs in progress finish within a bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use idsync_config::Config;
use idsync_store::Store;
use tokio::sync::watch;

pub mod api;
pub mod auth;
pub mod clock;
pub mod error;
pub mod metrics;
pub mod runs;
pub mod scheduler;

pub use clock::{Clock, ManualClock, SystemClock};
pub use runs::{Accepted, Coordinator, Finished, Request};

/// How the service listens and behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// Where to listen; 127.0.0.1 unless the admin chose otherwise.
    pub listen: SocketAddr,
    /// The largest request body accepted (the API takes small JSON documents only).
    pub body_limit: usize,
    /// How long a stop waits for runs in progress to finish.
    pub shutdown_grace: Duration,
    /// The scheduler's time.
    pub clock: Arc<dyn Clock>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 64 * 1024,
            shutdown_grace: Duration::from_secs(120),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A service that is up.
pub struct Running {
    /// Where it listens (the port chosen, when asked for port 0).
    pub addr: SocketAddr,
    /// The admin token, when this start made the first one: show it once, it is not kept.
    pub new_admin_token: Option<String>,
    pub coordinator: Coordinator,
    pub next_runs: scheduler::NextRuns,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    schedules: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

#[derive(Clone)]
struct Health {
    store: Store,
    apps: usize,
}

/// Starts the service on `config` and `store`.
pub async fn start(
    config: Arc<Config>,
    config_path: Option<PathBuf>,
    store: Store,
    options: ServeOptions,
) -> anyhow::Result<Running> {
    // Installed before anything is recorded: figures recorded without a recorder are lost.
    metrics::handle();
    let new_admin_token = auth::ensure_token(&store).await?;
    let coordinator = Coordinator::new(Arc::clone(&config), store.clone());
    let next_runs = scheduler::NextRuns::default();
    let (stop, stopping) = watch::channel(false);
    let state = api::ApiState {
        config: Arc::clone(&config),
        config_path,
        store: store.clone(),
        coordinator: coordinator.clone(),
        next_runs: next_runs.clone(),
        logins: api::LoginSyncs::default(),
    };
    let router = router(state, &options);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let mut server_stopping = stopping.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_stopping.wait_for(|s| *s).await;
            })
            .await
    });
    let schedules = scheduler::start(
        &config,
        store,
        coordinator.clone(),
        Arc::clone(&options.clock),
        next_runs.clone(),
        stopping,
    );
    tracing::info!(%addr, apps = config.apps.len(), "idsync is serving");
    Ok(Running {
        addr,
        new_admin_token,
        coordinator,
        next_runs,
        stop,
        server,
        schedules,
        grace: options.shutdown_grace,
    })
}

fn router(state: api::ApiState, options: &ServeOptions) -> Router {
    let verifier = auth::Verifier::new(state.store.clone());
    let health = Health {
        store: state.store.clone(),
        apps: state.config.apps.len(),
    };
    let api = api::routes(state)
        .fallback(|| async {
            error::ApiError::not_found(
                "there is no such API route; GET /api/v1/openapi.json lists them",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(health))
        .route("/metrics", get(prometheus))
        .nest("/api/v1", api)
        .layer(DefaultBodyLimit::max(options.body_limit))
}

/// Ready when the store answers and the config was loaded (it was, or the service would not
/// have started).
async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    match health.store.admin_token_hash().await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(
                serde_json::json!({ "store": "ok", "config": "loaded", "apps": health.apps }),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "store": e.to_string(), "config": "loaded", "apps": health.apps }),
            ),
        ),
    }
}

async fn prometheus() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::handle().render(),
    )
}

impl Running {
    /// Stops: no new triggers or requests, runs in progress get up to the grace period to
    /// finish. `true` when every run finished in time.
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(true);
        for schedule in self.schedules {
            let _ = schedule.await;
        }
        let finished = tokio::time::timeout(self.grace, self.coordinator.idle())
            .await
            .is_ok();
        if !finished {
            tracing::warn!(
                grace_s = self.grace.as_secs(),
                "runs still in progress at shutdown; the next start marks them interrupted"
            );
        }
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
        }
        finished
    }
}
