#![warn(missing_docs)]
//! The idsync service (`idsync serve`): the runner as a long-lived process. It syncs each app
//! on its schedule ([`scheduler`]), one run per app at a time with triggers queued, not stacked
//! ([`runs`]); serves the admin API under `/api/v1` ([`api`], behind the admin token of
//! [`auth`]), `/healthz`, `/readyz` and Prometheus `/metrics` ([`metrics`]); and stops cleanly,
//! letting runs in progress finish within a bound while it goes on answering (`/readyz` and
//! every request that would start work answer 503 `stopping`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use idsync_config::Config;
use idsync_store::Store;
use tokio::sync::watch;

pub mod api;
pub mod auth;
pub mod clock;
pub mod error;
pub mod live;
pub mod metrics;
pub mod runs;
pub mod scheduler;
pub mod tls;

pub use clock::{Clock, ManualClock, SystemClock};
pub use runs::{Accepted, Coordinator, DryRunError, Finished, Request, TriggerError, Working};

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
    /// Where the key that seals the secrets of apps and targets created through the API
    /// comes from; `None`: `IDSYNC_SECRET_KEY`, `IDSYNC_SECRET_KEY_FILE`, else
    /// `{data_dir}/secret.key`.
    pub secret_key: Option<idsync_store::sealed::KeySource>,
    /// Serve HTTPS with this certificate and key; `None`: plain HTTP.
    pub tls: Option<tls::TlsFiles>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 64 * 1024,
            shutdown_grace: Duration::from_secs(120),
            tls: None,
            clock: Arc::new(SystemClock),
            secret_key: None,
        }
    }
}

/// A service that is up.
pub struct Running {
    /// Where it listens (the port chosen, when asked for port 0).
    pub addr: SocketAddr,
    /// The admin token, when this start made the first one: show it once, it is not kept.
    pub new_admin_token: Option<String>,
    /// Starts and queues runs (tests and the demo watch it).
    pub coordinator: Coordinator,
    /// When each scheduled app runs next.
    pub next_runs: scheduler::NextRuns,
    /// The config in force: the file's, and the apps and targets created through the API.
    pub config: live::LiveConfig,
    /// Turned true once the runs have ended (or the grace period has): the HTTP server then
    /// stops.
    stop_server: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    scheduler: tokio::task::JoinHandle<()>,
    grace: Duration,
}

#[derive(Clone)]
struct Health {
    store: Store,
    config: live::LiveConfig,
    coordinator: Coordinator,
}

/// Starts the service on `config` (as loaded from its file) and `store`, with the apps and
/// targets created through the API that the store keeps.
pub async fn start(
    config: Arc<Config>,
    config_path: Option<PathBuf>,
    store: Store,
    options: ServeOptions,
) -> anyhow::Result<Running> {
    // Installed before anything is recorded: figures recorded without a recorder are lost.
    metrics::handle();
    let key_source = options.secret_key.clone().unwrap_or_else(|| {
        idsync_store::sealed::KeySource::from_env(
            &|name| std::env::var(name).ok(),
            &config.data_dir,
        )
    });
    let live = live::LiveConfig::load(config, store.clone(), key_source).await?;
    // After everything that can stop the start: a first token made by a start that then
    // failed would never be shown.
    let new_admin_token = auth::ensure_token(&store).await?;
    let coordinator = Coordinator::new(live.subscribe(), store.clone());
    let next_runs = scheduler::NextRuns::default();
    let (stop_server, server_stopping) = watch::channel(false);
    let state = api::ApiState {
        config: live.clone(),
        config_path,
        store: store.clone(),
        coordinator: coordinator.clone(),
        next_runs: next_runs.clone(),
        logins: api::LoginSyncs::default(),
    };
    let router = router(state, &options);
    // Read before listening: a bad certificate stops the start, with the file named.
    let acceptor = options.tls.as_ref().map(tls::acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let server = match acceptor {
        Some(acceptor) => tokio::spawn(tls::serve(listener, acceptor, router, server_stopping)),
        None => tokio::spawn(async move {
            let mut server_stopping = server_stopping;
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = server_stopping.wait_for(|s| *s).await;
                })
                .await
        }),
    };
    let scheduler = scheduler::start(
        live.subscribe(),
        store,
        coordinator.clone(),
        Arc::clone(&options.clock),
        next_runs.clone(),
        coordinator.stop_signal(),
    );
    tracing::info!(%addr, apps = live.current().apps.len(), "idsync is serving");
    Ok(Running {
        addr,
        new_admin_token,
        coordinator,
        next_runs,
        config: live,
        stop_server,
        server,
        scheduler,
        grace: options.shutdown_grace,
    })
}

fn router(state: api::ApiState, options: &ServeOptions) -> Router {
    let verifier = auth::Verifier::new(state.store.clone());
    let health = Health {
        store: state.store.clone(),
        config: state.config.clone(),
        coordinator: state.coordinator.clone(),
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

/// Ready when the store answers (its file is where it was, a query reads it) and the service
/// is not stopping; the config is loaded, or the service would not have started. Not ready:
/// 503 in the API's error envelope, `code` naming what is not ready.
async fn readyz(State(health): State<Health>) -> Response {
    if health.coordinator.is_stopping() {
        return error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "idsync is stopping: it starts no new work and answers until the runs in progress end",
        )
        .into_response();
    }
    if let Err(e) = health.store.ping().await {
        return error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the state store does not answer: {e}"),
        )
        .into_response();
    }
    let apps = health.config.current().apps.len();
    axum::Json(serde_json::json!({ "store": "ok", "config": "loaded", "apps": apps }))
        .into_response()
}

async fn prometheus() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::handle().render(),
    )
}

impl Running {
    /// Stops: no new run, dry run or sign-in sync starts (the API goes on answering, with 503
    /// `stopping` for those and on `/readyz`); runs in progress send nothing more, and get up
    /// to the grace period to finish what is in flight and record it (they end
    /// `interrupted`); then the HTTP server stops. `true` when every run finished in time.
    pub async fn shutdown(self) -> bool {
        // Stops the scheduler too: it follows the coordinator's stop.
        self.coordinator.stop();
        let _ = self.scheduler.await;
        let finished = tokio::time::timeout(self.grace, self.coordinator.idle())
            .await
            .is_ok();
        if !finished {
            tracing::warn!(
                grace_s = self.grace.as_secs(),
                "runs still in progress at shutdown; the next start marks them interrupted"
            );
        }
        let _ = self.stop_server.send(true);
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
        }
        finished
    }
}
