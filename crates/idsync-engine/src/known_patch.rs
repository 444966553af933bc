//! What a sign-in sync did to a target, kept beside the target's packed known state instead of
//! rewriting it.
//!
//! A sign-in changes one user's accounts, yet the packed state of a 100k-user target is
//! megabytes: reading, splicing and writing it back took most of a writing sign-in's time
//! (about a second per target at 100k). A sign-in now records only the accounts it touched, as
//! a patch; whoever reads the known state next folds the patches in, in the order they were
//! made ([`unpack_known`], [`known_group_names`]), and the store drops them when a new state
//! is saved over them.

use std::collections::{BTreeMap, BTreeSet};

use idsync_model::name::name_key;
use idsync_model::{ActualState, TargetUser};
use serde::{Deserialize, Serialize};

use crate::packed::{UnpackError, splice_accounts, unpack_group_names, unpack_target_state};

/// The accounts a sign-in sync left on a target, each with every group it is now in (as the
/// target spells them), and the groups the sync created. JSON: a patch is a few hundred bytes,
/// and a user's optional fields are skipped when empty, which postcard cannot read back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsPatch {
    /// Each account as it now is, with the groups it is in.
    pub accounts: Vec<(TargetUser, BTreeSet<String>)>,
    /// Groups the sync created (those it only read are in the state already).
    pub groups: BTreeSet<String>,
}

impl AccountsPatch {
    /// The patch in its stored form.
    pub fn encode(&self) -> Vec<u8> {
        // Plain strings, sets and maps with string keys: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a patch written by [`AccountsPatch::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, UnpackError> {
        serde_json::from_slice(bytes).map_err(|e| UnpackError::Damaged(format!("a patch: {e}")))
    }
}

/// The patches as one: for an account in several, the latest wins (it saw the earlier ones'
/// work when it read the account); created groups add up.
fn merged(patches: &[Vec<u8>]) -> Result<AccountsPatch, UnpackError> {
    let mut accounts: BTreeMap<String, (usize, (TargetUser, BTreeSet<String>))> = BTreeMap::new();
    let mut groups = BTreeSet::new();
    let mut order = 0;
    for bytes in patches {
        let patch = AccountsPatch::decode(bytes)?;
        for account in patch.accounts {
            // Kept in the order first seen, so that new accounts are added as they came.
            let first = accounts.get(&account.0.key).map_or(order, |(at, _)| *at);
            accounts.insert(account.0.key.clone(), (first, account));
            order += 1;
        }
        groups.extend(patch.groups);
    }
    let mut accounts: Vec<_> = accounts.into_values().collect();
    accounts.sort_by_key(|(at, _)| *at);
    Ok(AccountsPatch {
        accounts: accounts.into_iter().map(|(_, a)| a).collect(),
        groups,
    })
}

/// A packed state with its patches folded in, still packed, and its groups' names.
pub fn fold_patches(
    state: &[u8],
    patches: &[Vec<u8>],
) -> Result<(Vec<u8>, BTreeSet<String>), UnpackError> {
    let patch = merged(patches)?;
    splice_accounts(state, &patch.accounts, &patch.groups)
}

/// The target state a packed state and its patches describe.
pub fn unpack_known(state: &[u8], patches: &[Vec<u8>]) -> Result<ActualState, UnpackError> {
    if patches.is_empty() {
        return unpack_target_state(state);
    }
    let (folded, _) = fold_patches(state, patches)?;
    unpack_target_state(&folded)
}

/// The names of the groups a packed state and its patches hold, without building the rest.
pub fn known_group_names(
    state: &[u8],
    patches: &[Vec<u8>],
) -> Result<BTreeSet<String>, UnpackError> {
    let mut names = unpack_group_names(state)?;
    if !patches.is_empty() {
        add_group_names(&mut names, &merged(patches)?);
    }
    Ok(names)
}

/// Adds to a target's group names those a patch holds (the groups its accounts are in, and
/// those it created), keeping the target's spelling of a group already there.
pub fn add_group_names(names: &mut BTreeSet<String>, patch: &AccountsPatch) {
    let mut keys: BTreeSet<String> = names.iter().map(|g| name_key(g)).collect();
    let more = patch
        .accounts
        .iter()
        .flat_map(|(_, groups)| groups.iter())
        .chain(patch.groups.iter());
    for group in more {
        if keys.insert(name_key(group)) {
            names.insert(group.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::pack_target_state;

    fn user(key: &str, name: &str, active: bool) -> TargetUser {
        TargetUser {
            key: key.into(),
            username: name.into(),
            email: Some(format!("{name}@example.com")),
            display_name: Some(name.to_uppercase()),
            active,
            attributes: BTreeMap::new(),
            external_id: None,
        }
    }

    fn groups(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn base() -> Vec<u8> {
        let mut state = ActualState::default();
        state.users.push(user("k1", "ann", true));
        state.users.push(user("k2", "bob", true));
        state.groups = groups(&["Devs", "ops"]);
        state
            .memberships
            .insert("Devs".into(), groups(&["k1", "k2"]));
        state.memberships.insert("ops".into(), groups(&["k2"]));
        pack_target_state(&state).expect("packs")
    }

    fn patch(accounts: Vec<(TargetUser, BTreeSet<String>)>, created: &[&str]) -> Vec<u8> {
        AccountsPatch {
            accounts,
            groups: groups(created),
        }
        .encode()
    }

    #[test]
    fn no_patch_is_the_state_itself() {
        let state = base();
        assert_eq!(
            unpack_known(&state, &[]).expect("reads"),
            unpack_target_state(&state).expect("reads")
        );
        assert_eq!(
            known_group_names(&state, &[]).expect("reads"),
            groups(&["Devs", "ops"])
        );
    }

    #[test]
    fn patches_fold_in_order_and_the_latest_account_wins() {
        let state = base();
        let first = patch(
            vec![
                (user("k1", "ann", false), groups(&["devs"])),
                (user("k3", "cy", true), groups(&["new-team"])),
            ],
            &["new-team"],
        );
        // A later sign-in of ann again: she is back, in ops only.
        let second = patch(vec![(user("k1", "ann", true), groups(&["ops"]))], &[]);
        let known = unpack_known(&state, &[first.clone(), second.clone()]).expect("folds");
        let ann = known.users.iter().find(|u| u.key == "k1").expect("ann");
        assert!(ann.active);
        assert!(known.users.iter().any(|u| u.key == "k3"));
        assert_eq!(known.users.len(), 3);
        assert_eq!(known.memberships["Devs"], groups(&["k2"]));
        assert_eq!(known.memberships["ops"], groups(&["k1", "k2"]));
        assert_eq!(known.memberships["new-team"], groups(&["k3"]));
        // The target's spelling of an existing group stays; a created one joins.
        assert_eq!(
            known_group_names(&state, &[first, second]).expect("reads"),
            groups(&["Devs", "new-team", "ops"])
        );
        assert_eq!(known.groups, groups(&["Devs", "new-team", "ops"]));
    }

    #[test]
    fn a_damaged_patch_is_an_error_not_a_smaller_state() {
        let state = base();
        let err = unpack_known(&state, &[b"{not json".to_vec()]).expect_err("refused");
        assert!(matches!(err, UnpackError::Damaged(_)), "{err}");
        assert!(known_group_names(&state, &[b"[]".to_vec()]).is_err());
    }
}
