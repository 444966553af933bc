//! Atlassian user provisioning SCIM 2.0.

use std::sync::Arc;

use axum::Router;

use crate::Inner;

pub(crate) const CONTENT_TYPE: &str = "application/scim+json";

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
}
