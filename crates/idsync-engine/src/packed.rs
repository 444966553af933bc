//! How a target's known state is kept in the store between runs: a compact binary form.
//!
//! At 100k users a target state is about 100k accounts and 800k memberships. As JSON that is
//! tens of megabytes per target, and parsing and writing it took seconds of every incremental
//! run. Here each member is an index into the accounts (a varint of two or three bytes) instead
//! of its key in quotes, and the encoding is postcard (varints, no field names).
//!
//! The form is private to idsync and versioned by its leading magic bytes. States kept as JSON
//! by earlier versions are still read.

use std::collections::{BTreeMap, BTreeSet};

use idsync_model::stored::{self, Stored, as_index};
use idsync_model::{ActualState, Lead, LeadKind, TargetUser};

pub use idsync_model::stored::{PackError, UnpackError};
use serde::{Deserialize, Serialize};

use crate::planner::{FastMap, fast_map};

/// Leads every packed state; the last byte is the form's version.
const MAGIC: &[u8] = b"idsync-target-state\x01";

#[derive(Serialize, Deserialize)]
struct PackedState<'a> {
    #[serde(borrow)]
    users: Vec<PackedUser<'a>>,
    #[serde(borrow)]
    groups: Vec<&'a str>,
    /// Member keys that are no account's key, after the accounts' keys in the index space.
    #[serde(borrow)]
    other_keys: Vec<&'a str>,
    /// Group → indexes of its members (accounts, then `other_keys`).
    #[serde(borrow)]
    memberships: Vec<(&'a str, Vec<u32>)>,
    #[serde(borrow)]
    leads: Vec<PackedLead<'a>>,
}

#[derive(Serialize, Deserialize)]
struct PackedUser<'a> {
    key: &'a str,
    username: &'a str,
    email: Option<&'a str>,
    display_name: Option<&'a str>,
    active: bool,
    #[serde(borrow)]
    attributes: Vec<(&'a str, &'a str)>,
    external_id: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct PackedLead<'a> {
    component: bool,
    id: &'a str,
    name: &'a str,
    lead: &'a str,
}

/// The state in its stored form.
pub fn pack_target_state(state: &ActualState) -> Result<Vec<u8>, PackError> {
    let mut index: FastMap<&str, u32> = fast_map(state.users.len());
    for (i, u) in state.users.iter().enumerate() {
        index.entry(u.key.as_str()).or_insert(as_index(i));
    }
    let mut other_keys: Vec<&str> = Vec::new();
    let memberships = state
        .memberships
        .iter()
        .map(|(group, keys)| {
            let members = keys
                .iter()
                .map(|key| {
                    *index.entry(key.as_str()).or_insert_with(|| {
                        other_keys.push(key);
                        as_index(state.users.len() + other_keys.len() - 1)
                    })
                })
                .collect();
            (group.as_str(), members)
        })
        .collect();
    let packed = PackedState {
        users: state.users.iter().map(packed_user).collect(),
        groups: state.groups.iter().map(String::as_str).collect(),
        other_keys,
        memberships,
        leads: state
            .leads
            .iter()
            .map(|l| PackedLead {
                component: l.kind == LeadKind::Component,
                id: &l.id,
                name: &l.name,
                lead: &l.lead,
            })
            .collect(),
    };
    stored::pack(MAGIC, &packed)
}

/// Adds the names of `more` that `groups` lacks, compared without case as the products do.
fn add_groups(groups: &mut BTreeSet<String>, more: &BTreeSet<String>) {
    for g in more {
        if !groups.iter().any(|known| known.eq_ignore_ascii_case(g)) {
            groups.insert(g.clone());
        }
    }
}

fn packed_user(u: &TargetUser) -> PackedUser<'_> {
    PackedUser {
        key: &u.key,
        username: &u.username,
        email: u.email.as_deref(),
        display_name: u.display_name.as_deref(),
        active: u.active,
        attributes: u
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        external_id: u.external_id.as_deref(),
    }
}

/// Replaces what a packed state holds of a few accounts, each with the groups it is now in
/// (as the target spells them), and adds `groups` it lacks; every other account, group and
/// membership is copied as it is. What a sign-in sync keeps of a target after changing one
/// user: at 100k users, building the whole state to change one account, and packing it again,
/// took seconds; this reads the packed form in place. Returns the new packed state and the
/// names of its groups. A state kept as JSON by an earlier version is built whole.
pub fn splice_accounts(
    bytes: &[u8],
    accounts: &[(TargetUser, BTreeSet<String>)],
    groups: &BTreeSet<String>,
) -> Result<(Vec<u8>, BTreeSet<String>), UnpackError> {
    let mut packed: PackedState = match stored::unpack(MAGIC, bytes)? {
        Stored::Json => {
            let mut state: ActualState = stored::from_json(bytes)?;
            for (user, in_groups) in accounts {
                match state.users.iter_mut().find(|u| u.key == user.key) {
                    Some(known) => *known = user.clone(),
                    None => state.users.push(user.clone()),
                }
                for (group, members) in state.memberships.iter_mut() {
                    if !in_groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                        members.remove(&user.key);
                    }
                }
                for g in in_groups {
                    let name = state
                        .memberships
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case(g))
                        .cloned()
                        .unwrap_or_else(|| g.clone());
                    state
                        .memberships
                        .entry(name)
                        .or_default()
                        .insert(user.key.clone());
                }
                add_groups(&mut state.groups, in_groups);
            }
            add_groups(&mut state.groups, groups);
            let bytes =
                pack_target_state(&state).map_err(|e| UnpackError::Damaged(e.to_string()))?;
            return Ok((bytes, state.groups));
        }
        Stored::Packed(packed) => packed,
    };
    let accounts_before = packed.users.len();
    let mut indexes: Vec<u32> = Vec::with_capacity(accounts.len());
    for (user, _) in accounts {
        match packed.users.iter().position(|u| u.key == user.key) {
            Some(at) => {
                packed.users[at] = packed_user(user);
                indexes.push(as_index(at));
            }
            None => {
                indexes.push(as_index(packed.users.len()));
                packed.users.push(packed_user(user));
            }
        }
    }
    let added = packed.users.len() - accounts_before;
    if added > 0 && !packed.other_keys.is_empty() {
        // Member indexes after the accounts' point into `other_keys`: they move up by the
        // accounts added before them.
        let shift = as_index(added);
        for (_, members) in &mut packed.memberships {
            for m in members.iter_mut() {
                if *m as usize >= accounts_before {
                    *m += shift;
                }
            }
        }
    }
    let lower = |g: &str| idsync_model::name::name_key(g);
    for ((_, in_groups), index) in accounts.iter().zip(&indexes) {
        let wanted: BTreeSet<String> = in_groups.iter().map(|g| lower(g)).collect();
        let mut placed: BTreeSet<String> = BTreeSet::new();
        for (group, members) in &mut packed.memberships {
            members.retain(|m| m != index);
            let key = lower(group);
            if wanted.contains(&key) {
                members.push(*index);
                placed.insert(key);
            }
        }
        for g in in_groups {
            if !placed.contains(&lower(g)) {
                placed.insert(lower(g));
                packed.memberships.push((g.as_str(), vec![*index]));
            }
        }
    }
    let mut names: BTreeSet<String> = packed.groups.iter().map(|g| lower(g)).collect();
    let more: Vec<&str> = accounts
        .iter()
        .flat_map(|(_, g)| g.iter())
        .chain(groups.iter())
        .map(String::as_str)
        .collect();
    for g in more {
        if names.insert(lower(g)) {
            packed.groups.push(g);
        }
    }
    let all: BTreeSet<String> = packed.groups.iter().map(|g| (*g).to_owned()).collect();
    let bytes = stored::pack(MAGIC, &packed).map_err(|e| UnpackError::Damaged(e.to_string()))?;
    Ok((bytes, all))
}

/// The names of the groups in [`pack_target_state`]'s output, without building the rest of the
/// state: a sign-in sync needs to know which groups a target has, and building 100k accounts
/// and their memberships for that would cost most of its time. A state kept as JSON by an
/// earlier version is read whole.
pub fn unpack_group_names(bytes: &[u8]) -> Result<BTreeSet<String>, UnpackError> {
    let packed: PackedState = match stored::unpack(MAGIC, bytes)? {
        Stored::Json => return stored::from_json::<ActualState>(bytes).map(|s| s.groups),
        Stored::Packed(packed) => packed,
    };
    Ok(packed.groups.iter().map(|g| (*g).to_owned()).collect())
}

/// Reads back [`pack_target_state`]'s output, or a state kept as JSON by an earlier version.
pub fn unpack_target_state(bytes: &[u8]) -> Result<ActualState, UnpackError> {
    let packed: PackedState = match stored::unpack(MAGIC, bytes)? {
        Stored::Json => return stored::from_json(bytes),
        Stored::Packed(packed) => packed,
    };
    let users: Vec<TargetUser> = packed
        .users
        .iter()
        .map(|u| TargetUser {
            key: u.key.to_owned(),
            username: u.username.to_owned(),
            email: u.email.map(str::to_owned),
            display_name: u.display_name.map(str::to_owned),
            active: u.active,
            attributes: u
                .attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            external_id: u.external_id.map(str::to_owned),
        })
        .collect();
    let key_of = |i: u32| -> Result<&str, UnpackError> {
        let i = i as usize;
        match packed.users.get(i) {
            Some(u) => Ok(u.key),
            None => packed
                .other_keys
                .get(i - packed.users.len())
                .copied()
                .ok_or_else(|| UnpackError::Damaged(format!("member index {i} is out of range"))),
        }
    };
    let mut memberships = BTreeMap::new();
    for (group, members) in &packed.memberships {
        let keys = members
            .iter()
            .map(|&i| key_of(i).map(str::to_owned))
            .collect::<Result<BTreeSet<String>, _>>()?;
        memberships.insert((*group).to_owned(), keys);
    }
    Ok(ActualState {
        users,
        groups: packed.groups.iter().map(|g| (*g).to_owned()).collect(),
        memberships,
        leads: packed
            .leads
            .iter()
            .map(|l| Lead {
                kind: if l.component {
                    LeadKind::Component
                } else {
                    LeadKind::Project
                },
                id: l.id.to_owned(),
                name: l.name.to_owned(),
                lead: l.lead.to_owned(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ActualState {
        let user = |key: &str, active: bool| TargetUser {
            key: key.to_owned(),
            username: format!("{key}-name"),
            email: active.then(|| format!("{key}@example.com")),
            display_name: Some(format!("User {key}")),
            active,
            attributes: [("dept".to_owned(), "R&D".to_owned())].into(),
            external_id: (!active).then(|| "ext-1".to_owned()),
        };
        ActualState {
            users: vec![user("k1", true), user("k2", false), user("k3", true)],
            groups: ["devs", "empty", "ops"].map(str::to_owned).into(),
            memberships: [
                ("devs".to_owned(), ["k1", "k3"].map(str::to_owned).into()),
                // A member the user list did not report (a target may do that).
                (
                    "ops".to_owned(),
                    ["k2", "stranger"].map(str::to_owned).into(),
                ),
            ]
            .into(),
            leads: vec![
                Lead {
                    kind: LeadKind::Project,
                    id: "PRJ".to_owned(),
                    name: "Project".to_owned(),
                    lead: "k1-name".to_owned(),
                },
                Lead {
                    kind: LeadKind::Component,
                    id: "10001".to_owned(),
                    name: "Backend".to_owned(),
                    lead: "k3-name".to_owned(),
                },
            ],
        }
    }

    #[test]
    fn a_packed_state_reads_back_the_same() {
        let state = state();
        let packed = pack_target_state(&state).expect("packs");
        assert!(packed.starts_with(MAGIC));
        assert_eq!(unpack_target_state(&packed).expect("unpacks"), state);
        let empty = ActualState::default();
        assert_eq!(
            unpack_target_state(&pack_target_state(&empty).expect("packs")).expect("unpacks"),
            empty
        );
    }

    #[test]
    fn accounts_spliced_in_read_back_as_if_the_whole_state_were_changed() {
        let state = state();
        let changed = TargetUser {
            display_name: Some("Changed".into()),
            ..state.users[0].clone()
        };
        let added = TargetUser {
            key: "k9".into(),
            username: "new".into(),
            email: None,
            display_name: None,
            active: true,
            attributes: BTreeMap::new(),
            external_id: None,
        };
        let accounts = vec![
            (changed.clone(), ["OPS".to_owned()].into()),
            (
                added.clone(),
                ["devs".to_owned(), "fresh".to_owned()].into(),
            ),
        ];
        let extra: BTreeSet<String> = ["lonely".to_owned()].into();
        let mut expected = state.clone();
        expected.users[0] = changed;
        expected.users.push(added);
        expected
            .groups
            .extend(["fresh", "lonely"].map(str::to_owned));
        expected
            .memberships
            .insert("devs".into(), ["k3", "k9"].map(str::to_owned).into());
        expected.memberships.insert(
            "ops".into(),
            ["k1", "k2", "stranger"].map(str::to_owned).into(),
        );
        expected
            .memberships
            .insert("fresh".into(), ["k9"].map(str::to_owned).into());
        for bytes in [
            pack_target_state(&state).expect("packs"),
            serde_json::to_vec(&state).expect("serializes"),
        ] {
            let (spliced, groups) = splice_accounts(&bytes, &accounts, &extra).expect("splices");
            assert_eq!(unpack_target_state(&spliced).expect("unpacks"), expected);
            assert_eq!(groups, expected.groups);
        }
    }

    #[test]
    fn the_group_names_alone_read_back_from_either_form() {
        let state = state();
        let packed = pack_target_state(&state).expect("packs");
        assert_eq!(unpack_group_names(&packed).expect("unpacks"), state.groups);
        let json = serde_json::to_vec(&state).expect("serializes");
        assert_eq!(unpack_group_names(&json).expect("unpacks"), state.groups);
    }

    #[test]
    fn a_state_kept_as_json_by_an_earlier_version_is_still_read() {
        let state = state();
        let json = serde_json::to_vec(&state).expect("serializes");
        assert_eq!(unpack_target_state(&json).expect("unpacks"), state);
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused_not_misread() {
        let packed = pack_target_state(&state()).expect("packs");
        let cut = &packed[..packed.len() - 5];
        assert!(matches!(
            unpack_target_state(cut),
            Err(UnpackError::Damaged(_))
        ));
        assert!(matches!(
            unpack_target_state(b"SQLite format 3\0"),
            Err(UnpackError::UnknownForm)
        ));
        // A member index past the end.
        let forged = PackedState {
            users: Vec::new(),
            groups: vec!["g"],
            other_keys: Vec::new(),
            memberships: vec![("g", vec![7])],
            leads: Vec::new(),
        };
        let bad = stored::pack(MAGIC, &forged).expect("packs");
        assert!(matches!(
            unpack_target_state(&bad),
            Err(UnpackError::Damaged(_))
        ));
    }
}
