//! Phase 1: indexes over what the plan reads, built once per plan. Target group names are
//! interned ([`GroupIndex`]); accounts are found by key, username and e-mail and their
//! memberships kept per account ([`Actual`]); links and project leads are looked up through
//! [`Ctx`], which every later phase reads.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use idsync_config::UserRules;
use idsync_model::stored::as_index;
use idsync_model::{ActualState, Capabilities, TargetUser};

use super::text::{lower, pieces};
use super::{FastMap, Link, PlanInput, fast_map};
use idsync_model::managed::ManagedMemberships;

/// Target group names, interned once per plan: memberships are then compared by number, which
/// keeps a plan of 100k users and 500k memberships well under a second.
#[derive(Default)]
pub(super) struct GroupIndex {
    /// lower-case name → id
    ids: FastMap<String, u32>,
    pub(super) names: Vec<GroupName>,
}

pub(super) struct GroupName {
    pub(super) lower: String,
    /// As the target spells it when it exists there, else as the rules spell it.
    pub(super) spelling: String,
    pub(super) on_target: bool,
    /// Some mapping names it (the groups `memberships = "enforce"` applies to).
    pub(super) mapped: bool,
    /// May be created when missing (default groups, and mappings with create_missing).
    pub(super) may_create: bool,
    /// A default group for new users: a one-time placement, never taken away again.
    pub(super) new_user_default: bool,
    /// A target of a manual mapping whose source group was not found: which memberships it
    /// should hold is unknown, so none is removed for a mapping's sake.
    pub(super) unresolved: bool,
}

impl GroupIndex {
    pub(super) fn intern(&mut self, name: &str) -> u32 {
        let lower = lower(name);
        if let Some(id) = self.ids.get(&*lower) {
            return *id;
        }
        let lower = lower.into_owned();
        let id = as_index(self.names.len());
        self.names.push(GroupName {
            lower: lower.clone(),
            spelling: name.to_owned(),
            on_target: false,
            mapped: false,
            may_create: false,
            new_user_default: false,
            unresolved: false,
        });
        self.ids.insert(lower, id);
        id
    }

    pub(super) fn name(&self, id: u32) -> &GroupName {
        &self.names[id as usize]
    }

    pub(super) fn name_mut(&mut self, id: u32) -> &mut GroupName {
        &mut self.names[id as usize]
    }
}

/// Groups `(slot, item)` pairs by slot with a counting sort, into one flat list instead of a
/// vector per slot: slot `s` has `list[start[s]..start[s + 1]]`, in the order the pairs came.
pub(super) fn group_by_slot<T: Copy + Default>(
    slots: usize,
    pairs: Vec<(u32, T)>,
) -> (Vec<u32>, Vec<T>) {
    let mut start = vec![0u32; slots + 1];
    for (slot, _) in &pairs {
        start[*slot as usize + 1] += 1;
    }
    for s in 0..slots {
        start[s + 1] += start[s];
    }
    let mut fill = start.clone();
    let mut list = vec![T::default(); pairs.len()];
    for (slot, item) in pairs {
        let at = &mut fill[slot as usize];
        list[*at as usize] = item;
        *at += 1;
    }
    (start, list)
}

/// Indexes over the actual state, built once per plan. Accounts are named by their position in
/// `ActualState::users`; memberships are kept per account key (two accounts that share a key,
/// which a sane target never reports, share its memberships), as one flat list.
pub(super) struct Actual<'a> {
    users: &'a [TargetUser],
    /// account key → (its slot, the last account with that key)
    by_key: FastMap<&'a str, (u32, u32)>,
    /// account → the slot of its key
    slot_of: Vec<u32>,
    /// slot → its range in `members`
    member_start: Vec<u32>,
    /// the groups each key is in (sorted ids per slot), each with whether this app manages
    /// that membership
    members: Vec<(u32, bool)>,
    /// Built on first use: only adoptions, renames and creations need them, which a plan of a
    /// target in step hardly has.
    by_username: OnceCell<FastMap<Cow<'a, str>, u32>>,
    /// `None` for an email two accounts share: adopting either would be a guess.
    by_email: OnceCell<FastMap<Cow<'a, str>, Option<u32>>>,
}

impl<'a> Actual<'a> {
    /// `keys` is [`concat`](super::text::concat) of the accounts' keys.
    pub(super) fn new(
        state: &'a ActualState,
        keys: &'a str,
        managed: &'a ManagedMemberships,
        index: &mut GroupIndex,
    ) -> Self {
        for group in &state.groups {
            let id = index.intern(group);
            let name = index.name_mut(id);
            name.on_target = true;
            name.spelling = group.clone();
        }
        let mut by_key: FastMap<&str, (u32, u32)> = fast_map(state.users.len());
        let mut slot_of = Vec::with_capacity(state.users.len());
        let account_keys = pieces(keys, state.users.iter().map(|u| u.key.as_str()));
        for (i, key) in account_keys.enumerate() {
            let i = as_index(i);
            let next = as_index(by_key.len());
            let entry = by_key.entry(key).or_insert((next, i));
            entry.1 = i;
            slot_of.push(entry.0);
        }
        let slots = by_key.len();
        let pairs = memberships_by_slot(state, managed, index, &by_key);
        let (mut member_start, mut members) = group_by_slot(slots, pairs);
        sort_and_merge(&mut member_start, &mut members);
        Actual {
            users: &state.users,
            by_key,
            slot_of,
            member_start,
            members,
            by_username: OnceCell::new(),
            by_email: OnceCell::new(),
        }
    }

    pub(super) fn user(&self, account: u32) -> &'a TargetUser {
        &self.users[account as usize]
    }

    /// The account with this key (the last one, should the target list two).
    pub(super) fn by_key(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).map(|(_, account)| *account)
    }

    pub(super) fn by_username(&self, lower_username: &str) -> Option<u32> {
        self.by_username
            .get_or_init(|| {
                let mut map = fast_map(self.users.len());
                for (i, u) in self.users.iter().enumerate() {
                    map.insert(lower(&u.username), as_index(i));
                }
                map
            })
            .get(lower_username)
            .copied()
    }

    pub(super) fn by_email(&self, lower_email: &str) -> Option<u32> {
        self.by_email
            .get_or_init(|| {
                let mut map: FastMap<Cow<'a, str>, Option<u32>> = fast_map(self.users.len());
                for (i, u) in self.users.iter().enumerate() {
                    if let Some(email) = &u.email {
                        let i = as_index(i);
                        map.entry(lower(email))
                            .and_modify(|e| *e = None)
                            .or_insert(Some(i));
                    }
                }
                map
            })
            .get(lower_email)
            .copied()
            .flatten()
    }

    /// The groups an account is in (sorted ids) and, for each, whether this app manages it.
    pub(super) fn groups_of(&self, account: u32) -> &[(u32, bool)] {
        let slot = self.slot_of[account as usize] as usize;
        &self.members[self.member_start[slot] as usize..self.member_start[slot + 1] as usize]
    }
}

/// (slot, (group, managed)) for every membership of a known account. Both the members of a
/// group and the managed memberships are sorted by key, so whether this app manages a
/// membership is found by walking the two side by side, not by a lookup each.
fn memberships_by_slot(
    state: &ActualState,
    managed: &ManagedMemberships,
    index: &mut GroupIndex,
    by_key: &FastMap<&str, (u32, u32)>,
) -> Vec<(u32, (u32, bool))> {
    let total: usize = state.memberships.values().map(BTreeSet::len).sum();
    let mut pairs: Vec<(u32, (u32, bool))> = Vec::with_capacity(total);
    for (group, members) in &state.memberships {
        let id = index.intern(group);
        index.name_mut(id).on_target = true;
        // Managed memberships name the group in lower case (as `GroupIndex` does).
        let lower = index.name(id).lower.clone();
        let mut managed_keys = managed.keys(&lower).peekable();
        for key in members {
            let mut is_managed = false;
            while let Some(m) = managed_keys.peek() {
                match (*m).cmp(key.as_str()) {
                    Ordering::Less => {
                        managed_keys.next();
                    }
                    Ordering::Equal => {
                        is_managed = true;
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            // Keys of no account are never asked about.
            if let Some((slot, _)) = by_key.get(key.as_str()) {
                pairs.push((*slot, (id, is_managed)));
            }
        }
    }
    pairs
}

/// Sorts and dedups each slot's groups (one group may be listed under two spellings: managed
/// if either is), compacting the list as it goes.
fn sort_and_merge(member_start: &mut [u32], members: &mut Vec<(u32, bool)>) {
    let slots = member_start.len() - 1;
    let mut write = 0usize;
    for s in 0..slots {
        let (from, to) = (member_start[s] as usize, member_start[s + 1] as usize);
        members[from..to].sort_unstable();
        member_start[s] = as_index(write);
        for r in from..to {
            let (id, is_managed) = members[r];
            if write > member_start[s] as usize && members[write - 1].0 == id {
                members[write - 1].1 |= is_managed;
            } else {
                members[write] = (id, is_managed);
                write += 1;
            }
        }
    }
    member_start[slots] = as_index(write);
    members.truncate(write);
}

/// What every phase reads: the input and the indexes over it, fixed once built.
pub(super) struct Ctx<'a> {
    pub(super) input: &'a PlanInput<'a>,
    pub(super) actual: Actual<'a>,
    pub(super) index: GroupIndex,
    /// account key → the link that owns it (the last one listed), for adoptions and creations
    owner_of_key: OnceCell<FastMap<&'a str, &'a Link>>,
    /// lower-case username → the leads it holds (positions in `ActualState::leads`)
    leads_of: OnceCell<FastMap<Cow<'a, str>, Vec<usize>>>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(input: &'a PlanInput<'a>, actual: Actual<'a>, index: GroupIndex) -> Self {
        Ctx {
            input,
            actual,
            index,
            owner_of_key: OnceCell::new(),
            leads_of: OnceCell::new(),
        }
    }

    pub(super) fn rules(&self) -> &'a UserRules {
        &self.input.users.config
    }

    pub(super) fn caps(&self) -> &'a Capabilities {
        self.input.capabilities
    }

    /// `memberships = "enforce"`: this app decides every membership of its accounts in the
    /// groups it maps.
    pub(super) fn enforce(&self) -> bool {
        self.input.groups.config.memberships == idsync_config::MembershipPolicy::Enforce
    }

    pub(super) fn owner_of_key(&self, key: &str) -> Option<&'a Link> {
        self.owner_of_key
            .get_or_init(|| {
                let mut map = fast_map(self.input.links.len());
                for l in self.input.links {
                    map.insert(l.key.as_str(), l);
                }
                map
            })
            .get(key)
            .copied()
    }

    pub(super) fn leads_of(&self, username: &str) -> &[usize] {
        self.leads_of
            .get_or_init(|| {
                let mut map: FastMap<Cow<'a, str>, Vec<usize>> = fast_map(0);
                for (i, lead) in self.input.actual.leads.iter().enumerate() {
                    map.entry(lower(&lead.lead)).or_default().push(i);
                }
                map
            })
            .get(&*lower(username))
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    #[test]
    fn group_by_slot_keeps_each_slots_items_in_the_order_given() {
        let pairs = vec![(2, 10u32), (0, 11), (2, 12), (0, 13)];
        let (start, list) = group_by_slot(3, pairs);
        assert_eq!(start, [0, 2, 2, 4]);
        assert_eq!(list, [11, 13, 10, 12]);
    }

    #[test]
    fn group_names_are_interned_without_case_and_keep_the_targets_spelling() {
        let fx = Fixture::new()
            .account("K1", "ada", true)
            .member("Developers", "K1");
        fx.phases(|ctx, _, _| {
            let index = &ctx.index;
            let dev = index.ids.get("developers").copied().expect("interned");
            assert_eq!(index.name(dev).spelling, "Developers");
            assert!(index.name(dev).on_target);
            assert_eq!(index.names.len(), 1);
        });
    }

    #[test]
    fn an_accounts_groups_are_sorted_merged_and_say_which_this_app_manages() {
        // One group under two spellings (managed under either), a membership of no account,
        // two accounts sharing an e-mail.
        let fx = Fixture::new()
            .account("K1", "ada", true)
            .account("K2", "bob", true)
            .member("qa", "K1")
            .member("Dev", "K1")
            .member("dev", "K1")
            .member("dev", "nobody")
            .managed("dev", "K1");
        let mut fx = fx;
        fx.actual.users[1].email = Some("ADA@mail.example".into());
        fx.phases(|ctx, _, _| {
            let actual = &ctx.actual;
            let k1 = actual.by_key("K1").expect("K1");
            let names: Vec<(&str, bool)> = actual
                .groups_of(k1)
                .iter()
                .map(|(id, managed)| (ctx.index.name(*id).lower.as_str(), *managed))
                .collect();
            assert_eq!(names, [("dev", true), ("qa", false)]);
            assert!(
                actual
                    .groups_of(actual.by_key("K2").expect("K2"))
                    .is_empty()
            );
            assert_eq!(actual.by_username("bob"), Some(1));
            // An e-mail two accounts share adopts neither.
            assert_eq!(actual.by_email("ada@mail.example"), None);
        });
    }
}
