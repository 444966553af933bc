//! The memberships an app manages on one target: the only ones it ever takes away (under
//! `memberships = "keep"`). Here rather than in the engine because the store loads them in
//! this packed form and the planner reads them: one type for both, owned by neither.

use std::collections::{BTreeMap, BTreeSet};

use crate::link::ManagedMembership;

/// Separates the account keys of one group. No product's account key holds a line break.
pub const KEY_SEPARATOR: char = '\n';

/// Managed memberships by group, kept as the store keeps them: each group's account keys,
/// sorted, in one string. At 100k users a target has close to a million of them; as a set of
/// (group, key) string pairs each cost two allocations to load and a pointer chase to compare,
/// which was seconds of every run. Read-only: changes go through the bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedMemberships {
    /// Lower-case group name → its keys, sorted, without repeats, joined by [`KEY_SEPARATOR`].
    groups: BTreeMap<String, String>,
}

impl ManagedMemberships {
    /// From groups and their keys joined by [`KEY_SEPARATOR`], as the store keeps them. Keys
    /// that are out of order, repeated or empty are put right (they never are when the store
    /// wrote them).
    pub fn from_joined(groups: impl IntoIterator<Item = (String, String)>) -> Self {
        let groups = groups
            .into_iter()
            .filter_map(|(group, joined)| {
                let mut pieces = joined.split(KEY_SEPARATOR);
                let mut previous = pieces.next().unwrap_or_default();
                let mut tidy = !previous.is_empty();
                for key in pieces {
                    tidy &= previous < key;
                    previous = key;
                }
                let joined = if tidy {
                    joined
                } else {
                    let keys: BTreeSet<&str> = joined
                        .split(KEY_SEPARATOR)
                        .filter(|k| !k.is_empty())
                        .collect();
                    join(keys)
                };
                (!joined.is_empty()).then_some((group, joined))
            })
            .collect();
        ManagedMemberships { groups }
    }

    /// The keys managed in one group (its lower-case name), sorted.
    pub fn keys<'s>(&'s self, group: &str) -> impl Iterator<Item = &'s str> + 's {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|joined| joined.split(KEY_SEPARATOR))
    }

    /// Every (group, key), by group then key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.groups.iter().flat_map(|(group, joined)| {
            joined
                .split(KEY_SEPARATOR)
                .map(move |key| (group.as_str(), key))
        })
    }

    /// How many (group, key) memberships there are, counted without splitting any group.
    pub fn len(&self) -> usize {
        self.groups
            .values()
            .map(|joined| joined.matches(KEY_SEPARATOR).count() + 1)
            .sum()
    }

    /// No managed membership at all (groups are never kept empty).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

impl FromIterator<ManagedMembership> for ManagedMemberships {
    fn from_iter<I: IntoIterator<Item = ManagedMembership>>(pairs: I) -> Self {
        let mut by_group: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, key) in pairs {
            if !key.is_empty() {
                by_group.entry(group).or_default().insert(key);
            }
        }
        ManagedMemberships {
            groups: by_group
                .into_iter()
                .map(|(group, keys)| (group, join(keys.iter().map(String::as_str))))
                .collect(),
        }
    }
}

fn join<'k>(keys: impl IntoIterator<Item = &'k str>) -> String {
    let mut joined = String::new();
    for key in keys {
        if !joined.is_empty() {
            joined.push(KEY_SEPARATOR);
        }
        joined.push_str(key);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(g: &str, k: &str) -> ManagedMembership {
        (g.to_owned(), k.to_owned())
    }

    #[test]
    fn built_from_pairs_or_from_joined_keys_alike() {
        let pairs = [
            pair("devs", "K2"),
            pair("devs", "K1"),
            pair("ops", "K3"),
            pair("devs", "K1"),
        ];
        let from_pairs: ManagedMemberships = pairs.into_iter().collect();
        let from_joined = ManagedMemberships::from_joined([
            ("devs".to_owned(), "K1\nK2".to_owned()),
            ("ops".to_owned(), "K3".to_owned()),
            ("empty".to_owned(), String::new()),
        ]);
        assert_eq!(from_pairs, from_joined);
        assert_eq!(from_pairs.keys("devs").collect::<Vec<_>>(), ["K1", "K2"]);
        assert_eq!(from_pairs.keys("nope").count(), 0);
        assert_eq!(
            from_pairs.iter().collect::<Vec<_>>(),
            [("devs", "K1"), ("devs", "K2"), ("ops", "K3")]
        );
        assert_eq!(from_pairs.len(), 3);
        assert!(!from_pairs.is_empty());
        assert!(ManagedMemberships::default().is_empty());
    }

    #[test]
    fn untidy_joined_keys_are_put_in_order() {
        let managed =
            ManagedMemberships::from_joined([("devs".to_owned(), "K2\n\nK1\nK2".to_owned())]);
        assert_eq!(managed.keys("devs").collect::<Vec<_>>(), ["K1", "K2"]);
        assert_eq!(managed.len(), 2);
    }
}
