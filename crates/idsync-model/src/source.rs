//! The source side: users, groups and direct memberships as an identity provider holds them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

impl SourceSnapshot {
    /// For each user id, the ids of every group it belongs to directly or through nested groups.
    /// Cycles in the group graph are harmless: each group is expanded once.
    pub fn transitive_groups_of_users(&self) -> HashMap<&str, BTreeSet<&str>> {
        // parent groups of each group, to walk upwards from a user's direct groups
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for group in self.groups.values() {
            for child in &group.group_members {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(group.id.as_str());
            }
        }
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for group in self.groups.values() {
            for user in &group.user_members {
                if self.users.contains_key(user) {
                    direct
                        .entry(user.as_str())
                        .or_default()
                        .push(group.id.as_str());
                }
            }
        }
        // Ancestors per group, memoised: many users share the same groups.
        let mut ancestors: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut result = HashMap::with_capacity(direct.len());
        for (user, groups) in direct {
            let mut all = BTreeSet::new();
            for group in groups {
                if !ancestors.contains_key(group) {
                    let set = ancestors_of(group, &parents);
                    ancestors.insert(group, set);
                }
                if let Some(set) = ancestors.get(group) {
                    all.extend(set.iter().copied());
                }
            }
            result.insert(user, all);
        }
        result
    }

    /// Every user id in `group_id` or in any group nested in it (cycle safe).
    pub fn transitive_user_members(&self, group_id: &str) -> BTreeSet<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![group_id];
        let mut users = BTreeSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(group) = self.groups.get(id) {
                users.extend(group.user_members.iter().map(String::as_str));
                stack.extend(group.group_members.iter().map(String::as_str));
            }
        }
        users
    }
}

/// The group itself and every group it is nested in, directly or not.
fn ancestors_of<'a>(group: &'a str, parents: &HashMap<&'a str, Vec<&'a str>>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![group];
    while let Some(id) = stack.pop() {
        if seen.insert(id)
            && let Some(ps) = parents.get(id)
        {
            stack.extend(ps.iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, users: &[&str], groups: &[&str]) -> SourceGroup {
        SourceGroup {
            id: id.into(),
            display_name: id.into(),
            user_members: users.iter().map(|s| s.to_string()).collect(),
            group_members: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn user(id: &str) -> SourceUser {
        SourceUser {
            id: id.into(),
            enabled: true,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn nested_groups_with_a_cycle_expand_once() {
        let mut snapshot = SourceSnapshot::default();
        for u in ["u1", "u2"] {
            snapshot.users.insert(u.into(), user(u));
        }
        // a ⊃ b ⊃ c ⊃ a (cycle); u1 in c, u2 in a
        for g in [
            group("a", &["u2"], &["b"]),
            group("b", &[], &["c"]),
            group("c", &["u1"], &["a"]),
        ] {
            snapshot.groups.insert(g.id.clone(), g);
        }
        let of = snapshot.transitive_groups_of_users();
        assert_eq!(of["u1"], BTreeSet::from(["a", "b", "c"]));
        assert_eq!(of["u2"], BTreeSet::from(["a", "b", "c"]));
        assert_eq!(
            snapshot.transitive_user_members("b"),
            BTreeSet::from(["u1", "u2"])
        );
    }
}
