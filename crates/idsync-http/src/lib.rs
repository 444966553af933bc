//! HTTP plumbing shared by idsync's upstream clients (Microsoft Graph, the Atlassian products):
//!
//! - [`build_client`]: one `reqwest::Client` per upstream (rustls, timeouts, user agent
//!   `idsync/<version>`);
//! - [`HttpClient::send`]: sends a request, reads the whole body, and retries transient failures
//!   — 429/503/504 after the server's `Retry-After` (seconds or HTTP-date, capped), other 5xx and
//!   transport errors after exponential backoff with jitter — a bounded number of times;
//! - [`RequestCounter`]: requests sent, by kind, for tests and benchmarks;
//! - [`same_origin`]: the check every client makes before following a link a server handed
//!   out (next pages, delta rounds, task status), so that credentials only go where the
//!   configuration points;
//! - [`redact_url`]: a URL fit for messages, logs and history (no user info, no query).
//!
//! Nothing here logs request headers or bodies: they carry tokens and secrets.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

/// `idsync/<version>`: sent on every request so that upstream logs can tell idsync apart.
pub const USER_AGENT: &str = concat!("idsync/", env!("CARGO_PKG_VERSION"));

/// Failures of one logical request (after retries).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client could not be built (bad TLS setup and the like).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    /// Connecting, sending or reading the body failed (including a connection dropped half way
    /// through a response) on every attempt.
    #[error("{kind}: request to {url} failed after {attempts} attempt(s): {message}")]
    Transport {
        /// The caller's name for the request, as in the counter.
        kind: String,
        /// Where it went, redacted.
        url: String,
        /// Attempts made, the first included.
        attempts: usize,
        /// The last attempt's error.
        message: String,
    },
    /// The server kept answering with a transient error status (429, 5xx) until the attempts
    /// ran out; `body` is the last response body, for the caller to explain.
    #[error("{kind}: {url} answered {status} on every one of {attempts} attempt(s)")]
    Exhausted {
        /// The caller's name for the request, as in the counter.
        kind: String,
        /// Where it went, redacted.
        url: String,
        /// The last status.
        status: StatusCode,
        /// Attempts made, the first included.
        attempts: usize,
        /// The last response body.
        body: Bytes,
    },
}

/// A link a server handed out that points away from the configured base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to follow the link {link} given by the server: it is not on {base} (scheme, host \
     and port must be the same), and the credentials for {base} are never sent elsewhere; if the \
     service moved, change the configured URL"
)]
pub struct ForeignLink {
    /// The link, redacted ([`redact_url`]).
    pub link: String,
    /// The configured base URL, redacted.
    pub base: String,
}

/// Checks that `link` is on the same origin (scheme, host and port, compared exactly) as the
/// configured `base`, before a client sends its credentials there.
///
/// Why not a string prefix: `https://graph.microsoft.com.evil.net/`,
/// `https://graph.microsoft.com:8443/` and `https://graph.microsoft.com@evil.net/` all start
/// with `https://graph.microsoft.com`. `Url::origin` compares the parsed parts instead (default
/// ports included: `https://h` and `https://h:443` are the same origin), and an opaque origin
/// (a scheme that is not http-like) never equals another, so such links are refused too.
pub fn same_origin(link: &Url, base: &Url) -> Result<(), ForeignLink> {
    if link.origin() == base.origin() {
        Ok(())
    } else {
        Err(ForeignLink {
            link: redact_url(link.as_str()),
            base: redact_url(base.as_str()),
        })
    }
}

/// `url` fit to be shown or stored (see [`idsync_model::redact::redact_url`]).
pub use idsync_model::redact::redact_url;

/// A response whose body was read completely.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The final status (after retries).
    pub status: StatusCode,
    /// Response headers, for paging links and the like; never logged.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A header's value, if present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, lossily, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: usize,
    /// First backoff delay when the server gives no `Retry-After`; doubles each time.
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest wait a `Retry-After` can ask for; longer ones are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Quick retries for tests: ten attempts, 5–50 ms backoff, `Retry-After` capped at 2 s.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 10,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(2),
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
    }
}

/// Options for [`build_client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (connect, send, read the body).
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A reqwest client with rustls, our user agent and timeouts. Redirects are not followed:
/// Graph and the Atlassian APIs answer API calls directly, and a redirect would otherwise carry
/// the `Authorization` header somewhere unexpected.
pub fn build_client(options: &ClientOptions) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HttpError::Build(e.to_string()))
}

/// Requests sent, by kind (every attempt counts, retries included). A labelled counter also
/// reports them, and the waits before retries, to the process's metrics recorder (the service's
/// `/metrics`; nothing is recorded where no recorder is installed, as in the CLI).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// `service` (`graph`, `jira-dc`, …) and `instance` (the app or target name) labels.
    labels: Option<Arc<(String, String)>>,
}

impl RequestCounter {
    /// A counter that reports to no metrics recorder (tests, tools).
    pub fn new() -> Self {
        RequestCounter::default()
    }

    /// A counter whose requests and waits are also reported as metrics with these labels.
    pub fn labelled(service: impl Into<String>, instance: impl Into<String>) -> Self {
        RequestCounter {
            counts: Arc::default(),
            labels: Some(Arc::new((service.into(), instance.into()))),
        }
    }

    /// Counts one attempt of a request of this kind (called by [`HttpClient::send`]).
    pub(crate) fn add(&self, kind: &str) {
        {
            let mut counts = self.lock();
            *counts.entry(kind.to_owned()).or_default() += 1;
        }
        if let Some(labels) = &self.labels {
            metrics::counter!("idsync_http_requests_total", "service" => labels.0.clone(), "instance" => labels.1.clone())
                .increment(1);
        }
    }

    /// A wait before retrying a throttled or failed request.
    pub fn waited(&self, wait: Duration) {
        if let Some(labels) = &self.labels {
            metrics::counter!("idsync_http_throttle_waits_total", "service" => labels.0.clone(), "instance" => labels.1.clone())
                .increment(1);
            metrics::histogram!("idsync_http_retry_wait_seconds", "service" => labels.0.clone(), "instance" => labels.1.clone())
                .record(wait.as_secs_f64());
        }
    }

    /// Every count so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    /// Requests of one kind so far.
    pub fn get(&self, kind: &str) -> u64 {
        self.lock().get(kind).copied().unwrap_or(0)
    }

    /// Requests of every kind so far.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// `after - before`, per kind, leaving out kinds that did not change.
    pub fn difference(
        before: &BTreeMap<String, u64>,
        after: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        after
            .iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reqwest client with a retry policy and a request counter.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: RetryPolicy,
    counter: RequestCounter,
}

/// One failed attempt, as seen by the retry loop.
#[derive(Debug)]
enum Attempt {
    /// Worth another try; `retry_after` is what the server asked for.
    Transient {
        status: Option<StatusCode>,
        retry_after: Option<Duration>,
        message: String,
        body: Bytes,
    },
    /// Not worth another try (a request that cannot be built).
    Fatal(String),
}

impl HttpClient {
    /// Wraps `client` (from [`build_client`]); every attempt is counted in `counter`.
    pub fn new(client: reqwest::Client, policy: RetryPolicy, counter: RequestCounter) -> Self {
        HttpClient {
            client,
            policy,
            counter,
        }
    }

    /// The bare client, to build an [`HttpClient`] with another policy on the same connections.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// The counter this client counts its requests in.
    pub fn counter(&self) -> &RequestCounter {
        &self.counter
    }

    /// The retry policy it was given.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Sends the request `build` makes (called again for each attempt) and reads the whole
    /// body. Returns every final status the caller must interpret itself (2xx, 4xx other than
    /// 429); transient ones are retried per the policy and end as [`HttpError::Exhausted`].
    /// `kind` names the request in the counter and in errors; `url` is only for messages (it
    /// must not carry secrets).
    pub async fn send<F>(&self, kind: &str, url: &str, build: F) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        // Defence in depth: whatever the caller passes, logs and errors show no query string
        // or user info (either may carry a password or a token).
        let url = redact_url(url);
        let url = url.as_str();
        let mut attempts = 0usize;
        let max_retry_after = self.policy.max_retry_after;
        let result = (|| {
            attempts += 1;
            self.counter.add(kind);
            let request = build(&self.client);
            async move { attempt(request).await }
        })
        .retry(self.policy.backoff())
        .when(|e| matches!(e, Attempt::Transient { .. }))
        // Retry-After wins over our backoff, but only while backon still allows a retry
        // (`dur` is None once the attempts are used up).
        .adjust(|e, dur| {
            let asked = match e {
                Attempt::Transient { retry_after, .. } => *retry_after,
                Attempt::Fatal(_) => None,
            };
            dur.map(|d| asked.map_or(d, |a| a.min(max_retry_after)))
        })
        .notify(|e, wait| {
            if let Attempt::Transient { message, .. } = e {
                tracing::warn!(kind, %url, wait_ms = wait.as_millis() as u64, "{message}; retrying");
            }
            self.counter.waited(wait);
        })
        .await;
        match result {
            Ok(response) => Ok(response),
            Err(Attempt::Transient {
                status: Some(status),
                body,
                ..
            }) => Err(HttpError::Exhausted {
                kind: kind.to_owned(),
                url: url.to_owned(),
                status,
                attempts,
                body,
            }),
            Err(Attempt::Transient { message, .. }) | Err(Attempt::Fatal(message)) => {
                Err(HttpError::Transport {
                    kind: kind.to_owned(),
                    url: url.to_owned(),
                    attempts,
                    message,
                })
            }
        }
    }
}

async fn attempt(request: reqwest::RequestBuilder) -> Result<HttpResponse, Attempt> {
    // without_url(): a URL may carry secrets in its query (Bitbucket's create-user takes the
    // password there), and these messages end up in logs and run history.
    let response = request.send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_builder() {
            Attempt::Fatal(error_chain(&e))
        } else {
            Attempt::Transient {
                status: None,
                retry_after: None,
                message: error_chain(&e),
                body: Bytes::new(),
            }
        }
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    // Reading the body inside the attempt makes a connection dropped half way through a
    // response a retryable failure instead of a truncated success.
    let body = response.bytes().await.map_err(|e| Attempt::Transient {
        status: None,
        retry_after: None,
        message: format!(
            "reading the response body: {}",
            error_chain(&e.without_url())
        ),
        body: Bytes::new(),
    })?;
    if is_transient(status) {
        let retry_after = if honours_retry_after(status) {
            retry_after(&headers, SystemTime::now())
        } else {
            None
        };
        return Err(Attempt::Transient {
            status: Some(status),
            retry_after,
            message: format!("HTTP {status}"),
            body,
        });
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `url` without its query string and fragment, for messages.
pub fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// Statuses worth retrying: throttling and server-side failures.
pub fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Statuses whose `Retry-After` we obey (Graph's throttling docs name these three).
fn honours_retry_after(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 503 | 504)
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error with its sources, on one line (reqwest's top-level message alone is vague).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("ascii"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).expect("ascii"));
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[tokio::test]
    async fn transport_errors_do_not_show_the_url() {
        // Nothing listens on port 1: the connection is refused at once.
        let request = reqwest::Client::new().post("http://127.0.0.1:1/users?password=hunter2");
        match attempt(request).await {
            Err(Attempt::Transient { message, .. }) => {
                assert!(!message.contains("hunter2"), "{message}");
            }
            other => panic!("expected a transient failure, got {other:?}"),
        }
    }

    #[test]
    fn messages_show_no_query() {
        assert_eq!(
            without_query("https://b.example/users?name=a&password=hunter2"),
            "https://b.example/users"
        );
        assert_eq!(
            without_query("https://g.example/v1.0/users"),
            "https://g.example/v1.0/users"
        );
    }

    #[test]
    fn messages_show_no_user_info() {
        assert_eq!(
            redact_url("https://idsync:hunter2@jira.example.com/rest/api/2/user?password=x#f"),
            "https://jira.example.com/rest/api/2/user"
        );
        assert_eq!(
            redact_url("https://token@graph.example/v1.0/users"),
            "https://graph.example/v1.0/users"
        );
        assert_eq!(
            redact_url("https://jira.example.com/"),
            "https://jira.example.com/"
        );
        // Not a URL: cut by hand all the same.
        assert_eq!(
            redact_url("https://a:b@[bad host/x?password=hunter2"),
            "https://[bad host/x"
        );
        assert_eq!(redact_url("not a url?secret=1"), "not a url");
    }

    #[test]
    fn links_are_followed_only_on_the_same_origin() {
        let base = Url::parse("https://graph.microsoft.com").expect("url");
        let ok = |link: &str| same_origin(&Url::parse(link).expect("url"), &base);
        assert!(ok("https://graph.microsoft.com/v1.0/users?$skiptoken=x").is_ok());
        assert!(ok("https://graph.microsoft.com:443/v1.0/users").is_ok());
        assert!(ok("HTTPS://GRAPH.MICROSOFT.COM/v1.0/users").is_ok());
        for foreign in [
            "https://graph.microsoft.com.evil.net/v1.0/users",
            "https://graph.microsoft.com@evil.net/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "http://graph.microsoft.com/v1.0/users",
            "https://evil.net/graph.microsoft.com/v1.0/users",
            "file:///etc/passwd",
        ] {
            let error = ok(foreign).expect_err(foreign);
            let message = error.to_string();
            assert!(
                message.contains("https://graph.microsoft.com/"),
                "{message}"
            );
            assert!(message.contains("not on"), "{message}");
        }
        // The message shows the link without user info or query.
        let error =
            ok("https://user:hunter2@evil.net/v1.0/users?$deltatoken=t").expect_err("foreign");
        assert_eq!(error.link, "https://evil.net/v1.0/users");
        assert!(!error.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn errors_show_no_user_info() {
        let http = HttpClient::new(
            build_client(&ClientOptions::default()).expect("client"),
            RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::fast()
            },
            RequestCounter::new(),
        );
        // Nothing listens on port 1: the connection is refused at once.
        let url = "http://idsync:hunter2@127.0.0.1:1/users";
        let error = http
            .send("users", url, |c| c.get(url))
            .await
            .expect_err("refused");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(
            error.to_string().contains("http://127.0.0.1:1/users"),
            "{error}"
        );
    }

    #[test]
    fn counter_difference() {
        let c = RequestCounter::new();
        c.add("a");
        let before = c.snapshot();
        c.add("a");
        c.add("b");
        let d = RequestCounter::difference(&before, &c.snapshot());
        assert_eq!(d, BTreeMap::from([("a".into(), 1), ("b".into(), 1)]));
        assert_eq!(c.total(), 3);
    }
}
