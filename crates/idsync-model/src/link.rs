//! The lasting tie between a source object and a target account, and the memberships an app
//! manages. Plain data shared by the planner (which reads and proposes them) and the store
//! (which keeps them), so that the store need not depend on the engine.

use serde::{Deserialize, Serialize};

/// The lasting tie between a source object and a target account, owned by one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    /// The app that owns the account: the only one that ever changes or removes it.
    pub app: String,
    /// The source object (user) the account belongs to.
    pub source_id: String,
    /// The account's key on the target (what survives a rename).
    pub key: String,
    /// The account's username when it was last linked or renamed.
    pub username: String,
    /// Set for an account adopted under another username while `users.rename_adopted` is
    /// false: the username the rules gave then. The account keeps its own username until the
    /// rules give a different one (a change at the source), and is renamed only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_username: Option<String>,
    /// On a product that cannot rename users: the username (lower case) the rules gave when
    /// the account was reported as unable to take it. Reported once, not on every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_reported: Option<String>,
}

impl Link {
    /// The link of `app`'s source object `source_id` to the account `key`, named `username`,
    /// with no username kept and no rename reported.
    pub fn new(
        app: impl Into<String>,
        source_id: impl Into<String>,
        key: impl Into<String>,
        username: impl Into<String>,
    ) -> Self {
        Link {
            app: app.into(),
            source_id: source_id.into(),
            key: key.into(),
            username: username.into(),
            kept_username: None,
            rename_reported: None,
        }
    }
}

/// A membership idsync manages: (group name in lower case, account key).
pub type ManagedMembership = (String, String);
