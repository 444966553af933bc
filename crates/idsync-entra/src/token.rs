//! App-only access tokens by the OAuth 2.0 client-credentials grant.
//!
//! `POST {authority_url}/{tenant}/oauth2/v2.0/token` with `scope={graph_url}/.default`
//! (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
//! The token is cached until shortly before it expires; when many tasks need a new one at once,
//! one request is made and the others wait for it (single flight, by holding an async mutex
//! across the refresh). Sign-in failures are explained per AADSTS code (`error_codes[0]`, as the
//! docs advise — never the `error` string), with the fix.

use std::time::{Duration, Instant};

use idsync_http::HttpClient;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::EntraError;

/// Request kind in the counter.
pub const TOKEN_KIND: &str = "token";

/// An access token and the generation it belongs to (to invalidate exactly that one).
#[derive(Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub value: SecretString,
    /// Which token this is: a 401 invalidates exactly this one, not a newer one fetched since.
    pub generation: u64,
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Client-credentials tokens from the Microsoft identity platform, cached until shortly
/// before they expire (see the module docs).
pub struct TokenProvider {
    http: HttpClient,
    token_url: String,
    tenant: String,
    client_id: String,
    secret: SecretString,
    scope: String,
    cache: Mutex<Option<Cached>>,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; some endpoints send it as a string.
    expires_in: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct AadError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

impl TokenProvider {
    /// A provider for this tenant's token endpoint and app registration.
    pub fn new(
        http: HttpClient,
        authority_url: &str,
        tenant: &str,
        client_id: &str,
        secret: SecretString,
        graph_url: &str,
    ) -> Self {
        TokenProvider {
            http,
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority_url.trim_end_matches('/'),
                tenant
            ),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            // For the public cloud this is https://graph.microsoft.com/.default; national
            // clouds and simulators follow from graph_url.
            scope: format!("{}/.default", graph_url.trim_end_matches('/')),
            cache: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The token endpoint, for messages.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// A valid token: the cached one, or a new one (one request however many callers wait).
    pub async fn token(&self) -> Result<AccessToken, EntraError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let (value, lifetime) = self.request().await?;
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let token = AccessToken { value, generation };
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_after(lifetime),
        });
        Ok(token)
    }

    /// Drops the cached token if it is still `generation` (Graph said it is no longer valid),
    /// so that the next [`TokenProvider::token`] fetches a new one.
    pub async fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            *cache = None;
        }
    }

    async fn request(&self) -> Result<(SecretString, Duration), EntraError> {
        let url = &self.token_url;
        let response = self
            .http
            .send(TOKEN_KIND, url, |c| {
                c.post(url).form(&[
                    ("client_id", self.client_id.as_str()),
                    ("scope", self.scope.as_str()),
                    ("client_secret", self.secret.expose_secret()),
                    ("grant_type", "client_credentials"),
                ])
            })
            .await
            .map_err(|e| match e {
                idsync_http::HttpError::Transport { message, .. } => EntraError::SignIn {
                    code: 0,
                    error: "unreachable".into(),
                    message: format!(
                        "cannot reach the token endpoint {}: {message}. Check authority_url \
                         (https://login.microsoftonline.com for the public cloud) and that this \
                         host can reach it (proxy, firewall).",
                        idsync_http::redact_url(url)
                    ),
                },
                other => EntraError::Http(other),
            })?;
        if response.status.is_success() {
            let body: TokenResponse = response.json().map_err(|e| EntraError::Malformed {
                what: "sign-in".into(),
                url: url.clone(),
                detail: format!("not a token response: {e}"),
            })?;
            let seconds = match &body.expires_in {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or(3599);
            return Ok((
                SecretString::from(body.access_token),
                Duration::from_secs(seconds),
            ));
        }
        let aad: AadError = response.json().unwrap_or_default();
        if aad.error.is_empty() && aad.error_codes.is_empty() {
            return Err(EntraError::SignIn {
                code: 0,
                error: String::new(),
                message: format!(
                    "the token endpoint {url} answered HTTP {} without an OAuth error; is \
                     authority_url right (https://login.microsoftonline.com for the public cloud)?",
                    response.status.as_u16()
                ),
            });
        }
        Err(self.explain(&aad))
    }

    /// The message for an AADSTS error: cause and fix.
    fn explain(&self, aad: &AadError) -> EntraError {
        let code = aad.error_codes.first().copied().unwrap_or(0);
        let client = &self.client_id;
        let tenant = &self.tenant;
        let cause = match code {
            7000215 => format!(
                "the client secret is wrong. Most often the secret's ID was pasted instead of its \
                 Value. Fix: Entra admin center → App registrations → {client} → Certificates & \
                 secrets: copy the secret's Value column (shown only right after it is created; \
                 if it is hidden, create a new secret) into client_secret."
            ),
            7000222 => format!(
                "the client secret of app {client} has expired. Fix: Entra admin center → App \
                 registrations → {client} → Certificates & secrets → New client secret, then put \
                 its Value in client_secret (and note the new expiry date)."
            ),
            700016 => format!(
                "no application with client_id {client} exists in tenant {tenant}. Fix: client_id \
                 must be the Application (client) ID from the app registration's Overview page, \
                 and tenant_id the tenant the app is registered in (a multi-tenant app must first \
                 be consented to by an administrator of this tenant)."
            ),
            90002 => format!(
                "tenant {tenant} does not exist. Fix: tenant_id must be the Directory (tenant) ID \
                 from the app registration's Overview page, or a verified domain of the tenant; \
                 for national clouds set authority_url (e.g. https://login.microsoftonline.us)."
            ),
            900023 => format!(
                "tenant_id '{tenant}' is neither a GUID nor a domain name. Fix: use the Directory \
                 (tenant) ID (a GUID) or a domain such as contoso.onmicrosoft.com."
            ),
            70011 => format!(
                "the scope {} is not valid. Fix: graph_url must be the Microsoft Graph root of your \
                 cloud with no path, e.g. https://graph.microsoft.com (the scope is \
                 graph_url + /.default).",
                self.scope
            ),
            7000218 => "no client secret was sent. Fix: set client_secret (inline, env:VAR or \
                 file:PATH) to the secret's Value."
                .to_owned(),
            _ => {
                let first_line = aad
                    .error_description
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim();
                format!(
                    "{first_line} See https://login.microsoftonline.com/error?code={code} for what \
                     it means."
                )
            }
        };
        EntraError::SignIn {
            code,
            error: aad.error.clone(),
            message: format!(
                "sign-in to Entra ID failed (AADSTS{code}, {}): {cause}",
                if aad.error.is_empty() {
                    "no error name"
                } else {
                    aad.error.as_str()
                }
            ),
        }
    }
}

/// When to refresh: five minutes before expiry, or half way through short lifetimes.
fn refresh_after(lifetime: Duration) -> Duration {
    let margin = Duration::from_secs(300).min(lifetime / 2);
    lifetime.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_before_expiry() {
        assert_eq!(
            refresh_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }
}
