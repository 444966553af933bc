//! The admin API's one error shape: `{"error": {"code", "message", "field"?}}`, with the HTTP
//! status that fits. `code` is stable (scripts and the console branch on it); `message` is for
//! people and says what to do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the API answers it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status answered.
    pub status: StatusCode,
    /// Stable code that scripts and the console branch on (`not_found`, `busy`, …).
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

/// Every error the API answers: `{"error": {"code", "message", "field"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

/// What went wrong: a stable `code` to branch on, a `message` for people, and the request
/// `field` at fault when there is one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 409 with its own code (`provisioned_by_file`, `busy`, …).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 401 `unauthorized` (with `WWW-Authenticate`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A failure of idsync itself (the store): logged in full, answered briefly.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("idsync could not answer: {error}"),
        )
    }
}

impl From<idsync_store::StoreError> for ApiError {
    fn from(e: idsync_store::StoreError) -> Self {
        use idsync_store::StoreError as E;
        match e {
            E::NoSuchRun(run) => ApiError::not_found(format!("there is no run {run}")),
            E::NotApprovable { .. } => ApiError::conflict("not_approvable", e.to_string()),
            E::NotDiscardable { .. } => ApiError::conflict("not_discardable", e.to_string()),
            E::Busy { .. } => ApiError::conflict("busy", e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

impl From<crate::runs::TriggerError> for ApiError {
    fn from(e: crate::runs::TriggerError) -> Self {
        match e {
            crate::runs::TriggerError::UnknownApp(_) => ApiError::not_found(e.to_string()),
            crate::runs::TriggerError::Stopping => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                e.to_string(),
            ),
        }
    }
}

impl From<crate::runs::DryRunError> for ApiError {
    fn from(e: crate::runs::DryRunError) -> Self {
        match e {
            crate::runs::DryRunError::Refused(e) => e.into(),
            crate::runs::DryRunError::Run(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::live::ChangeError> for ApiError {
    fn from(e: crate::live::ChangeError) -> Self {
        use crate::live::ChangeError as E;
        match e {
            E::NotFound { .. } => ApiError::not_found(e.to_string()),
            E::ProvisionedByFile { .. } => ApiError::conflict("provisioned_by_file", e.to_string()),
            E::NameTaken { message } => ApiError::conflict("name_taken", message),
            E::InUse { message } => ApiError::conflict("in_use", message),
            E::Invalid { field, message } => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid",
                message,
                field,
            },
            E::Store(e) => ApiError::from(e),
            // The key is missing or wrong: the message says where it was looked for and what
            // to do (it holds no secret).
            e @ E::Seal(_) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"idsync\""),
            );
        }
        response
    }
}

/// `axum::extract::Path`, its rejection (a run id that is not a number) answered in the
/// error envelope.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query`, its rejection (a limit that is not a number) answered in the error
/// envelope.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Bodies, paths and queries axum could not read (bad JSON, a run id that is not a number)
/// answer in the same envelope.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::new(r.status(), "bad_request", r.body_text())
    }
}
