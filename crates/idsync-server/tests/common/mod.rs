//! What the service's loopback tests share: the runner's end-to-end harness (graph-sim,
//! atlassian-sim, a real config file and SQLite store), the service started on port 0, and a
//! client that calls the admin API as a console or a script would.

// Each test binary uses its own part of this module (and of the harness).
#![allow(dead_code)]

#[path = "../../../idsync-runner/tests/e2e/harness.rs"]
pub mod harness;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::World;
use idsync_config::Config;
use idsync_runner::{RunReport, RunStatus};
use idsync_server::{Finished, ManualClock, Running, ServeOptions};
use idsync_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A client of one running service: its address, the admin token, and every answer it got
/// (to search them for secrets).
pub struct Api {
    /// Where the service listens.
    pub addr: SocketAddr,
    /// The admin token the client sends.
    pub token: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    answers: Arc<Mutex<String>>,
}

impl Api {
    /// The URL of `path` on the service.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Calls the admin API with the token: the status, and the body as JSON (or as a JSON
    /// string when it is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_str(&text);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// A path open to all (`/healthz`, `/readyz`, `/metrics`), without the token: the status
    /// and the body as text.
    pub async fn get_open(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    /// `/readyz`: the status, and the body as JSON.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        let (status, text) = self.get_open("/readyz").await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `/metrics`, with every expected line (or start of a line) in it.
    pub async fn assert_metrics(&self, expected: &[&str]) {
        let (status, text) = self.get_open("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        for expected in expected {
            assert!(text.contains(expected), "{expected} not in:\n{text}");
        }
    }
}

/// A running service and a client of it (`service.get(…)` calls through the client).
pub struct Service {
    /// The service.
    pub running: Running,
    /// Its client.
    pub api: Api,
}

impl std::ops::Deref for Service {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Service {
    /// The service on `config` and the world's store; its first start made the token.
    pub async fn start(w: &World, config: &Config) -> Service {
        Self::start_with(w, config, ServeOptions::default()).await
    }

    /// As [`Service::start`], with these options (the address is always loopback, port 0).
    pub async fn start_with(w: &World, config: &Config, options: ServeOptions) -> Service {
        let store = w.store(config).await.clone();
        Self::start_on(w, config, &store, None, options)
            .await
            .expect("the service starts")
    }

    /// The service on `config` and `store`; the client sends `token`, or the token this start
    /// made (an error when it made none).
    pub async fn start_on(
        w: &World,
        config: &Config,
        store: &Store,
        token: Option<&str>,
        options: ServeOptions,
    ) -> anyhow::Result<Service> {
        let running = idsync_server::start(
            Arc::new(config.clone()),
            Some(w.config_path()),
            store.clone(),
            ServeOptions {
                listen: "127.0.0.1:0".parse()?,
                ..options
            },
        )
        .await?;
        let token = match (token, &running.new_admin_token) {
            (Some(token), _) => token.to_owned(),
            (None, Some(token)) => token.clone(),
            (None, None) => anyhow::bail!("no admin token"),
        };
        Ok(Service {
            api: Api {
                addr: running.addr,
                token,
                http: reqwest::Client::new(),
                answers: Arc::default(),
            },
            running,
        })
    }

    /// Keeps the answers in `answers` (shared across restarts).
    pub fn keeping_answers_in(mut self, answers: &Arc<Mutex<String>>) -> Self {
        self.api.answers = Arc::clone(answers);
        self
    }

    /// Starts a run of `app` through the API and waits (bounded) for it to end.
    pub async fn sync(&self, app: &str) -> Finished {
        let mut events = self.running.coordinator.subscribe();
        let (status, body) = self
            .post(&format!("/api/v1/apps/{app}/runs"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        next_finished(&mut events).await
    }

    /// [`Service::sync`], checked to have ended `done`: its report.
    pub async fn sync_done(&self, app: &str) -> Arc<RunReport> {
        let report = self
            .sync(app)
            .await
            .outcome
            .unwrap_or_else(|e| panic!("the run of {app} could not be done: {e}"));
        assert_eq!(report.status, RunStatus::Done, "{report:?}");
        report
    }
}

/// The default options, with the scheduler on `clock`.
pub fn on_clock(clock: &ManualClock) -> ServeOptions {
    ServeOptions {
        clock: Arc::new(clock.clone()),
        ..ServeOptions::default()
    }
}

/// Waits for the next run the coordinator finishes (bounded, so a broken scheduler fails the
/// test instead of hanging it).
pub async fn next_finished(events: &mut tokio::sync::broadcast::Receiver<Finished>) -> Finished {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("a run finishes within a minute")
        .expect("the coordinator is alive")
}

/// Every run the history has (up to 100).
pub fn filter_all() -> idsync_store::RunFilter {
    idsync_store::RunFilter {
        limit: 100,
        ..Default::default()
    }
}
