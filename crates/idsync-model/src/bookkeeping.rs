//! idsync's own records as a run changes them: links to write or drop, memberships now managed,
//! creations about to happen. Plain data: the engine works out what a plan and its results mean
//! (`idsync_engine::outcome`), the store writes it down; neither owns the shape.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::link::{Link, ManagedMembership};

/// Changes to the store after (part of) a plan was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    /// Links to write (a source object's newest link replaces its older one).
    pub upsert_links: Vec<Link>,
    /// (source id or key) of links to drop: by account key.
    pub remove_links: Vec<String>,
    /// Memberships managed from now on.
    pub add_managed: BTreeSet<ManagedMembership>,
    /// Memberships no longer managed.
    pub remove_managed: BTreeSet<ManagedMembership>,
    /// Usernames (lower case) whose [`CreateIntent`] is settled: the account is linked, or the
    /// creation surely did not happen.
    pub settled_creates: Vec<String>,
    /// (account key, e-mail) idsync sent to an account: remembered for targets that do not
    /// report e-mail addresses (see `Capabilities::reads_email`), so that a change at the source
    /// can be told from what the account holds.
    pub sent_emails: Vec<(String, String)>,
}

impl Bookkeeping {
    /// Nothing to write: the store skips the transaction.
    pub fn is_empty(&self) -> bool {
        self.upsert_links.is_empty()
            && self.remove_links.is_empty()
            && self.add_managed.is_empty()
            && self.remove_managed.is_empty()
            && self.settled_creates.is_empty()
            && self.sent_emails.is_empty()
    }
}

/// An account about to be created, recorded before the request is sent: if the run dies before
/// the creation's result is recorded, the next run finds the account by this and links it
/// (see `idsync_engine::outcome::claim_interrupted_creations`), so that it is never left
/// unmanaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIntent {
    /// The app creating the account: it will own the link.
    pub app: String,
    /// The source user the account is for.
    pub source_id: String,
    /// The username the account is created under.
    pub username: String,
    /// The e-mail sent with the creation: an account found under the username with another
    /// e-mail is not the one idsync created.
    pub email: Option<String>,
}

/// What must be durable before a phase of operations is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intentions {
    /// Accounts about to be created.
    pub creates: Vec<CreateIntent>,
    /// Memberships about to be added: managed from now on, so that one added just before a
    /// crash is still idsync's to remove later. A definite failure takes them back.
    pub claims: BTreeSet<ManagedMembership>,
}

impl Intentions {
    /// Nothing to record before the phase.
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.claims.is_empty()
    }
}
