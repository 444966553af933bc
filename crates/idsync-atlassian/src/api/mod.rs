//! The HTTP plumbing every target shares: authentication, client-side and server-side rate
//! limiting, retries of 429/5xx with `Retry-After`, request counting, and turning error
//! responses into [`TargetError`]s an administrator can act on.
//!
//! Product modules build a [`Call`] from a path template (`"rest/api/2/user/properties/{}"`),
//! send it with [`Api::send`] and decide per status what a reply means; anything they do not
//! expect goes through [`Api::error`], which classifies it the same way for every product.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use idsync_config::TargetConfig;
use idsync_model::{Applied, TargetError, TargetErrorKind, TargetKind};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

mod errors;

use idsync_http::{
    ClientOptions, HttpClient, HttpError, RequestCounter, RetryPolicy, build_client,
};

/// How the target authenticates. Secrets stay wrapped until the request is built, and reqwest
/// marks the resulting `Authorization` header sensitive, so neither shows up in logs.
enum Auth {
    Bearer(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
}

/// One HTTP request to send, before authentication and retries.
pub(crate) struct Call {
    method: Method,
    /// The path template, e.g. `rest/api/2/group/member`: the request-count key and the name
    /// of the call in logs (never the URL: Bitbucket's create-user URL carries a password).
    template: &'static str,
    url: Url,
    query: Vec<(String, String)>,
    body: Option<Value>,
    content_type: &'static str,
    /// Sent with [`PROBE_RETRIES`] instead of the target's retry policy.
    quick: bool,
}

/// The retries of a [`Call::quick`]: one more attempt, half a second later. A probe wants to
/// say soon that a server does not answer; the full policy waits about 15 s before it gives
/// up on a closed port.
const PROBE_RETRIES: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    min_delay: Duration::from_millis(500),
    max_delay: Duration::from_millis(500),
    max_retry_after: Duration::from_secs(5),
};

impl Call {
    /// A request with no query and no body, sent with the target's retry policy.
    fn new(method: Method, template: &'static str, url: Url) -> Self {
        Call {
            method,
            template,
            url,
            query: Vec::new(),
            body: None,
            content_type: "application/json",
            quick: false,
        }
    }

    /// Sent with few retries (`idsync check` asking whether the server answers at all).
    pub fn quick(mut self) -> Self {
        self.quick = true;
        self
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// SCIM asks for `application/scim+json`.
    pub fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }
}

/// A response, read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as JSON (`Value::Null` when empty).
    pub fn value(&self) -> Option<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Some(Value::Null);
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// The error text the product put in the body, whatever its shape: Jira
    /// `{"errorMessages":[..],"errors":{..}}`, Bitbucket `{"errors":[{"message"}]}`, Confluence
    /// `{"message"}`, SCIM `{"detail"}`. Falls back to the start of the raw body.
    pub fn server_message(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(value) = self.value() {
            if let Some(list) = value.get("errorMessages").and_then(Value::as_array) {
                parts.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            match value.get("errors") {
                Some(Value::Object(fields)) => parts.extend(
                    fields
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())),
                ),
                Some(Value::Array(list)) => parts.extend(
                    list.iter()
                        .filter_map(|e| e.get("message").and_then(Value::as_str))
                        .map(str::to_owned),
                ),
                _ => {}
            }
            for field in ["message", "detail", "errorMessage"] {
                if parts.is_empty()
                    && let Some(text) = value.get(field).and_then(Value::as_str)
                {
                    parts.push(text.to_owned());
                }
            }
        }
        if parts.is_empty() {
            let raw = String::from_utf8_lossy(&self.body);
            let raw = raw.trim();
            if raw.is_empty() {
                return self
                    .status
                    .canonical_reason()
                    .unwrap_or("no details")
                    .to_owned();
            }
            return raw.chars().take(300).collect();
        }
        parts.join("; ")
    }
}

/// What server-side rate-limit headers told us: requests wait until this instant.
#[derive(Default)]
struct Pacing {
    not_before: Option<Instant>,
}

/// The shared client of one target.
pub(crate) struct Api {
    pub name: String,
    pub kind: TargetKind,
    /// Base URL with a trailing slash, so that relative templates join below it.
    base: Url,
    /// The base URL as messages show it ([`idsync_http::redact_url`]).
    shown: String,
    auth: Auth,
    limiter: Option<DefaultDirectRateLimiter>,
    pacing: Mutex<Pacing>,
    http: HttpClient,
    /// Fan-out of reads (members of many groups, properties of many users).
    pub concurrency: usize,
    /// At most `concurrency` requests in flight, whatever nests: a read may fan out over
    /// groups and, inside one group, over its pages, and the two must not multiply.
    gate: tokio::sync::Semaphore,
}

/// The longest pause the rate-limit headers may impose between two requests.
const MAX_WAIT: Duration = Duration::from_secs(120);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Api {
    pub fn new(config: &TargetConfig) -> Result<Api, TargetError> {
        let name = config.name.clone();
        let config_error = |message: String| TargetError {
            kind: TargetErrorKind::Rejected,
            target: name.clone(),
            message,
            status: None,
        };
        let auth = match (&config.token, &config.username, &config.password) {
            (Some(token), _, _) => Auth::Bearer(SecretString::from(token.expose().to_owned())),
            (None, Some(username), Some(password)) => Auth::Basic {
                username: username.clone(),
                password: SecretString::from(password.expose().to_owned()),
            },
            _ => {
                return Err(config_error(format!(
                    "target '{}' has no credentials: set `token` (or `username` and `password`) in its [[targets]] entry",
                    config.name
                )));
            }
        };
        // Every call idsync makes to Bitbucket is under /rest/api/1.0/admin/, where Bitbucket
        // DC refuses HTTP access tokens (Basic or OAuth 2.0 only):
        // https://confluence.atlassian.com/bitbucketserverkb/how-to-use-oauth2-tokens-for-administrative-endpoints-of-bitbucket-data-center-1489469945.html
        // (BSERV-10482). The config check refuses it too; this covers configs built otherwise.
        if config.kind == TargetKind::BitbucketDc && matches!(auth, Auth::Bearer(_)) {
            return Err(config_error(format!(
                "target '{}' (bitbucket-dc) has a `token`, but Bitbucket Data Center refuses HTTP access tokens on the admin endpoints idsync uses; set `username` and `password` of an account with Admin or System admin permission instead",
                config.name
            )));
        }
        if config.kind == TargetKind::AtlassianCloud && matches!(auth, Auth::Basic { .. }) {
            return Err(config_error(format!(
                "target '{}' (atlassian-cloud) needs `token`: the SCIM directory API key; Basic authentication is refused by Atlassian",
                config.name
            )));
        }
        // The config checks bound these; a TargetConfig built some other way must not panic
        // here (a semaphore refuses more than usize::MAX >> 3 permits; the limiter's period
        // overflows for tiny rates).
        if !(1..=idsync_config::MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(config_error(format!(
                "target '{}': concurrency {} is out of range; give 1 to {}",
                config.name,
                config.concurrency,
                idsync_config::MAX_CONCURRENCY
            )));
        }
        let limiter = match config.max_requests_per_second {
            None => None,
            Some(rps) => Some(rate_limiter(rps).ok_or_else(|| {
                config_error(format!(
                    "target '{}': max_requests_per_second {rps} is out of range; give {} to {}, or leave it out for no limit",
                    config.name,
                    idsync_config::MIN_REQUESTS_PER_SECOND,
                    idsync_config::MAX_REQUESTS_PER_SECOND
                ))
            })?),
        };
        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if base.cannot_be_a_base() {
            return Err(config_error(format!(
                "target '{}': base_url {} cannot hold paths",
                config.name,
                idsync_http::redact_url(config.base_url.as_str())
            )));
        }
        let client = build_client(&ClientOptions {
            timeout: Duration::from_secs(config.timeout_seconds.max(1)),
            ..ClientOptions::default()
        })
        .map_err(|e| config_error(e.to_string()))?;
        Ok(Api {
            name: config.name.clone(),
            kind: config.kind,
            shown: idsync_http::redact_url(base.as_str()),
            base,
            auth,
            limiter,
            pacing: Mutex::new(Pacing::default()),
            http: HttpClient::new(
                client,
                RetryPolicy::default(),
                RequestCounter::labelled(config.kind.to_string(), config.name.clone()),
            ),
            concurrency: config.concurrency,
            gate: tokio::sync::Semaphore::new(config.concurrency),
        })
    }

    /// A call to `template` below the base URL; each `{}` segment takes the next of `args`,
    /// percent-encoded as one path segment (usernames and group names may hold anything).
    pub fn call(&self, method: Method, template: &'static str, args: &[&str]) -> Call {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            let mut args = args.iter();
            for part in template.split('/') {
                if part == "{}" {
                    segments.push(args.next().copied().unwrap_or_default());
                } else {
                    segments.push(part);
                }
            }
        }
        Call::new(method, template, url)
    }

    /// A GET of a link the server handed out for the next page (Confluence `_links.next`),
    /// relative to the base URL or absolute on the same origin; counted under `template`. A
    /// link to another origin (scheme, host and port compared exactly) is refused: the
    /// credentials must not travel there.
    pub fn follow(&self, template: &'static str, link: &str) -> Result<Call, TargetError> {
        let url = if link.starts_with("http://") || link.starts_with("https://") {
            Url::parse(link).ok()
        } else {
            self.base.join(link.trim_start_matches('/')).ok()
        };
        let url = url.ok_or_else(|| {
            self.malformed(
                template,
                &format!("unusable next-page link {}", idsync_http::redact_url(link)),
            )
        })?;
        idsync_http::same_origin(&url, &self.base).map_err(|e| {
            self.err(
                TargetErrorKind::MalformedResponse,
                format!("{template}: {e}"),
                None,
            )
        })?;
        Ok(Call::new(Method::GET, template, url))
    }

    pub fn get(&self, template: &'static str, args: &[&str]) -> Call {
        self.call(Method::GET, template, args)
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.http.counter().snapshot()
    }

    /// The base URL as messages show it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The username of Basic authentication; `None` with a token.
    pub fn basic_username(&self) -> Option<&str> {
        match &self.auth {
            Auth::Basic { username, .. } => Some(username),
            Auth::Bearer(_) => None,
        }
    }

    /// Waits for the client-side budget and for any pause the server asked for.
    async fn wait_turn(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        loop {
            let not_before = lock(&self.pacing).not_before;
            match not_before {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
    }

    fn pause_until(&self, at: Instant) {
        let mut pacing = lock(&self.pacing);
        if pacing.not_before.is_none_or(|current| current < at) {
            pacing.not_before = Some(at);
        }
    }

    /// Slows down before the server has to refuse us. Jira and Confluence DC send
    /// `X-RateLimit-Remaining/-Limit/-FillRate/-Interval-Seconds` on every response once rate
    /// limiting is on (https://confluence.atlassian.com/adminjiraserver/adjusting-your-code-for-rate-limiting-987143384.html);
    /// Atlassian Cloud adds `X-RateLimit-NearLimit: true` under 20% of the budget
    /// (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/). When fewer than a
    /// fifth of the tokens are left, requests are spaced at the bucket's refill rate.
    fn observe_rate_headers(&self, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let near_limit = headers
            .get("x-ratelimit-nearlimit")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let per_token = match (
            number("x-ratelimit-fillrate"),
            number("x-ratelimit-interval-seconds"),
        ) {
            (Some(fill), Some(interval)) if fill > 0.0 && interval > 0.0 => interval / fill,
            _ => 1.0,
        };
        let low = match (number("x-ratelimit-remaining"), number("x-ratelimit-limit")) {
            (Some(remaining), Some(limit)) => remaining < 1.0 || remaining * 5.0 < limit,
            (Some(remaining), None) => remaining < 1.0,
            _ => false,
        };
        if low || near_limit {
            let wait = Duration::from_secs_f64(per_token.clamp(0.01, MAX_WAIT.as_secs_f64()));
            tracing::debug!(target_name = %self.name, ?wait, "rate-limit budget low; slowing down");
            self.pause_until(Instant::now() + wait);
        }
    }

    /// Sends a call through [`HttpClient::send`], which retries 429, 5xx and network failures
    /// with the delay the server asked for (`Retry-After`, seconds or HTTP date) or exponential
    /// backoff with jitter. A 401 is final and becomes [`TargetErrorKind::Unauthorized`]; every
    /// other status is returned for the caller to interpret.
    pub async fn send(&self, call: Call) -> Result<Reply, TargetError> {
        let reply = self.send_unchecked(call).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(&reply));
        }
        Ok(reply)
    }

    /// As [`Api::send`], but a 401 is returned like any other status: after credentials were
    /// accepted, Bitbucket and Confluence answer 401 to an account that lacks a permission,
    /// which only the caller can tell apart.
    pub async fn send_unchecked(&self, call: Call) -> Result<Reply, TargetError> {
        // The permit is held for this request only (retries included), never across another
        // `send`, so nested fan-outs cannot deadlock on it. The gate is never closed; were it,
        // going on ungated is the lesser harm.
        let _permit = self.gate.acquire().await.ok();
        self.wait_turn().await;
        let label = format!("{} /{}", call.method, call.template);
        let body = call
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap_or_default());
        let build = |client: &reqwest::Client| {
            let mut request = client
                .request(call.method.clone(), call.url.clone())
                .header(ACCEPT, "application/json");
            request = match &self.auth {
                Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
                Auth::Basic { username, password } => {
                    request.basic_auth(username, Some(password.expose_secret()))
                }
            };
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, call.content_type)
                    .body(body.clone());
            }
            request
        };
        let quick;
        let http = if call.quick {
            quick = HttpClient::new(
                self.http.reqwest().clone(),
                PROBE_RETRIES,
                self.http.counter().clone(),
            );
            &quick
        } else {
            &self.http
        };
        // The label, not the URL, names the call in errors and logs: Bitbucket's create-user
        // URL carries a password in its query.
        let response = http.send(&label, &label, build).await.map_err(|e| match e {
            HttpError::Exhausted { status, body, attempts, .. } => {
                let reply = Reply { status, body: body.to_vec() };
                let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                    TargetErrorKind::RateLimited
                } else {
                    TargetErrorKind::Unavailable
                };
                self.err(
                    kind,
                    format!(
                        "{label} still answered HTTP {} after {attempts} attempts ({}); try again later or lower max_requests_per_second",
                        status.as_u16(),
                        reply.server_message()
                    ),
                    Some(status.as_u16()),
                )
            }
            other => self.err(
                TargetErrorKind::Unavailable,
                format!("{other}; check that {} is reachable", self.shown),
                None,
            ),
        })?;
        self.observe_rate_headers(&response.headers);
        Ok(Reply {
            status: response.status,
            body: response.body.to_vec(),
        })
    }

    /// `reply` when it is a 2xx, else the error that explains it.
    pub fn success<'a>(&self, reply: &'a Reply, what: &str) -> Result<&'a Reply, TargetError> {
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(self.error(reply, what))
        }
    }

    /// Sends and insists on a 2xx.
    pub async fn send_ok(&self, call: Call, what: &str) -> Result<Reply, TargetError> {
        let reply = self.send(call).await?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(self.error(&reply, what))
        }
    }

    /// Sends a write and insists on a 2xx: then it is done.
    pub async fn send_done(&self, call: Call, what: &str) -> Result<Applied, TargetError> {
        self.send_ok(call, what).await?;
        Ok(Applied::Done)
    }

    /// What the reply to a deletion means: done (2xx), already done (404: what was to go is
    /// gone), or the error that explains it.
    pub fn deleted(&self, reply: &Reply, what: &str) -> Result<Applied, TargetError> {
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            StatusCode::NOT_FOUND => Ok(Applied::AlreadyDone),
            _ => Err(self.error(reply, what)),
        }
    }

    /// Sends, insists on a 2xx, and parses the JSON body.
    pub async fn fetch<T: DeserializeOwned>(
        &self,
        call: Call,
        what: &str,
    ) -> Result<T, TargetError> {
        let reply = self.send_ok(call, what).await?;
        self.parse(&reply, what)
    }

    /// Sends a read where a 404 means there is no such thing: `None` then; otherwise insists
    /// on a 2xx and parses the JSON body.
    pub async fn fetch_found<T: DeserializeOwned>(
        &self,
        call: Call,
        what: &str,
    ) -> Result<Option<T>, TargetError> {
        let reply = self.send(call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.success(&reply, what)
            .and_then(|reply| self.parse(reply, what))
            .map(Some)
    }

    /// The account the credentials belong to, read from the product's resource for it
    /// (`template`: Jira's `myself`, Confluence's `user/current`).
    pub async fn signed_in<T: DeserializeOwned>(
        &self,
        template: &'static str,
    ) -> Result<T, TargetError> {
        self.fetch(self.get(template, &[]), "read the signed-in user")
            .await
    }

    pub fn parse<T: DeserializeOwned>(&self, reply: &Reply, what: &str) -> Result<T, TargetError> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            self.err(
                TargetErrorKind::MalformedResponse,
                format!("{what}: the response could not be understood ({e}); is base_url {} the right product and context path?", self.shown),
                Some(reply.status.as_u16()),
            )
        })
    }
}

/// A limiter of `rps` requests per second, one at a time (no burst); `None` when `rps` is
/// outside the bounds the config checks allow (NaN, infinite, zero, negative, too small or too
/// large), where the period would overflow or round to nothing.
fn rate_limiter(rps: f64) -> Option<DefaultDirectRateLimiter> {
    if !(idsync_config::MIN_REQUESTS_PER_SECOND..=idsync_config::MAX_REQUESTS_PER_SECOND)
        .contains(&rps)
    {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / rps).ok()?;
    let quota = Quota::with_period(period)?;
    Some(RateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)))
}

#[cfg(test)]
mod tests;
