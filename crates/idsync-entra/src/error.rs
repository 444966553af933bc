//! What can go wrong reading Entra ID, each with a message that names the cause and the fix.

use idsync_http::HttpError;

// The app is a field of the variants that have one, not part of their message: every caller
// names the app already ("app \"corp\": ...", "reading the source of app \"corp\" failed: ..."),
// and a second name made the message say it twice.
#[derive(Debug, thiserror::Error)]
/// Why reading the source failed; each message names the cause and the fix.
pub enum EntraError {
    /// The app's settings cannot work (checked before any request).
    #[error("{message}")]
    Config {
        /// The app.
        app: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The token endpoint refused the client credentials. `message` explains the AADSTS code.
    #[error("{message}")]
    SignIn {
        /// `error_codes[0]` of the response (AADSTS number); 0 when there was none.
        code: u32,
        /// The OAuth `error` (`invalid_client`, ...).
        error: String,
        /// What went wrong and how to fix it.
        message: String,
    },

    /// Graph answered 403 `Authorization_RequestDenied`: a permission or its consent is missing.
    #[error("{message}")]
    PermissionDenied {
        /// The application permission that would allow the call.
        permission: &'static str,
        /// What to grant, and where.
        message: String,
    },

    /// Any other Graph error response.
    #[error("{what}: Microsoft Graph answered {status} {code}: {message}{}", request_id.as_deref().map(|r| format!(" (request-id {r})")).unwrap_or_default())]
    Graph {
        /// What idsync was reading.
        what: String,
        /// The HTTP status.
        status: u16,
        /// Graph's error code.
        code: String,
        /// Graph's message.
        message: String,
        /// Graph's request id, for a support case.
        request_id: Option<String>,
    },

    /// The scope names something the tenant does not have (unknown or ambiguous group, unknown
    /// enterprise app): the config is wrong for this tenant. One problem per field, so that
    /// the config's line can be pointed at.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Scope {
        /// The app.
        app: String,
        /// One per config field at fault.
        problems: Vec<ScopeProblem>,
    },

    /// A delta token was refused (`syncStateNotFound`, `410 Gone`, `resyncRequired`); the reader
    /// falls back to a full read, so callers only see this if the fresh round fails the same way.
    #[error("{what}: the delta token is no longer valid ({reason})")]
    DeltaReset {
        /// What idsync was reading.
        what: String,
        /// What Graph said.
        reason: String,
    },

    /// Graph answered 400 `Directory_ExpiredPageToken`: a `$skiptoken` was used after it
    /// expired, and the round it belongs to must start over. The reader does that a bounded
    /// number of times; callers see this only when the bound was reached.
    #[error("{what}: {message}")]
    PageTokenExpired {
        /// What idsync was reading.
        what: String,
        /// How many times the round had already been started again.
        restarts: usize,
        /// Graph's message.
        message: String,
    },

    /// A response that is not what Graph sends (truncated or malformed JSON, missing `value`).
    // The URL is shown redacted: Graph's links carry skip and delta tokens in their query.
    #[error(
        "{what}: unexpected response from {}: {detail}",
        idsync_http::redact_url(url)
    )]
    Malformed {
        /// What idsync was reading.
        what: String,
        /// The URL (shown redacted).
        url: String,
        /// What was wrong with the answer.
        detail: String,
    },

    /// Graph handed out a link (`@odata.nextLink`, `@odata.deltaLink`, or a stored deltaLink)
    /// to another origin than `graph_url`; it is not followed, so the token never goes there.
    #[error("{what}: {source}")]
    ForeignLink {
        /// What idsync was reading.
        what: String,
        /// The link and why it was refused.
        source: idsync_http::ForeignLink,
    },

    /// Network failures and transient errors that outlasted the retries.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Where an administrator grants the application permission `permission` to the app, as one
/// sentence to end a message with: every message that asks for a permission says it the same
/// way.
pub(crate) fn grant_steps(permission: &str) -> String {
    format!(
        "Entra admin center → App registrations → the app → API permissions → Add a permission → \
         Microsoft Graph → Application permissions → {permission}, then \"Grant admin consent \
         for <your tenant>\""
    )
}

impl EntraError {
    /// A short machine-readable name of the error class, for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            EntraError::Config { .. } => "config",
            EntraError::SignIn { .. } => "sign_in",
            EntraError::PermissionDenied { .. } => "permission_denied",
            EntraError::Graph { .. } => "graph",
            EntraError::Scope { .. } => "scope",
            EntraError::DeltaReset { .. } => "delta_reset",
            EntraError::PageTokenExpired { .. } => "page_token_expired",
            EntraError::Malformed { .. } => "malformed_response",
            EntraError::ForeignLink { .. } => "foreign_link",
            EntraError::Http(_) => "http",
        }
    }
}

/// One entry of the app's scope that the tenant does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeProblem {
    /// The field, relative to the app: `scope.groups[1]` (the second entry), `scope.app_id`.
    /// Under `apps[i].` it is the config's own field path.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for ScopeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
