//! Authenticated GETs against Microsoft Graph v1.0 and collection paging.
//!
//! Conventions (https://learn.microsoft.com/graph/paging, .../graph/errors):
//! `@odata.nextLink` is followed verbatim until absent (pages may be short or empty); a delta
//! round ends with `@odata.deltaLink` instead. Error bodies are
//! `{"error":{"code","message","innerError":{..}}}` and we branch on `code`, never `message`.

use std::sync::Arc;

use idsync_http::{HttpClient, HttpResponse};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::error::EntraError;
use crate::error::grant_steps;
use crate::token::TokenProvider;

/// `Prefer: odata.maxpagesize=999` on delta requests (delta does not take `$top`). A preference
/// only: Graph caps users and groups delta pages at about 200 objects and a groups page at about
/// 500 `members@delta` entries, and sends the same without the header (Microsoft Q&A,
/// https://learn.microsoft.com/en-us/answers/questions/2276060). Asking for more costs nothing
/// and takes bigger pages wherever Graph gives them; paging never depends on the size, only on
/// following `@odata.nextLink` to the `@odata.deltaLink`.
pub const MAX_PAGE_PREFER: &str = "odata.maxpagesize=999";

/// What a request is for: the counter key and the permission a 403 means is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `/users/delta` (User.Read.All).
    UsersDelta,
    /// `/groups/delta` with members (GroupMember.Read.All).
    GroupsDelta,
    /// An enterprise application's assignments (Application.Read.All).
    AppAssignments,
    /// One user, for a sign-in sync.
    User,
    /// One user's direct groups.
    MemberOf,
    /// One user's groups, nested ones included.
    TransitiveMemberOf,
}

impl CallKind {
    /// The name the request counter counts it under.
    pub fn key(self) -> &'static str {
        match self {
            CallKind::UsersDelta => "users/delta",
            CallKind::GroupsDelta => "groups/delta",
            CallKind::AppAssignments => "servicePrincipals/appRoleAssignedTo",
            CallKind::User => "users/{id}",
            CallKind::MemberOf => "users/{id}/memberOf",
            CallKind::TransitiveMemberOf => "users/{id}/transitiveMemberOf",
        }
    }

    fn what(self) -> &'static str {
        match self {
            CallKind::UsersDelta => "reading users",
            CallKind::GroupsDelta => "reading groups and their members",
            CallKind::AppAssignments => "reading the enterprise application's assignments",
            CallKind::User => "reading the user",
            CallKind::MemberOf => "reading the user's groups",
            CallKind::TransitiveMemberOf => "reading the user's groups, nested ones included",
        }
    }

    /// The least-privileged application permission for the call, from the Permissions table of
    /// user-delta, group-delta and serviceprincipal-list-approleassignedto
    /// (https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0 and siblings;
    /// user-get, user-list-memberof, user-list-transitivememberof for one user's reads).
    fn permission(self) -> &'static str {
        match self {
            CallKind::UsersDelta | CallKind::User | CallKind::TransitiveMemberOf => "User.Read.All",
            CallKind::MemberOf => "GroupMember.Read.All",
            CallKind::GroupsDelta => "GroupMember.Read.All",
            CallKind::AppAssignments => "Application.Read.All",
        }
    }

    /// Broader permissions the same tables accept instead.
    fn alternatives(self) -> &'static str {
        match self {
            CallKind::UsersDelta | CallKind::User => "User.ReadWrite.All or Directory.Read.All",
            CallKind::MemberOf => "Group.Read.All or Directory.Read.All",
            CallKind::TransitiveMemberOf => {
                "GroupMember.Read.All, Group.Read.All or Directory.Read.All"
            }
            CallKind::GroupsDelta => "Group.Read.All or Directory.Read.All",
            CallKind::AppAssignments => "Application.ReadWrite.All or Directory.Read.All",
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// One page of a collection.
#[derive(Deserialize)]
pub struct Page {
    /// The page's objects.
    pub value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    /// The next page, when there is one (`@odata.nextLink`).
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    /// The link for the next delta round, on a delta's last page (`@odata.deltaLink`).
    pub delta_link: Option<String>,
}

#[derive(Debug)]
/// Microsoft Graph over HTTP: a token for each request, paging, and errors read as Graph sends them.
pub struct GraphClient {
    http: HttpClient,
    tokens: Arc<TokenProvider>,
    /// `{graph_url}` without a trailing slash, to build request URLs from.
    root: String,
    /// `graph_url` parsed: every URL we send the token to must be on its origin (scheme, host,
    /// port), links the server hands out included.
    base: Url,
    client_id: String,
}

impl GraphClient {
    /// A client of `graph_url` using `tokens` for its bearer tokens.
    pub fn new(
        http: HttpClient,
        tokens: Arc<TokenProvider>,
        graph_url: &Url,
        client_id: &str,
    ) -> Self {
        GraphClient {
            http,
            tokens,
            root: graph_url.as_str().trim_end_matches('/').to_owned(),
            base: graph_url.clone(),
            client_id: client_id.to_owned(),
        }
    }

    /// `{graph_url}/v1.0{path}`
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}/v1.0{path_and_query}", self.root)
    }

    /// Refuses a URL that is not on `graph_url`'s origin before anything is sent: next and
    /// delta links come from the server (and delta links from the store), and the bearer token
    /// must go to Graph only.
    fn check_origin(&self, kind: CallKind, url: &str) -> Result<(), EntraError> {
        let parsed = Url::parse(url).map_err(|e| EntraError::Malformed {
            what: kind.what().into(),
            url: idsync_http::redact_url(url),
            detail: format!("the link is not a URL ({e})"),
        })?;
        idsync_http::same_origin(&parsed, &self.base).map_err(|source| EntraError::ForeignLink {
            what: kind.what().into(),
            source,
        })
    }

    /// An authenticated GET. A 401 (token expired or revoked early) gets one new token and one
    /// more try; other error statuses become [`EntraError`]s, delta resets included.
    pub async fn get(
        &self,
        kind: CallKind,
        url: &str,
        prefer: Option<&str>,
    ) -> Result<HttpResponse, EntraError> {
        self.check_origin(kind, url)?;
        let mut retried_401 = false;
        loop {
            let token = self.tokens.token().await?;
            let response = self
                .http
                .send(kind.key(), url, |c| {
                    let mut request = c
                        .get(url)
                        .bearer_auth(token.value.expose_secret())
                        .header(reqwest::header::ACCEPT, "application/json");
                    if let Some(prefer) = prefer {
                        request = request.header("Prefer", prefer);
                    }
                    request
                })
                .await?;
            if response.status == StatusCode::UNAUTHORIZED && !retried_401 {
                retried_401 = true;
                self.tokens.invalidate(token.generation).await;
                continue;
            }
            if response.status.is_success() {
                return Ok(response);
            }
            return Err(self.error(kind, &response));
        }
    }

    fn error(&self, kind: CallKind, response: &HttpResponse) -> EntraError {
        let status = response.status.as_u16();
        let body: Option<ErrorEnvelope> = response.json().ok();
        let (code, message) = body
            .map(|b| (b.error.code, b.error.message))
            .unwrap_or_else(|| (String::new(), response.text().chars().take(300).collect()));
        let request_id = response.header("request-id").map(str::to_owned);
        if status == 410 || code == "syncStateNotFound" || code == "resyncRequired" {
            let reason = if status == 410 {
                "410 Gone: Graph asks for a full resync".to_owned()
            } else {
                format!("{code}: {message}")
            };
            return EntraError::DeltaReset {
                what: kind.what().into(),
                reason,
            };
        }
        // A page token used too late (Graph's skip tokens expire within minutes; seen when
        // the next page is asked for after a long pause, e.g. under throttling):
        // https://learn.microsoft.com/en-us/answers/questions/2337800/how-to-handle-directory-expiredpagetoken-error-in
        if status == 400 && code == "Directory_ExpiredPageToken" {
            return EntraError::PageTokenExpired {
                what: kind.what().into(),
                restarts: 0,
                message: format!("Microsoft Graph answered 400 {code}: {message}"),
            };
        }
        // Each call needs its own permission, so the one named is the one missing; a token
        // carries the permissions consented when it was issued, and each run signs in afresh.
        if status == 403 && code == "Authorization_RequestDenied" {
            let permission = kind.permission();
            return EntraError::PermissionDenied {
                permission,
                message: format!(
                    "Microsoft Graph refused {} (403 Authorization_RequestDenied): the app \
                     registration {} lacks the application permission {permission} (or {}), \
                     or an administrator has not granted consent for it. Fix: {}; the next run \
                     uses it.",
                    kind.what(),
                    self.client_id,
                    kind.alternatives(),
                    grant_steps(permission)
                ),
            };
        }
        if status == 401 {
            return EntraError::Graph {
                what: kind.what().into(),
                status,
                code,
                message: format!(
                    "{message} (a freshly issued token was refused too; check that graph_url \
                     matches the cloud of authority_url)"
                ),
                request_id,
            };
        }
        // A 400 about the `$select` of users (a name users do not have, or one delta cannot
        // track) is explained by the reader, which knows the config fields behind each name.
        EntraError::Graph {
            what: kind.what().into(),
            status,
            code,
            message,
            request_id,
        }
    }

    /// GETs one page and parses it as a collection page.
    pub async fn page(
        &self,
        kind: CallKind,
        url: &str,
        prefer: Option<&str>,
    ) -> Result<Page, EntraError> {
        let response = self.get(kind, url, prefer).await?;
        serde_json::from_slice(&response.body).map_err(|e| EntraError::Malformed {
            what: kind.what().into(),
            url: url.to_owned(),
            detail: format!("not a Graph collection page: {e}"),
        })
    }

    /// Follows a collection from `first` to its end, handing each page's items to `each`.
    /// Returns the final `@odata.deltaLink`, if the collection is a delta round.
    pub async fn walk(
        &self,
        kind: CallKind,
        first: String,
        prefer: Option<&str>,
        mut each: impl FnMut(Vec<Value>) -> Result<(), EntraError>,
    ) -> Result<Option<String>, EntraError> {
        let mut url = first;
        loop {
            let page = self.page(kind, &url, prefer).await?;
            each(page.value)?;
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = next,
                (None, delta) => return Ok(delta),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_http::{ClientOptions, RequestCounter, RetryPolicy};

    fn client(graph_url: &str) -> GraphClient {
        let http = HttpClient::new(
            idsync_http::build_client(&ClientOptions::default()).expect("client"),
            RetryPolicy::fast(),
            RequestCounter::new(),
        );
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            "https://login.microsoftonline.com",
            "contoso.onmicrosoft.com",
            "client",
            secrecy::SecretString::from("secret"),
            graph_url,
        ));
        let base = Url::parse(graph_url).expect("url");
        GraphClient::new(http, tokens, &base, "client")
    }

    #[test]
    fn only_links_on_the_graph_origin_are_followed() {
        let graph = client("https://graph.microsoft.com");
        let kind = CallKind::UsersDelta;
        assert!(
            graph
                .check_origin(kind, "https://graph.microsoft.com/v1.0/users?$skiptoken=x")
                .is_ok()
        );
        for foreign in [
            // All of these start with "https://graph.microsoft.com".
            "https://graph.microsoft.com.evil.net/v1.0/users",
            "https://graph.microsoft.com@evil.net/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
        ] {
            match graph.check_origin(kind, foreign) {
                Err(EntraError::ForeignLink { source, .. }) => {
                    assert_eq!(source.base, "https://graph.microsoft.com/");
                }
                other => panic!("{foreign}: expected a refusal, got {other:?}"),
            }
        }
        assert!(matches!(
            graph.check_origin(kind, "/v1.0/users"),
            Err(EntraError::Malformed { .. })
        ));
    }
}
