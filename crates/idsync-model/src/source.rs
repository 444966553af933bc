//! The source side: users, groups and direct memberships as an identity provider holds them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One user as the identity provider holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUser {
    /// The immutable object id (Entra object id, SCIM id). Never the UPN: that can change.
    pub id: String,
    /// `accountEnabled` in Entra, `active` in SCIM.
    pub enabled: bool,
    /// Every attribute that was read, by its source name. Nested objects are flattened with a
    /// dot (`onPremisesExtensionAttributes.extensionAttribute3`); multi-valued attributes keep
    /// their first value. Absent and `null` attributes are simply not in the map.
    pub attributes: BTreeMap<String, String>,
}

impl SourceUser {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// One group as the identity provider holds it, with its direct members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroup {
    pub id: String,
    pub display_name: String,
    /// Direct members that are users (object ids).
    pub user_members: BTreeSet<String>,
    /// Direct members that are groups (object ids): nested groups.
    pub group_members: BTreeSet<String>,
}

/// Users, groups and direct memberships of one app, as last read.
///
/// `users` holds the users in the app's scope only; `groups` holds every group that was read
/// (they may name users out of scope, which the engine ignores).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub users: BTreeMap<String, SourceUser>,
    pub groups: BTreeMap<String, SourceGroup>,
}
