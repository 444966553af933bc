//! What a plan held by the mass-change guard needs approved. Plain data: the engine's guard
//! decides what to hold, the store keeps it with the held run and hands it back with the
//! approval, so both need the type and neither should own it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// An account a plan deactivates or deletes: (target, account key).
pub type Deprovision = (String, String);

/// A membership a plan removes: (target, group name in lower case, account key).
pub type MembershipRemoval = (String, String, String);

/// What a held plan needs approved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The accounts the plan deprovisions: an approval covers exactly these.
    pub accounts: BTreeSet<Deprovision>,
    /// The source read found nobody in scope where the last kept read found some.
    pub empty_source: bool,
    /// The memberships the plan removes (approvals given before membership removals were
    /// guarded name none).
    #[serde(default)]
    pub memberships: BTreeSet<MembershipRemoval>,
}
