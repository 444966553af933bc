//! How a [`DirectoryState`] is kept in the store between runs: a compact binary form.
//!
//! At 100k users the state holds 100k users with their attributes and half a million group
//! memberships, each naming a 36-character object id. As JSON that was tens of megabytes to
//! parse and write on every run, delta or not. Here each attribute name is written once, each
//! member is an index into the ids, and the encoding is postcard (varints, no field names).
//!
//! The form is private to idsync and versioned by its leading magic bytes. States kept as JSON
//! by earlier versions are still read.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use idsync_model::stored::{self, Stored, as_index};
use idsync_model::{SourceGroup, SourceUser};

pub use idsync_model::stored::{PackError, UnpackError};
use serde::{Deserialize, Serialize};

use crate::DirectoryState;

/// Leads every packed state; the last byte is the form's version.
const MAGIC: &[u8] = b"idsync-directory-state\x01";

#[derive(Serialize, Deserialize)]
struct PackedDirectory<'a> {
    #[serde(borrow)]
    select: Vec<&'a str>,
    /// Every attribute name any user has, once.
    #[serde(borrow)]
    attribute_names: Vec<&'a str>,
    #[serde(borrow)]
    users: Vec<PackedUser<'a>>,
    #[serde(borrow)]
    groups: Vec<PackedGroup<'a>>,
    /// Member ids that are neither a user's nor a group's id (members outside what was read).
    /// The index space of members is: users, then groups, then these.
    #[serde(borrow)]
    other_ids: Vec<&'a str>,
    users_delta_link: Option<&'a str>,
    groups_delta_link: Option<&'a str>,
    #[serde(borrow)]
    ignored_members: Vec<(&'a str, Vec<(&'a str, &'a str)>)>,
    origin: &'a str,
}

#[derive(Serialize, Deserialize)]
struct PackedUser<'a> {
    id: &'a str,
    enabled: bool,
    /// (index into `attribute_names`, value)
    #[serde(borrow)]
    attributes: Vec<(u32, &'a str)>,
}

#[derive(Serialize, Deserialize)]
struct PackedGroup<'a> {
    id: &'a str,
    display_name: &'a str,
    user_members: Vec<u32>,
    group_members: Vec<u32>,
}

impl DirectoryState {
    /// The state in its stored form.
    pub fn pack<'s>(&'s self) -> Result<Vec<u8>, PackError> {
        // foldhash, not SipHash: half a million 36-character ids are looked up here.
        let mut names: HashMap<&str, u32> = HashMap::default();
        let mut attribute_names: Vec<&str> = Vec::new();
        let users = self
            .users
            .values()
            .map(|u| PackedUser {
                id: &u.id,
                enabled: u.enabled,
                attributes: u
                    .attributes
                    .iter()
                    .map(|(name, value)| {
                        let at = *names.entry(name).or_insert_with(|| {
                            attribute_names.push(name);
                            as_index(attribute_names.len() - 1)
                        });
                        (at, value.as_str())
                    })
                    .collect(),
            })
            .collect();
        let mut index: HashMap<&str, u32> = HashMap::with_capacity_and_hasher(
            self.users.len() + self.groups.len(),
            Default::default(),
        );
        for (i, u) in self.users.values().enumerate() {
            index.entry(&u.id).or_insert(as_index(i));
        }
        let first_group = self.users.len();
        for (i, g) in self.groups.values().enumerate() {
            index.entry(&g.id).or_insert(as_index(first_group + i));
        }
        let first_other = first_group + self.groups.len();
        let mut other_ids: Vec<&str> = Vec::new();
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in self.groups.values() {
            let mut members = |ids: &'s BTreeSet<String>| -> Vec<u32> {
                ids.iter()
                    .map(|id| member_index(&mut index, &mut other_ids, first_other, id))
                    .collect()
            };
            groups.push(PackedGroup {
                id: &g.id,
                display_name: &g.display_name,
                user_members: members(&g.user_members),
                group_members: members(&g.group_members),
            });
        }
        let packed = PackedDirectory {
            select: self.select.iter().map(String::as_str).collect(),
            attribute_names,
            users,
            groups,
            other_ids,
            users_delta_link: self.users_delta_link.as_deref(),
            groups_delta_link: self.groups_delta_link.as_deref(),
            ignored_members: self
                .ignored_members
                .iter()
                .map(|(group, members)| {
                    (
                        group.as_str(),
                        members
                            .iter()
                            .map(|(id, kind)| (id.as_str(), kind.as_str()))
                            .collect(),
                    )
                })
                .collect(),
            origin: &self.origin,
        };
        stored::pack(MAGIC, &packed)
    }

    /// Reads back [`DirectoryState::pack`]'s output, or a state kept as JSON by an earlier
    /// version.
    pub fn unpack(bytes: &[u8]) -> Result<DirectoryState, UnpackError> {
        let packed: PackedDirectory = match stored::unpack(MAGIC, bytes)? {
            Stored::Json => return stored::from_json(bytes),
            Stored::Packed(packed) => packed,
        };
        let out_of_range =
            |what: &str, i: u32| UnpackError::Damaged(format!("{what} {i} is out of range"));
        let id_of = |i: u32| -> Result<&str, UnpackError> {
            let at = i as usize;
            let (users, groups) = (packed.users.len(), packed.groups.len());
            if at < users {
                Ok(packed.users[at].id)
            } else if at < users + groups {
                Ok(packed.groups[at - users].id)
            } else {
                packed
                    .other_ids
                    .get(at - users - groups)
                    .copied()
                    .ok_or_else(|| out_of_range("member index", i))
            }
        };
        // Collected, not inserted one by one: the packed lists are in key order, so the maps
        // are built in bulk.
        let users = packed
            .users
            .iter()
            .map(|u| {
                let attributes = u
                    .attributes
                    .iter()
                    .map(|&(name, value)| {
                        packed
                            .attribute_names
                            .get(name as usize)
                            .map(|name| ((*name).to_owned(), value.to_owned()))
                            .ok_or_else(|| out_of_range("attribute name", name))
                    })
                    .collect::<Result<_, _>>()?;
                let user = SourceUser {
                    id: u.id.to_owned(),
                    enabled: u.enabled,
                    attributes,
                };
                Ok((user.id.clone(), user))
            })
            .collect::<Result<BTreeMap<_, _>, UnpackError>>()?;
        let ids = |members: &[u32]| {
            members
                .iter()
                .map(|&i| id_of(i).map(str::to_owned))
                .collect::<Result<_, _>>()
        };
        let groups = packed
            .groups
            .iter()
            .map(|g| {
                let group = SourceGroup {
                    id: g.id.to_owned(),
                    display_name: g.display_name.to_owned(),
                    user_members: ids(&g.user_members)?,
                    group_members: ids(&g.group_members)?,
                };
                Ok((group.id.clone(), group))
            })
            .collect::<Result<BTreeMap<_, _>, UnpackError>>()?;
        Ok(DirectoryState {
            select: packed.select.iter().map(|s| (*s).to_owned()).collect(),
            users,
            groups,
            users_delta_link: packed.users_delta_link.map(str::to_owned),
            groups_delta_link: packed.groups_delta_link.map(str::to_owned),
            ignored_members: packed
                .ignored_members
                .iter()
                .map(|(group, members)| {
                    let members = members
                        .iter()
                        .map(|(id, kind)| ((*id).to_owned(), (*kind).to_owned()))
                        .collect();
                    ((*group).to_owned(), members)
                })
                .collect(),
            origin: packed.origin.to_owned(),
        })
    }
}

/// A member's index: its user's or group's, or a new one after them.
fn member_index<'s>(
    index: &mut HashMap<&'s str, u32>,
    other_ids: &mut Vec<&'s str>,
    first_other: usize,
    id: &'s str,
) -> u32 {
    *index.entry(id).or_insert_with(|| {
        other_ids.push(id);
        as_index(first_other + other_ids.len() - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DirectoryState {
        let user = |id: &str, enabled: bool| SourceUser {
            id: id.to_owned(),
            enabled,
            attributes: [
                ("userPrincipalName".to_owned(), format!("{id}@contoso.com")),
                ("department".to_owned(), "R&D".to_owned()),
            ]
            .into_iter()
            .take(if enabled { 2 } else { 1 })
            .collect(),
        };
        let group = |id: &str, users: &[&str], groups: &[&str]| SourceGroup {
            id: id.to_owned(),
            display_name: format!("Group {id}"),
            user_members: users.iter().map(|s| (*s).to_owned()).collect(),
            group_members: groups
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>(),
        };
        DirectoryState {
            select: vec!["accountEnabled".into(), "id".into()],
            users: [user("u1", true), user("u2", false)]
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect(),
            groups: [
                group("g1", &["u1", "u2"], &["g2"]),
                // A member user and a nested group that were not read.
                group("g2", &["u9"], &["g9"]),
                group("g3", &[], &[]),
            ]
            .into_iter()
            .map(|g| (g.id.clone(), g))
            .collect(),
            users_delta_link: Some("https://graph/users/delta?token=1".into()),
            groups_delta_link: None,
            ignored_members: [(
                "g1".to_owned(),
                [("d1".to_owned(), "device".to_owned())].into(),
            )]
            .into(),
            origin: "https://graph tenant".into(),
        }
    }

    #[test]
    fn a_packed_state_reads_back_the_same() {
        let state = state();
        let packed = state.pack().expect("packs");
        assert_eq!(DirectoryState::unpack(&packed).expect("unpacks"), state);
        let empty = DirectoryState::default();
        let packed = empty.pack().expect("packs");
        assert_eq!(DirectoryState::unpack(&packed).expect("unpacks"), empty);
    }

    #[test]
    fn a_state_kept_as_json_by_an_earlier_version_is_still_read() {
        let state = state();
        let json = serde_json::to_vec(&state).expect("serializes");
        assert_eq!(DirectoryState::unpack(&json).expect("unpacks"), state);
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused_not_misread() {
        let packed = state().pack().expect("packs");
        assert!(matches!(
            DirectoryState::unpack(&packed[..packed.len() - 3]),
            Err(UnpackError::Damaged(_))
        ));
        assert!(matches!(
            DirectoryState::unpack(b"\x00\x01"),
            Err(UnpackError::UnknownForm)
        ));
    }
}
