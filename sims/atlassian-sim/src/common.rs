//! Plumbing shared by the four products: query parsing that never rejects with a non-product
//! error, per-product error bodies, authentication, rate limiting, the Bitbucket request log
//! and the 404 fallback.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::RecordedRequest;
use crate::{Inner, Product};

/// Query pairs, decoded. Handlers validate them themselves so that bad input gets the
/// product's error body rather than axum's plain-text rejection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Params(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `Err(message)` when present but not a boolean.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(format!("Invalid value '{v}' for parameter '{name}'")),
        }
    }

    /// `Err(message)` when present but not a non-negative integer.
    pub fn usize(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| format!("Invalid value '{v}' for parameter '{name}'")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query()))
    }
}

/// Parses a JSON body; `Err(message)` when it is empty or not JSON.
pub(crate) fn parse_json(body: &Bytes) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("No content to map due to end-of-input".to_owned());
    }
    serde_json::from_slice(body).map_err(|e| format!("Unable to parse the request body: {e}"))
}

pub(crate) fn json_response(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

pub(crate) fn empty(status: StatusCode) -> Response {
    status.into_response()
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A page window over an already-filtered list: `(items, is_last)`.
pub(crate) fn window<T: Clone>(items: &[T], start: usize, limit: usize) -> (Vec<T>, bool) {
    let end = start.saturating_add(limit).min(items.len());
    let slice = if start < items.len() {
        items[start..end].to_vec()
    } else {
        Vec::new()
    };
    (slice, end >= items.len())
}

/// Which product a request path belongs to.
pub(crate) fn product_for_path(path: &str) -> Option<Product> {
    if path.starts_with("/jira/") || path == "/jira" {
        Some(Product::Jira)
    } else if path.starts_with("/confluence/") || path == "/confluence" {
        Some(Product::Confluence)
    } else if path.starts_with("/bitbucket/") || path == "/bitbucket" {
        Some(Product::Bitbucket)
    } else if path.starts_with("/scim/") {
        Some(Product::Scim)
    } else {
        None
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// The product's error body for `status` with one message.
pub(crate) fn error_body(product: Option<Product>, status: StatusCode, message: &str) -> Value {
    match product {
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/intro/ (ErrorCollection)
        Some(Product::Jira) | None => json!({"errorMessages": [message], "errors": {}}),
        // [U] typical Confluence DC error body (api-contracts.md D).
        Some(Product::Confluence) => json!({
            "statusCode": status.as_u16(),
            "data": {"authorized": status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                     "valid": true, "errors": [], "successful": false},
            "message": message,
            "reason": reason(status),
        }),
        // Bitbucket 8.14 OpenAPI: inline_response_401 / RestErrors.
        Some(Product::Bitbucket) => json!({"errors": [{
            "context": null,
            "message": message,
            "exceptionName": bitbucket_exception(status),
        }]}),
        // RFC 7644 §3.12 error, as the Atlassian user-provisioning API returns it.
        Some(Product::Scim) => json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.as_u16().to_string(),
            "detail": message,
        }),
    }
}

pub(crate) fn bitbucket_exception(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "com.atlassian.bitbucket.auth.AuthorisationException",
        StatusCode::FORBIDDEN => "com.atlassian.bitbucket.AuthorisationException",
        StatusCode::NOT_FOUND => "com.atlassian.bitbucket.NoSuchEntityException",
        StatusCode::CONFLICT => "com.atlassian.bitbucket.IntegrityException",
        StatusCode::TOO_MANY_REQUESTS => "com.atlassian.bitbucket.throttle.ThrottledException",
        StatusCode::BAD_REQUEST => "com.atlassian.bitbucket.validation.ArgumentValidationException",
        _ => "com.atlassian.bitbucket.ServiceException",
    }
}

/// An error response in the shape of the product that owns `path`.
pub(crate) fn error_for_path(path: &str, status: StatusCode, message: &str) -> Response {
    let product = product_for_path(path);
    let mut response = json_response(status, error_body(product, status, message));
    if product == Some(Product::Scim) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::scim::CONTENT_TYPE),
        );
    }
    response
}

/// Standard base64 (RFC 4648 with padding), enough to build the expected Basic credentials.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Middleware state: which product a route belongs to.
#[derive(Clone)]
pub(crate) struct Gate {
    pub sim: Arc<Inner>,
    pub product: Product,
}

/// Who sent a request, as its `Authorization` header says; handlers that answer about the
/// caller (Jira's `/myself`, Confluence's `/user/current`) read it from the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The account's username.
    pub name: String,
    /// Whether these credentials may use the resources that need administrator rights.
    pub admin: bool,
}

/// Bitbucket's administrative REST resources (`/rest/api/{1.0|latest}/admin/...`): the ones
/// HTTP access tokens cannot call. Every user and group write lives there.
fn is_bitbucket_admin(path: &str) -> bool {
    [
        "/bitbucket/rest/api/1.0/admin/",
        "/bitbucket/rest/api/latest/admin/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// Whether the resource `method route` (a matched route; `path` as received) needs an
/// administrator.
/// - Bitbucket: everything under `/admin/` (8.14 OpenAPI: "The authenticated user must have
///   ADMIN permission").
/// - Jira: user and group changes, `GET /group/member` (api-contracts.md C.2: 403 when not an
///   admin) and `GET /applicationrole` (Administer Jira global permission,
///   https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-applicationrole/).
///   [U] Every other write is taken to need one too.
/// - Confluence: the `/admin/` resources, user-group membership changes, and the member
///   listing of a group (CONFSERVER-98582: refused to a user who is not an administrator).
/// - SCIM: nothing; the directory API key is all there is.
fn needs_admin(product: Product, method: &axum::http::Method, route: &str, path: &str) -> bool {
    match product {
        Product::Bitbucket => is_bitbucket_admin(path),
        Product::Jira => {
            method != axum::http::Method::GET
                || route == "/jira/rest/api/2/group/member"
                || route == "/jira/rest/api/2/applicationrole"
        }
        Product::Confluence => {
            route.starts_with("/confluence/rest/api/admin/")
                || route == "/confluence/rest/api/group/{groupName}/member"
                || route == "/confluence/rest/api/user/{username}/group/{groupName}"
        }
        Product::Scim => false,
    }
}

/// The caller the `Authorization` header names, `None` when it names nobody the product
/// knows (or is missing).
fn caller(sim: &Inner, product: Product, request: &Request) -> Option<Caller> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let config = &sim.config;
    let admin = |admin| Caller {
        name: config.admin_user.clone(),
        admin,
    };
    let plain = || Caller {
        name: config.bitbucket_plain_user.clone(),
        admin: false,
    };
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return match product {
            Product::Jira if credentials == config.jira_token => Some(admin(true)),
            Product::Jira if credentials == config.jira_plain_token => Some(plain()),
            Product::Confluence if credentials == config.confluence_token => Some(admin(true)),
            Product::Confluence if credentials == config.confluence_plain_token => Some(plain()),
            // Bitbucket DC does not accept HTTP access tokens (personal, project or
            // repository) on administrative endpoints or user management; Basic or OAuth 2.0
            // only. The token authenticates, then the admin permission check fails.
            // https://confluence.atlassian.com/bitbucketserverkb/how-to-use-oauth2-tokens-for-administrative-endpoints-of-bitbucket-data-center-1489469945.html
            // (BSERV-10482)
            Product::Bitbucket if credentials == config.bitbucket_token => Some(admin(false)),
            Product::Scim if credentials == config.scim_token => Some(admin(true)),
            _ => None,
        };
    }
    // SCIM accepts only the directory's bearer API key (api-contracts.md F).
    if scheme.eq_ignore_ascii_case("basic") && product != Product::Scim {
        let basic = |user: &str, password: &str| {
            credentials == base64(format!("{user}:{password}").as_bytes())
        };
        if basic(&config.admin_user, &config.admin_password) {
            return Some(admin(true));
        }
        // A licensed Bitbucket account without ADMIN permission.
        if product == Product::Bitbucket
            && basic(
                &config.bitbucket_plain_user,
                &config.bitbucket_plain_password,
            )
        {
            return Some(plain());
        }
    }
    None
}

/// The product's answer to known credentials asking for a resource that needs an
/// administrator.
fn not_permitted(gate: &Gate, path: &str) -> Response {
    match gate.product {
        // Bitbucket answers a failed permission check with 401 ("The authenticated user does
        // not have the ADMIN permission", 8.14 OpenAPI) in the RestErrors shape; no
        // WWW-Authenticate, since authentication itself succeeded.
        Product::Bitbucket => json_response(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{
                "context": null,
                "message": "You are not permitted to access this resource",
                "exceptionName": "com.atlassian.bitbucket.AuthorisationException",
            }]}),
        ),
        // Confluence 8.x answers 401 "Client must be authenticated to access this resource."
        // though the client is (CONFSERVER-98582, seen on 8.5); [U] later versions are taken
        // to answer 403.
        Product::Confluence => {
            let version = crate::lock(&gate.sim.state).version(Product::Confluence);
            if version < (9, 1, 0) {
                error_for_path(
                    path,
                    StatusCode::UNAUTHORIZED,
                    "Client must be authenticated to access this resource.",
                )
            } else {
                error_for_path(
                    path,
                    StatusCode::FORBIDDEN,
                    "The calling user does not have permission to use this resource: it needs \
                     Confluence administrator rights.",
                )
            }
        }
        // [U text] Jira's 403 for an account without the Jira Administrators permission.
        _ => error_for_path(
            path,
            StatusCode::FORBIDDEN,
            "You do not have the permission to use this resource: it needs the Jira \
             Administrators global permission.",
        ),
    }
}

/// Per-product middleware: the Bitbucket request log, authentication, then rate limiting.
pub(crate) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if gate.product == Product::Bitbucket {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return error_for_path(
                    parts.uri.path(),
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read",
                );
            }
        };
        let mut recorded = record_of(&parts, &bytes);
        let request = Request::from_parts(parts, Body::from(bytes));
        let response = authenticated(&gate, request, next).await;
        recorded.status = response.status().as_u16();
        crate::lock(&gate.sim.state).requests.push(recorded);
        return response;
    }
    authenticated(&gate, request, next).await
}

fn record_of(parts: &Parts, bytes: &Bytes) -> RecordedRequest {
    let spec_path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| bitbucket_spec_path(m.as_str()));
    let body = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        )
    };
    RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        spec_path,
        query: Params::parse(parts.uri.query()).0,
        body,
        status: 0,
    }
}

/// `/bitbucket/rest/api/1.0/users/{userSlug}` → `/api/latest/users/{userSlug}`, the key of the
/// 8.14 OpenAPI document (whose server URL ends in `/rest`).
pub(crate) fn bitbucket_spec_path(route: &str) -> String {
    let rest = route.strip_prefix("/bitbucket/rest").unwrap_or(route);
    if let Some(tail) = rest.strip_prefix("/api/1.0/") {
        format!("/api/latest/{tail}")
    } else {
        rest.to_owned()
    }
}

async fn authenticated(gate: &Gate, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let Some(who) = caller(&gate.sim, gate.product, &request) else {
        let message = match gate.product {
            Product::Scim => "Unauthorized: a valid directory API key is required",
            Product::Bitbucket => {
                "Authentication failed. Please check your credentials and try again."
            }
            _ => "Client must be authenticated to access this resource.",
        };
        let mut response = error_for_path(&path, StatusCode::UNAUTHORIZED, message);
        if gate.product != Product::Scim {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"protected-area\""),
            );
        }
        return response;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    // A resource the product's version does not have yet: the product's 404, once the
    // credentials are known to be good (as the products check them first).
    let version = crate::lock(&gate.sim.state).version(gate.product);
    if !crate::versions::has(version, request.method(), &route) {
        return error_for_path(
            &path,
            StatusCode::NOT_FOUND,
            "Could not find the resource: not in this version of the product",
        );
    }
    if !who.admin && needs_admin(gate.product, request.method(), &route, &path) {
        return not_permitted(gate, &path);
    }
    request.extensions_mut().insert(who);
    let taken = {
        let mut state = crate::lock(&gate.sim.state);
        state
            .buckets
            .get_mut(&gate.product)
            .map(|bucket| bucket.take(Instant::now()))
    };
    let Some(taken) = taken else {
        return next.run(request).await;
    };
    if let Some(seconds) = taken.retry_after {
        let mut response = error_for_path(
            &path,
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded. Too many requests; retry after the delay in the Retry-After header.",
        );
        taken.apply(response.headers_mut());
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let mut response = next.run(request).await;
    taken.apply(response.headers_mut());
    response
}

/// Requests no route matched: a 404 in the shape of the product the path belongs to.
pub(crate) async fn fallback(State(sim): State<Arc<Inner>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let response = error_for_path(
        &path,
        StatusCode::NOT_FOUND,
        &format!("No resource at {} {path}", request.method()),
    );
    if product_for_path(&path) == Some(Product::Bitbucket) {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let mut recorded = record_of(&parts, &bytes);
        recorded.spec_path = None;
        recorded.status = response.status().as_u16();
        crate::lock(&sim.state).requests.push(recorded);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"admin:admin"), "YWRtaW46YWRtaW4=");
    }

    #[test]
    fn spec_paths() {
        assert_eq!(
            bitbucket_spec_path("/bitbucket/rest/api/1.0/admin/users"),
            "/api/latest/admin/users"
        );
        assert_eq!(
            bitbucket_spec_path("/bitbucket/rest/api/latest/users/{userSlug}"),
            "/api/latest/users/{userSlug}"
        );
    }
}
