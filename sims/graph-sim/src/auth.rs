//! The Microsoft identity platform token endpoint (client credentials only) and the bearer
//! check in front of every Graph route.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::GraphSim;
use crate::http::GraphError;
use crate::permissions::{self, Roles};
use crate::store::Credentials;

/// The one scope Graph app-only tokens are requested for.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The same resource named by Graph's well-known application id.
const GRAPH_APP_ID_SCOPE: &str = "00000003-0000-0000-c000-000000000000/.default";

/// An issued access token: when it expires and the roles (application permissions) it carries.
struct Issued {
    expiry: Instant,
    roles: Roles,
}

pub(crate) struct AuthState {
    tokens: HashMap<String, Issued>,
    pub lifetime: Duration,
    pub secret_expired: bool,
    /// Every directory read answers 403, whatever the token holds (consent missing altogether).
    pub deny_permission: bool,
    /// The application permissions consented for the app; tokens issued from now on carry them.
    pub permissions: Arc<BTreeSet<String>>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            tokens: HashMap::new(),
            lifetime: Duration::from_secs(3599),
            secret_expired: false,
            deny_permission: false,
            permissions: Arc::new(
                permissions::DEFAULT_PERMISSIONS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            ),
        }
    }
}

impl AuthState {
    fn issue(&mut self) -> (String, u64) {
        let now = Instant::now();
        if self.tokens.len() > 10_000 {
            self.tokens.retain(|_, issued| issued.expiry > now);
        }
        // Shaped like a JWT (three dot-separated base64url parts) but opaque: clients must not
        // parse access tokens.
        let header = crate::token::base64url(br#"{"typ":"JWT","alg":"none","x5t":"graph-sim"}"#);
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        let token = format!(
            "{header}.{}.{}",
            crate::token::base64url(a.as_bytes()),
            crate::token::base64url(b.as_bytes())
        );
        self.tokens.insert(
            token.clone(),
            Issued {
                expiry: now + self.lifetime,
                roles: Roles(self.permissions.clone()),
            },
        );
        (token, self.lifetime.as_secs())
    }

    pub(crate) fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

enum TenantRef {
    Guid(uuid::Uuid),
    Domain(String),
    Malformed,
}

fn classify_tenant(text: &str) -> TenantRef {
    if let Ok(id) = uuid::Uuid::parse_str(text)
        && text.len() == 36
    {
        return TenantRef::Guid(id);
    }
    let labels: Vec<&str> = text.split('.').collect();
    let dns = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if dns {
        TenantRef::Domain(text.to_ascii_lowercase())
    } else {
        TenantRef::Malformed
    }
}

/// An RFC 6749 error with Entra's extra fields; `error_description` starts `AADSTS<code>: `.
fn aad_error(
    status: StatusCode,
    error: &str,
    code: u32,
    detail: &str,
    headers: &HeaderMap,
) -> Response {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "2024-01-01 00:00:00Z".to_owned());
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {detail}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

fn missing(name: &str, headers: &HeaderMap) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
        headers,
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
pub(crate) async fn token(
    State(sim): State<GraphSim>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let creds = sim.credentials();
    if let Err(refused) = check_tenant(&tenant, &creds, &headers) {
        return refused;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (client_id, secret) = match check_form(&form, &creds, &tenant, &headers) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let mut auth = sim.auth();
    if *secret != creds.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
            &headers,
        );
    }
    if auth.secret_expired {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
            &headers,
        );
    }
    let (access_token, expires_in) = auth.issue();
    drop(auth);
    let mut response = Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    }))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

/// The tenant in the path: a GUID or domain of this tenant (AADSTS900023, 90002 otherwise).
// The error is the endpoint's answer, built once per refused request: boxing it would only
// add noise.
#[allow(clippy::result_large_err)]
fn check_tenant(tenant: &str, creds: &Credentials, headers: &HeaderMap) -> Result<(), Response> {
    match classify_tenant(tenant) {
        TenantRef::Malformed => Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900023,
            &format!(
                "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."
            ),
            headers,
        )),
        TenantRef::Guid(id) if id.to_string() != creds.tenant_id.to_ascii_lowercase() => {
            Err(tenant_not_found(tenant, headers))
        }
        TenantRef::Domain(d) if d != creds.tenant_domain.to_ascii_lowercase() => {
            Err(tenant_not_found(tenant, headers))
        }
        _ => Ok(()),
    }
}

/// The form of a client-credentials request, checked in the order Entra answers: grant type,
/// client id, scope, and a secret present (whether it is the right one is checked under the
/// lock). Returns the client id and the secret.
// The error is the endpoint's answer, built once per refused request: boxing it would only
// add noise.
#[allow(clippy::result_large_err)]
fn check_form<'f>(
    form: &'f HashMap<String, String>,
    creds: &Credentials,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<(&'f String, &'f String), Response> {
    let Some(grant) = form.get("grant_type") else {
        return Err(missing("grant_type", headers));
    };
    if grant != "client_credentials" {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
            headers,
        ));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(missing("client_id", headers));
    };
    if !client_id.eq_ignore_ascii_case(&creds.client_id) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
            headers,
        ));
    }
    let Some(scope) = form.get("scope") else {
        return Err(missing("scope", headers));
    };
    // Accepted: Graph's `.default` by URL or by well-known app id, and `.default` of this
    // simulator's own base URL (clients that derive the scope from a configured graph_url).
    let own_scope = format!("{}/.default", crate::http::base_url(headers));
    let scope_ok = [GRAPH_DEFAULT_SCOPE, GRAPH_APP_ID_SCOPE, own_scope.as_str()]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scope.trim()));
    if !scope_ok {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
            headers,
        ));
    }
    let Some(secret) = form.get("client_secret").filter(|s| !s.is_empty()) else {
        return Err(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            headers,
        ));
    };
    Ok((client_id, secret))
}

fn tenant_not_found(tenant: &str, headers: &HeaderMap) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
        headers,
    )
}

/// Bearer check for `/v1.0/...`: unknown or expired token → 401 `InvalidAuthenticationToken`;
/// a valid token whose roles do not cover the route (or any token while `deny_permission` is
/// on) → 403 `Authorization_RequestDenied` (see [`crate::permissions`]). The token's roles go
/// to the handler, which needs them for groups with hidden membership.
pub(crate) async fn bearer(
    State(sim): State<GraphSim>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty());
    // Without a matched route the required permissions are unknown: the check fails closed.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let verdict = {
        let auth = sim.auth();
        match presented {
            None => Err("Access token is empty."),
            Some(token) => match auth.tokens.get(&token) {
                None => Err(
                    "IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact Serialization Format.",
                ),
                Some(issued) if issued.expiry <= Instant::now() => {
                    Err("Access token has expired or is not yet valid.")
                }
                Some(_) if auth.deny_permission => Ok(None),
                Some(issued)
                    if !route.as_deref().is_some_and(|route| {
                        permissions::allowed(&issued.roles, route, request.uri().path())
                    }) =>
                {
                    Ok(None)
                }
                Some(issued) => Ok(Some(issued.roles.clone())),
            },
        }
    };
    match verdict {
        Ok(Some(roles)) => {
            request.extensions_mut().insert(roles);
            next.run(request).await
        }
        Ok(None) => GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
        .into_response(),
        Err(message) => {
            let mut error = GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            );
            error.headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#,
                ),
            ));
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_forms() {
        assert!(matches!(
            classify_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"),
            TenantRef::Guid(_)
        ));
        assert!(matches!(
            classify_tenant("contoso.onmicrosoft.com"),
            TenantRef::Domain(_)
        ));
        assert!(matches!(
            classify_tenant("not a tenant"),
            TenantRef::Malformed
        ));
        assert!(matches!(classify_tenant("contoso"), TenantRef::Malformed));
    }

    /// A request that reaches the bearer check without a matched route (the check applied as
    /// a plain layer, so no `MatchedPath`) is refused with 403 even with a token holding every
    /// default permission, while the same token passes on a matched route.
    #[tokio::test]
    async fn bearer_fails_closed_without_a_matched_route() {
        use axum::body::Body;
        use tower_service::Service;

        let sim = GraphSim::new(&crate::TenantSpec::sized(1, 1));
        let (token, _) = sim.auth().issue();
        let request = |path: &str| {
            Request::builder()
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request")
        };
        let ok = || async { "ok" };
        let mut unmatched = axum::Router::new()
            .fallback(ok)
            .layer(axum::middleware::from_fn_with_state(sim.clone(), bearer));
        let response = unmatched
            .call(request("/v1.0/users"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);

        let mut matched = axum::Router::new()
            .route("/v1.0/users", axum::routing::get(ok))
            .route_layer(axum::middleware::from_fn_with_state(sim, bearer));
        let response = matched
            .call(request("/v1.0/users"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
