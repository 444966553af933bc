//! Plumbing shared by the simulators (`graph-sim`, `atlassian-sim`).
//!
//! The simulators are test infrastructure: they speak the documented wire protocol of the real
//! services, and this crate gives them the knobs tests need on top — scripted faults (status codes
//! with `Retry-After`, slow replies, connections dropped half way through a body), a fixed latency
//! per request, and request counters keyed by method and route. Every knob can be driven from Rust
//! (the [`SimKit`] handle) or over HTTP under `/_sim/` (see [`control_router`]), so a simulator
//! started as a binary can be steered by a test in another process.
//!
//! Besides scripted faults there is a seeded random mode, "chaos" ([`SimKit::set_chaos`]): each
//! product request is hit, with a given probability, by one of a list of faults. The draws come
//! from a seeded RNG, so a seed gives the same sequence of draws; which request meets which
//! draw still depends on the order requests arrive in.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a scripted fault does to a request it matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status instead of running the handler. `retry_after` adds a
    /// `Retry-After` header (seconds); `body` replaces the product's default error body.
    Status {
        /// HTTP status to answer with.
        status: u16,
        /// Seconds to put in a `Retry-After` header; none when absent.
        #[serde(default)]
        retry_after: Option<u64>,
        /// Body to send instead of the product's default error body.
        #[serde(default)]
        body: Option<serde_json::Value>,
    },
    /// Run the handler, but only after waiting this long.
    Delay {
        /// The wait, in milliseconds.
        millis: u64,
    },
    /// Send a `200` with the start of a body, then break the connection: the client sees a
    /// response cut short, exactly as when a proxy or the network drops mid-transfer.
    Drop,
    /// Run the handler (a write takes effect), then answer as [`FaultKind::Drop`] does: the
    /// client cannot tell whether its request was applied, as when the network fails after the
    /// server did the work.
    DropAfter,
}

impl FaultKind {
    /// A short label for counting: `status 429`, `delay`, `drop`, `drop_after`.
    pub fn label(&self) -> String {
        match self {
            FaultKind::Status { status, .. } => format!("status {status}"),
            FaultKind::Delay { .. } => "delay".to_owned(),
            FaultKind::Drop => "drop".to_owned(),
            FaultKind::DropAfter => "drop_after".to_owned(),
        }
    }
}

/// Seeded random faults: every product request that matches the filters is hit, with
/// probability `rate`, by one of `kinds` picked uniformly. Scripted faults ([`FaultRule`]) are
/// checked first; chaos only applies to requests none of them takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChaosConfig {
    /// Share of matching requests to hit, `0.0..=1.0`.
    pub rate: f64,
    /// The faults to pick from (uniformly); an empty list hits nothing.
    pub kinds: Vec<FaultKind>,
    /// Seed of the RNG: the same seed gives the same sequence of draws.
    #[serde(default)]
    pub seed: u64,
    /// Only requests with this method; any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path (with query) contains this text; any path when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
}

impl ChaosConfig {
    /// The transient failures a client must ride out: `429` with `Retry-After: 0`, `500`,
    /// `502`, `503` with `Retry-After: 0`, and a connection dropped half way through the
    /// answer (before the handler ran).
    pub fn transient(rate: f64, seed: u64) -> Self {
        let status = |status: u16, retry_after: Option<u64>| FaultKind::Status {
            status,
            retry_after,
            body: None,
        };
        ChaosConfig {
            rate,
            kinds: vec![
                status(429, Some(0)),
                status(500, None),
                status(502, None),
                status(503, Some(0)),
                FaultKind::Drop,
            ],
            seed,
            method: None,
            path_contains: None,
        }
    }

    /// Adds a kind of fault to pick from.
    pub fn with_kind(mut self, kind: FaultKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Only requests whose path (with query) contains `fragment`.
    pub fn on_path(mut self, fragment: impl Into<String>) -> Self {
        self.path_contains = Some(fragment.into());
        self
    }

    /// Only requests with this method.
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn matches(&self, method: &Method, path_and_query: &str) -> bool {
        request_matches(
            self.method.as_deref(),
            self.path_contains.as_deref(),
            method,
            path_and_query,
        )
    }
}

/// Chaos in force: its config and the RNG drawing from it.
struct Chaos {
    config: ChaosConfig,
    rng: SmallRng,
}

/// One scripted fault: which requests it matches, how many it lets pass first, and how many
/// it then hits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    /// Only requests with this method (e.g. `"GET"`); any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path (with query) contains this text; any path when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Matching requests to let through untouched before the fault starts.
    #[serde(default)]
    pub skip: u32,
    /// Matching requests to fault; `0` means every one from then on.
    #[serde(default = "one")]
    pub times: u32,
    /// What the fault does.
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// A fault hitting the next matching request once.
    pub fn once(kind: FaultKind) -> Self {
        FaultRule {
            method: None,
            path_contains: None,
            skip: 0,
            times: 1,
            kind,
        }
    }

    /// Only requests whose path (with query) contains `fragment`.
    pub fn on_path(mut self, fragment: impl Into<String>) -> Self {
        self.path_contains = Some(fragment.into());
        self
    }

    /// Only requests with this method.
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Hits this many matching requests (`0`: every one from then on).
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Lets this many matching requests through first.
    pub fn after(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    fn matches(&self, method: &Method, path_and_query: &str) -> bool {
        request_matches(
            self.method.as_deref(),
            self.path_contains.as_deref(),
            method,
            path_and_query,
        )
    }
}

/// Whether a request matches a rule's filters (none: every request).
fn request_matches(
    method_filter: Option<&str>,
    path_filter: Option<&str>,
    method: &Method,
    path_and_query: &str,
) -> bool {
    method_filter.is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
        && path_filter.is_none_or(|p| path_and_query.contains(p))
}

/// Builds the product's own error body for a status, so that injected faults look like the
/// real service's errors (Graph's `{"error":{...}}`, Jira's `errorMessages`, ...).
pub type ErrorBody = Arc<dyn Fn(StatusCode) -> serde_json::Value + Send + Sync>;

/// Like [`ErrorBody`], but also given the request path, for simulators serving several products
/// (each with its own error shape) on one port.
pub type PathErrorBody = Arc<dyn Fn(&str, StatusCode) -> serde_json::Value + Send + Sync>;

/// The shared knobs of one simulator.
pub struct SimKit {
    faults: Mutex<Vec<FaultRule>>,
    chaos: Mutex<Option<Chaos>>,
    /// Faults chaos has injected, by [`FaultKind::label`].
    chaos_hits: Mutex<BTreeMap<String, u64>>,
    latency_micros: AtomicU64,
    counters: Mutex<BTreeMap<String, u64>>,
    error_body: PathErrorBody,
}

impl std::fmt::Debug for SimKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimKit")
            .field("latency", &self.latency())
            .finish_non_exhaustive()
    }
}

impl SimKit {
    /// A kit whose default fault bodies have one shape for every path (one product per port).
    pub fn new(error_body: ErrorBody) -> Arc<Self> {
        Self::with_path_error_body(Arc::new(move |_path: &str, status| error_body(status)))
    }

    /// A kit whose default fault bodies depend on the request path (e.g. one shape under
    /// `/jira/`, another under `/bitbucket/`).
    pub fn with_path_error_body(error_body: PathErrorBody) -> Arc<Self> {
        Arc::new(SimKit {
            faults: Mutex::new(Vec::new()),
            chaos: Mutex::new(None),
            chaos_hits: Mutex::new(BTreeMap::new()),
            latency_micros: AtomicU64::new(0),
            counters: Mutex::new(BTreeMap::new()),
            error_body,
        })
    }

    /// Adds a fault; faults are checked in the order they were added.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.faults).push(rule);
    }

    /// Drops every scripted fault still waiting to fire.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Faults still waiting to fire (`times` not yet used up).
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        lock(&self.faults).clone()
    }

    /// Turns on seeded random faults, replacing any chaos in force.
    pub fn set_chaos(&self, config: ChaosConfig) {
        let rng = SmallRng::seed_from_u64(config.seed);
        *lock(&self.chaos) = Some(Chaos { config, rng });
    }

    /// Turns random faults off (the counts of what they injected are kept).
    pub fn clear_chaos(&self) {
        *lock(&self.chaos) = None;
    }

    /// The chaos in force, if any.
    pub fn chaos(&self) -> Option<ChaosConfig> {
        lock(&self.chaos).as_ref().map(|c| c.config.clone())
    }

    /// Faults injected by chaos, by kind (`status 503`, `drop`, ...), since the kit was made or
    /// its counters were last reset.
    pub fn chaos_injected(&self) -> BTreeMap<String, u64> {
        lock(&self.chaos_hits).clone()
    }

    /// Total faults injected by chaos (see [`SimKit::chaos_injected`]).
    pub fn chaos_injected_total(&self) -> u64 {
        lock(&self.chaos_hits).values().sum()
    }

    /// Latency added before every product request is handled.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.store(micros, Ordering::Relaxed);
    }

    /// The latency in force (zero by default).
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    /// Request counts keyed by `"METHOD /route/template"`, plus `"total"`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.counters).clone()
    }

    /// The count for one key (0 when never seen).
    pub fn count(&self, key: &str) -> u64 {
        lock(&self.counters).get(key).copied().unwrap_or(0)
    }

    /// Sum of the counts whose key contains `fragment`.
    pub fn count_matching(&self, fragment: &str) -> u64 {
        lock(&self.counters)
            .iter()
            .filter(|(k, _)| k.as_str() != "total" && k.contains(fragment))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Clears the request counters and the counts of faults chaos injected.
    pub fn reset_counters(&self) {
        lock(&self.counters).clear();
        lock(&self.chaos_hits).clear();
    }

    /// Records one request under `key` (the middleware does this for every product request;
    /// products may add finer keys of their own).
    pub fn record(&self, key: &str) {
        let mut counters = lock(&self.counters);
        *counters.entry(key.to_owned()).or_default() += 1;
    }

    /// Finds the fault that applies to this request, consuming one use of it: a scripted
    /// fault, else (maybe) one drawn by chaos.
    fn take_fault(&self, method: &Method, path_and_query: &str) -> Option<FaultKind> {
        self.take_scripted_fault(method, path_and_query)
            .or_else(|| self.draw_chaos(method, path_and_query))
    }

    fn draw_chaos(&self, method: &Method, path_and_query: &str) -> Option<FaultKind> {
        let mut chaos = lock(&self.chaos);
        let chaos = chaos.as_mut()?;
        if chaos.config.kinds.is_empty() || !chaos.config.matches(method, path_and_query) {
            return None;
        }
        let rate = chaos.config.rate;
        // NaN or nothing at all: no draw (and no panic in `random_bool`).
        if rate.is_nan() || rate <= 0.0 || !chaos.rng.random_bool(rate.min(1.0)) {
            return None;
        }
        let pick = chaos.rng.random_range(0..chaos.config.kinds.len());
        let kind = chaos.config.kinds[pick].clone();
        *lock(&self.chaos_hits).entry(kind.label()).or_default() += 1;
        Some(kind)
    }

    fn take_scripted_fault(&self, method: &Method, path_and_query: &str) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|rule| rule.matches(method, path_and_query))?;
        let rule = &mut faults[index];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let kind = rule.kind.clone();
        if rule.times == 1 {
            faults.remove(index);
        } else if rule.times > 1 {
            rule.times -= 1;
        }
        Some(kind)
    }

    /// The default error response, whatever the path; no simulator uses it today.
    pub fn error_response(&self, status: StatusCode) -> Response {
        self.error_response_for("", status)
    }

    /// The default error response for a request to `path`.
    pub fn error_response_for(&self, path: &str, status: StatusCode) -> Response {
        (status, Json((self.error_body)(path, status))).into_response()
    }
}

/// Mutex poisoning only happens if a handler panicked while holding the lock; the simulator's
/// data is still usable for tests, so we carry on with it.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Middleware applying latency, scripted faults and counting to every product route.
/// Install it with `Router::layer(axum::middleware::from_fn_with_state(kit, sim_kit::middleware))`
/// so that it runs after routing and sees the route template.
pub async fn middleware(State(kit): State<Arc<SimKit>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    if request.uri().path().starts_with("/_sim/") {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    kit.record(&format!("{method} {route}"));
    kit.record("total");

    let latency = kit.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match kit.take_fault(&method, &path_and_query) {
        None => next.run(request).await,
        Some(FaultKind::Delay { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(request).await
        }
        Some(FaultKind::Status {
            status,
            retry_after,
            body,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match body {
                Some(body) => (status, Json(body)).into_response(),
                None => kit.error_response_for(&path, status),
            };
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
        Some(FaultKind::Drop) => dropped_response(),
        Some(FaultKind::DropAfter) => {
            // The work is done; only the answer is lost.
            drop(next.run(request).await);
            dropped_response()
        }
    }
}

/// A response whose body breaks off after a few bytes.
fn dropped_response() -> Response {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"{\"value\":[{\"id\":")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated dropped connection",
        )),
    ];
    let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(Deserialize)]
struct LatencyBody {
    millis: u64,
}

/// HTTP control of the shared knobs, for simulators run as a separate process:
/// - `POST /_sim/faults` with a [`FaultRule`] as JSON, `GET` lists pending ones, `DELETE` clears;
/// - `PUT /_sim/latency` with `{"millis": N}`;
/// - `GET /_sim/counters`, `DELETE /_sim/counters` (also clears the counts of chaos faults);
/// - `PUT /_sim/chaos` with a [`ChaosConfig`] as JSON, `GET` gives `{"chaos": config or null,
///   "injected": {kind: count}}`, `DELETE` turns it off.
pub fn control_router(kit: Arc<SimKit>) -> Router {
    Router::new()
        .route(
            "/_sim/chaos",
            get(|State(kit): State<Arc<SimKit>>| async move {
                Json(serde_json::json!({
                    "chaos": kit.chaos(),
                    "injected": kit.chaos_injected(),
                }))
            })
            .put(
                |State(kit): State<Arc<SimKit>>, Json(config): Json<ChaosConfig>| async move {
                    kit.set_chaos(config);
                    StatusCode::NO_CONTENT
                },
            )
            .delete(|State(kit): State<Arc<SimKit>>| async move {
                kit.clear_chaos();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_sim/faults",
            get(|State(kit): State<Arc<SimKit>>| async move { Json(kit.pending_faults()) })
                .post(
                    |State(kit): State<Arc<SimKit>>, Json(rule): Json<FaultRule>| async move {
                        kit.inject(rule);
                        StatusCode::NO_CONTENT
                    },
                )
                .delete(|State(kit): State<Arc<SimKit>>| async move {
                    kit.clear_faults();
                    StatusCode::NO_CONTENT
                }),
        )
        .route(
            "/_sim/latency",
            put(
                |State(kit): State<Arc<SimKit>>, Json(body): Json<LatencyBody>| async move {
                    kit.set_latency(Duration::from_millis(body.millis));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/_sim/counters",
            get(|State(kit): State<Arc<SimKit>>| async move { Json(kit.counters()) }).delete(
                |State(kit): State<Arc<SimKit>>| async move {
                    kit.reset_counters();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(kit)
}

/// A simulator listening on loopback; dropping it stops the server.
#[derive(Debug)]
pub struct Served {
    /// The loopback address and port it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on `addr` (use port 0 for a free port) until the returned handle is dropped.
pub async fn serve(router: Router, addr: SocketAddr) -> std::io::Result<Served> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "simulator stopped with an error");
        }
    });
    Ok(Served {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// `127.0.0.1:0`: a free loopback port.
pub fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_then_times_then_gone() {
        let kit = SimKit::new(Arc::new(|_| serde_json::json!({})));
        kit.inject(
            FaultRule::once(FaultKind::Status {
                status: 429,
                retry_after: Some(1),
                body: None,
            })
            .on_path("/users")
            .after(1)
            .times(2),
        );
        let get = Method::GET;
        assert_eq!(kit.take_fault(&get, "/groups"), None);
        assert_eq!(kit.take_fault(&get, "/users"), None, "first one skipped");
        assert!(kit.take_fault(&get, "/users").is_some());
        assert!(kit.take_fault(&get, "/users").is_some());
        assert_eq!(kit.take_fault(&get, "/users"), None, "used up");
        assert!(kit.pending_faults().is_empty());
    }

    #[test]
    fn chaos_is_seeded_and_near_its_rate() {
        let draws = |seed: u64| {
            let kit = SimKit::new(Arc::new(|_| serde_json::json!({})));
            kit.set_chaos(ChaosConfig::transient(0.1, seed));
            let hits: Vec<Option<FaultKind>> = (0..2000)
                .map(|_| kit.take_fault(&Method::POST, "/jira/rest/api/2/user"))
                .collect();
            (hits, kit.chaos_injected_total())
        };
        let (a, total) = draws(7);
        let (b, _) = draws(7);
        assert_eq!(a, b, "the same seed draws the same faults");
        let (c, _) = draws(8);
        assert_ne!(a, c, "another seed draws others");
        assert!((140..=260).contains(&total), "about 10% of 2000: {total}");
        let kinds: std::collections::BTreeSet<String> =
            a.iter().flatten().map(FaultKind::label).collect();
        assert_eq!(kinds.len(), 5, "every kind drawn: {kinds:?}");
    }

    #[test]
    fn chaos_filters_yield_to_scripted_faults_and_turn_off() {
        let kit = SimKit::new(Arc::new(|_| serde_json::json!({})));
        kit.set_chaos(ChaosConfig {
            rate: 1.0,
            kinds: vec![FaultKind::Drop],
            seed: 1,
            method: Some("POST".into()),
            path_contains: Some("/jira/".into()),
        });
        assert_eq!(kit.take_fault(&Method::GET, "/jira/x"), None);
        assert_eq!(kit.take_fault(&Method::POST, "/confluence/x"), None);
        assert_eq!(
            kit.take_fault(&Method::POST, "/jira/x"),
            Some(FaultKind::Drop)
        );
        kit.inject(FaultRule::once(FaultKind::DropAfter));
        assert_eq!(
            kit.take_fault(&Method::POST, "/jira/x"),
            Some(FaultKind::DropAfter),
            "a scripted fault comes first"
        );
        assert_eq!(kit.chaos_injected().get("drop"), Some(&1));
        kit.clear_chaos();
        assert_eq!(kit.take_fault(&Method::POST, "/jira/x"), None);
        let json = serde_json::to_value(ChaosConfig::transient(0.1, 3)).expect("serialises");
        let back: ChaosConfig = serde_json::from_value(json).expect("parses");
        assert_eq!(back, ChaosConfig::transient(0.1, 3));
    }

    #[test]
    fn fault_rule_json_shape() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"kind":"status","status":503,"retry_after":2,"path_contains":"/delta","times":0}"#,
        )
        .expect("valid rule");
        assert_eq!(rule.times, 0);
        assert_eq!(rule.path_contains.as_deref(), Some("/delta"));
        let kit = SimKit::new(Arc::new(|_| serde_json::json!({})));
        kit.inject(rule);
        for _ in 0..5 {
            assert!(kit.take_fault(&Method::GET, "/v1.0/users/delta").is_some());
        }
    }
}
