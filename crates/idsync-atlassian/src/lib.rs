//! idsync's Atlassian targets: the real API clients that read and change users, groups and
//! memberships in one Atlassian instance, one [`Target`] per product and edition:
//!
//! | kind | module | API |
//! |---|---|---|
//! | `jira-dc` | [`jira`] | Jira Data Center REST v2 |
//! | `confluence-dc` | [`confluence`] | Confluence Data Center REST |
//! | `bitbucket-dc` | [`bitbucket`] | Bitbucket Data Center REST 1.0 (8.14 OpenAPI) |
//! | `atlassian-cloud` | [`scim`] | Atlassian Cloud user provisioning (SCIM 2.0) |
//!
//! [`build_target`] turns a `[[targets]]` entry of the configuration into one of them. The
//! HTTP plumbing they share (auth, rate limiting, retries, error classification) is in `api`.

#![warn(missing_docs)]

use std::sync::Arc;

use idsync_config::TargetConfig;
use idsync_model::{Target, TargetError, TargetKind};

mod api;
pub mod bitbucket;
pub mod confluence;
pub mod jira;
mod probe;
pub mod scim;
mod util;
mod versions;

pub use bitbucket::BitbucketDc;
pub use confluence::ConfluenceDc;
pub use jira::JiraDc;
pub use scim::AtlassianCloud;

/// Builds the target a `[[targets]]` entry describes. Fails only on unusable settings (no
/// credentials, a base URL that cannot hold paths); nothing is sent yet.
pub fn build_target(config: &TargetConfig) -> Result<Arc<dyn Target>, TargetError> {
    Ok(match config.kind {
        TargetKind::JiraDc => Arc::new(JiraDc::new(config)?),
        TargetKind::BitbucketDc => Arc::new(BitbucketDc::new(config)?),
        TargetKind::ConfluenceDc => Arc::new(ConfluenceDc::new(config)?),
        TargetKind::AtlassianCloud => Arc::new(AtlassianCloud::new(config)?),
    })
}
