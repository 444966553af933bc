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
    /// The attribute `name` as read, if the user has it.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// One group as the identity provider holds it, with its direct members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroup {
    /// The immutable object id, as for users.
    pub id: String,
    /// The group's name in the source: what `groups.manual` may name it by, and what on-the-fly
    /// target group names are made from.
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
    /// Users in the app's scope, by object id.
    pub users: BTreeMap<String, SourceUser>,
    /// Every group that was read, by object id.
    pub groups: BTreeMap<String, SourceGroup>,
    /// Groups whose members the source could not read (in Entra: hidden membership without the
    /// Member.Read.Hidden permission). Their `user_members` and `group_members` are what was
    /// last known, possibly nothing: nobody is taken out of a target group for their sake.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub membership_unknown: BTreeSet<String>,
    /// Source users outside the scope who may still be in it, through a group in
    /// `membership_unknown` that the scope reaches: their accounts are not deprovisioned for
    /// having left the scope. Users gone from the source altogether are not listed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub maybe_in_scope: BTreeSet<String>,
}
