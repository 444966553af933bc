//! The planner: a pure function of (source snapshot, actual target state, links, rules) → plan.
//!
//! No I/O, no clock, deterministic output order, so that it can be property-tested and run on
//! 100k users in well under a second. Everything it decides comes with a reason.
//!
//! Safety rules enforced here:
//! - only accounts linked to this app (created or adopted by it) are ever deactivated, deleted,
//!   renamed or updated, and only memberships it manages (or, under `memberships = "enforce"`,
//!   memberships of its own accounts in groups it maps) are removed;
//! - an account linked to another app is left alone, with a warning (first owner wins);
//! - when the source read was not complete, no removal of any kind is planned.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use idsync_config::{AdoptBy, LeaveAction};
use idsync_model::{
    ActualState, Capabilities, Deprovisioning, LeadKind, Operation, OperationKind,
    PlannedOperation, SourceSnapshot, TargetUser, UserChanges,
};
use serde::{Deserialize, Serialize};

use crate::managed::ManagedMemberships;
use crate::rules::{CompiledGroupRules, CompiledUserRules};

/// The lasting tie between a source object and a target account, owned by one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    pub app: String,
    pub source_id: String,
    pub key: String,
    pub username: String,
    /// Set for an account adopted under another username while `users.rename_adopted` is
    /// false: the username the rules gave then. The account keeps its own username until the
    /// rules give a different one (a change at the source), and is renamed only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_username: Option<String>,
    /// On a product that cannot rename users: the username (lower case) the rules gave when
    /// the account was reported as unable to take it. Reported once, not on every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_reported: Option<String>,
}

/// An existing account taken under management by this app on its first sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    pub source_id: String,
    pub key: String,
    pub user: String,
    pub reason: String,
    /// The username the rules give, when the account keeps its own (see
    /// [`Link::kept_username`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_username: Option<String>,
}

/// A membership idsync manages: (group name in lower case, account key).
pub type ManagedMembership = (String, String);

/// Everything the planner looks at for one (app, target) pair.
pub struct PlanInput<'a> {
    pub app: &'a str,
    pub target: &'a str,
    pub capabilities: &'a Capabilities,
    /// Users in scope and every group read.
    pub snapshot: &'a SourceSnapshot,
    /// False when the source read was cut short: then nothing is removed or deprovisioned.
    pub source_complete: bool,
    pub actual: &'a ActualState,
    /// Links of every app on this target (other apps' links protect their accounts).
    pub links: &'a [Link],
    /// Memberships this app manages on this target.
    pub managed_memberships: &'a ManagedMemberships,
    pub users: &'a CompiledUserRules,
    pub groups: &'a CompiledGroupRules,
    pub nested_groups: bool,
}

/// The plan for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetPlan {
    pub target: String,
    pub operations: Vec<PlannedOperation>,
    pub adoptions: Vec<Adoption>,
    /// Memberships that are already as desired and become managed by this app (under
    /// `memberships = "enforce"` only: under `keep` they stay whoever added them).
    #[serde(skip)]
    pub claimed_memberships: Vec<ManagedMembership>,
    /// Links whose account no longer exists on the target (deleted by hand): dropped.
    #[serde(skip)]
    pub dropped_links: Vec<Link>,
    /// Links that record an account reported, in this plan, as unable to take the username
    /// the rules give (see [`Link::rename_reported`]).
    #[serde(skip)]
    pub rename_reports: Vec<Link>,
    pub warnings: Vec<String>,
    /// Accounts this app manages on the target (links kept plus adoptions), for the guard.
    pub managed_users: usize,
}

impl TargetPlan {
    pub fn count(&self, kind: OperationKind) -> usize {
        self.operations
            .iter()
            .filter(|o| o.op.kind() == kind)
            .count()
    }

    /// Deactivations and deletions: what the mass-change guard counts.
    pub fn deprovisions(&self) -> usize {
        self.operations
            .iter()
            .filter(|o| {
                matches!(
                    o.op.kind(),
                    OperationKind::DeactivateUser | OperationKind::DeleteUser
                )
            })
            .count()
    }
}

/// Lower case for comparing names the way the targets do. ASCII (nearly every name) is lowered
/// without a copy when it is already lower case; anything else takes the full Unicode route.
fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// `lower(a) == lower(b)`, without allocating when both are ASCII. (Only both: a non-ASCII
/// letter such as the Kelvin sign may lower to an ASCII one.)
fn same_lower(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a) == lower(b)
    }
}

/// Many short strings side by side. A hash map keyed by slices of it compares keys within a few
/// hundred kilobytes that stay in cache, where keys borrowed from the input would each be read
/// from wherever the input's allocation put them: a cache and TLB miss per lookup, which was
/// most of the time of a 100k-user plan.
fn concat<'s>(strings: impl Iterator<Item = &'s str>) -> String {
    strings.collect()
}

/// The strings a [`concat`] was made of, in order, as slices of it.
fn pieces<'c, 's>(
    concat: &'c str,
    strings: impl Iterator<Item = &'s str>,
) -> impl Iterator<Item = &'c str> {
    let mut at = 0;
    strings.map(move |s| {
        let piece = concat.get(at..at + s.len()).unwrap_or_default();
        at += s.len();
        piece
    })
}

/// A hash map for the plan's own indexes (ids, keys and names of one directory), with
/// foldhash's fast hasher: SipHash, std's default, was a large part of a 100k-user plan, and its
/// resistance to crafted collisions buys little here, where every key comes from the customer's
/// own directory and targets. Fixed seed: a plan never depends on the order of a map, and with
/// one seed for every run that stays easy to check.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}

/// Target group names, interned once per plan: memberships are then compared by number, which
/// keeps a plan of 100k users and 500k memberships well under a second.
#[derive(Default)]
struct GroupIndex {
    /// lower-case name → id
    ids: FastMap<String, u32>,
    names: Vec<GroupName>,
}

struct GroupName {
    lower: String,
    /// As the target spells it when it exists there, else as the rules spell it.
    spelling: String,
    on_target: bool,
    /// Some mapping names it (the groups `memberships = "enforce"` applies to).
    mapped: bool,
    /// May be created when missing (default groups, and mappings with create_missing).
    may_create: bool,
    /// A default group for new users: a one-time placement, never taken away again.
    new_user_default: bool,
    /// A target of a manual mapping whose source group was not found: which memberships it
    /// should hold is unknown, so none is removed for a mapping's sake.
    unresolved: bool,
}

impl GroupIndex {
    fn intern(&mut self, name: &str) -> u32 {
        let lower = lower(name);
        if let Some(id) = self.ids.get(&*lower) {
            return *id;
        }
        let lower = lower.into_owned();
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
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

    fn name(&self, id: u32) -> &GroupName {
        &self.names[id as usize]
    }

    fn name_mut(&mut self, id: u32) -> &mut GroupName {
        &mut self.names[id as usize]
    }
}

/// Indexes over the actual state, built once per plan. Accounts are named by their position in
/// `ActualState::users`; memberships are kept per account key (two accounts that share a key,
/// which a sane target never reports, share its memberships), as one flat list.
struct Actual<'a> {
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
    /// `keys` is [`concat`] of the accounts' keys.
    fn new(
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
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let next = u32::try_from(by_key.len()).unwrap_or(u32::MAX);
            let entry = by_key.entry(key).or_insert((next, i));
            entry.1 = i;
            slot_of.push(entry.0);
        }
        let slots = by_key.len();

        // (slot, group, managed) for every membership of a known account. Both the members of
        // a group and the managed memberships are sorted by key, so whether this app manages
        // a membership is found by walking the two side by side, not by a lookup each.
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
        // Grouped by slot with a counting sort: one flat list instead of a vector per account.
        let mut member_start = vec![0u32; slots + 1];
        for (slot, _) in &pairs {
            member_start[*slot as usize + 1] += 1;
        }
        for s in 0..slots {
            member_start[s + 1] += member_start[s];
        }
        let mut fill = member_start.clone();
        let mut members = vec![(0u32, false); pairs.len()];
        for (slot, member) in pairs {
            let at = &mut fill[slot as usize];
            members[*at as usize] = member;
            *at += 1;
        }
        drop(fill);
        // Sort and dedup each slot (one group may be listed under two spellings: managed if
        // either is), compacting the list as we go.
        let mut write = 0usize;
        for s in 0..slots {
            let (from, to) = (member_start[s] as usize, member_start[s + 1] as usize);
            members[from..to].sort_unstable();
            member_start[s] = u32::try_from(write).unwrap_or(u32::MAX);
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
        member_start[slots] = u32::try_from(write).unwrap_or(u32::MAX);
        members.truncate(write);

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

    fn user(&self, account: u32) -> &'a TargetUser {
        &self.users[account as usize]
    }

    /// The account with this key (the last one, should the target list two).
    fn by_key(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).map(|(_, account)| *account)
    }

    fn by_username(&self, lower_username: &str) -> Option<u32> {
        self.by_username
            .get_or_init(|| {
                let mut map = fast_map(self.users.len());
                for (i, u) in self.users.iter().enumerate() {
                    map.insert(lower(&u.username), u32::try_from(i).unwrap_or(u32::MAX));
                }
                map
            })
            .get(lower_username)
            .copied()
    }

    fn by_email(&self, lower_email: &str) -> Option<u32> {
        self.by_email
            .get_or_init(|| {
                let mut map: FastMap<Cow<'a, str>, Option<u32>> = fast_map(self.users.len());
                for (i, u) in self.users.iter().enumerate() {
                    if let Some(email) = &u.email {
                        let i = u32::try_from(i).unwrap_or(u32::MAX);
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
    fn groups_of(&self, account: u32) -> &[(u32, bool)] {
        let slot = self.slot_of[account as usize] as usize;
        &self.members[self.member_start[slot] as usize..self.member_start[slot + 1] as usize]
    }
}

/// Source users numbered by object id (the same id twice, which a sane source never sends,
/// shares a number).
struct SourceSlots<'s> {
    by_id: FastMap<&'s str, u32>,
    /// The ids are strictly increasing, as the snapshot's map (ordered by id) has them unless a
    /// key differs from its user's id: then a user's number is its position, no lookup needed.
    in_order: bool,
}

impl<'s> SourceSlots<'s> {
    fn new(concat: &'s str, ids: impl Iterator<Item = &'s str>) -> Self {
        let mut by_id: FastMap<&str, u32> = fast_map(ids.size_hint().0);
        let mut in_order = true;
        let mut last: Option<&str> = None;
        for id in pieces(concat, ids) {
            in_order &= last.is_none_or(|last| last < id);
            last = Some(id);
            let next = u32::try_from(by_id.len()).unwrap_or(u32::MAX);
            by_id.entry(id).or_insert(next);
        }
        SourceSlots { by_id, in_order }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The number of the user at `position` in the snapshot, whose id is `id`.
    fn of_user(&self, position: usize, id: &str) -> Option<u32> {
        if self.in_order {
            u32::try_from(position).ok()
        } else {
            self.by_id.get(id).copied()
        }
    }

    /// Calls `found` with the number of each member that is a user in the snapshot, in order.
    fn of_members(&self, members: &BTreeSet<String>, mut found: impl FnMut(u32)) {
        for member in members {
            if let Some(slot) = self.by_id.get(member.as_str()) {
                found(*slot);
            }
        }
    }
}

/// Why a user belongs in a target group.
#[derive(Clone, Copy)]
enum GroupReason {
    /// The mapping with this number (its text is made once per mapping, not per member).
    SourceGroup(u32),
    AllUsers,
    NewUsers,
}

/// Why a membership is removed while deprovisioning.
#[derive(Clone, Copy)]
enum Why {
    Disabled,
    OutOfScope,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::Disabled => "disabled at the source",
            Why::OutOfScope => "no longer in scope at the source",
        }
    }

    fn strip_text(self) -> &'static str {
        match self {
            Why::Disabled => "disabled at the source (users.strip_groups_on_deprovision)",
            Why::OutOfScope => {
                "no longer in scope at the source (users.strip_groups_on_deprovision)"
            }
        }
    }
}

/// Why a membership is added or removed.
#[derive(Clone, Copy)]
enum MembershipReason {
    Wanted(GroupReason),
    NoLongerMapped,
    Enforced,
    Stripped(Why),
}

/// What a plan needs besides the builder: the indexes, shared by the helper functions.
struct Ctx<'a> {
    input: &'a PlanInput<'a>,
    actual: Actual<'a>,
    index: GroupIndex,
    /// account key → the link that owns it (the last one listed), for adoptions and creations
    owner_of_key: OnceCell<FastMap<&'a str, &'a Link>>,
    /// lower-case username → the leads it holds (positions in `ActualState::leads`)
    leads_of: OnceCell<FastMap<Cow<'a, str>, Vec<usize>>>,
}

impl<'a> Ctx<'a> {
    fn owner_of_key(&self, key: &str) -> Option<&'a Link> {
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

    fn leads_of(&self, username: &str) -> &[usize] {
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

/// The account a membership operation is about, shared by all of that user's memberships.
struct Subject<'a> {
    key: &'a str,
    user: Cow<'a, str>,
    source_id: Option<&'a str>,
}

/// A membership operation, kept small until the plan is complete: a first plan of 100k users
/// has half a million of them, and a full `PlannedOperation` each (five strings) while planning
/// would double the plan's peak memory.
struct Membership {
    group: u32,
    subject: u32,
    reason: MembershipReason,
}

const KINDS: usize = OperationKind::ALL.len();

/// Accumulates operations and warnings; warnings of one kind are folded into one line.
struct Builder<'a> {
    target: &'a str,
    /// Operations other than memberships, one list per kind (by `OperationKind as usize`, which
    /// is plan order): the plan comes out in order without sorting.
    ops: [Vec<PlannedOperation>; KINDS],
    adds: Vec<Membership>,
    removes: Vec<Membership>,
    subjects: Vec<Subject<'a>>,
    warnings: Vec<String>,
    /// What → (how many, an example, what is counted).
    folded: BTreeMap<&'static str, (usize, String, &'static str)>,
}

impl<'a> Builder<'a> {
    fn new(target: &'a str) -> Self {
        Builder {
            target,
            ops: std::array::from_fn(|_| Vec::new()),
            adds: Vec::new(),
            removes: Vec::new(),
            subjects: Vec::new(),
            warnings: Vec::new(),
            folded: BTreeMap::new(),
        }
    }

    fn op(&mut self, op: Operation, reason: impl Into<String>, source_id: Option<&str>) {
        let kind = op.kind();
        debug_assert!(!matches!(
            kind,
            OperationKind::AddMembership | OperationKind::RemoveMembership
        ));
        self.ops[kind as usize].push(PlannedOperation {
            target: self.target.to_owned(),
            op,
            reason: reason.into(),
            source_id: source_id.map(str::to_owned),
        });
    }

    /// The subject of one user's membership operations, made on the first of them.
    fn subject(&mut self, made: &mut Option<u32>, make: impl FnOnce() -> Subject<'a>) -> u32 {
        *made.get_or_insert_with(|| {
            self.subjects.push(make());
            u32::try_from(self.subjects.len() - 1).unwrap_or(u32::MAX)
        })
    }

    fn add(&mut self, group: u32, subject: u32, reason: MembershipReason) {
        self.adds.push(Membership {
            group,
            subject,
            reason,
        });
    }

    fn remove(&mut self, group: u32, subject: u32, reason: MembershipReason) {
        self.removes.push(Membership {
            group,
            subject,
            reason,
        });
    }

    fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// A warning that may apply to many users: reported once with a count and the first
    /// example (made only for the first: the others would be thrown away).
    fn warn_folded(&mut self, what: &'static str, example: impl FnOnce() -> String) {
        self.folded
            .entry(what)
            .or_insert_with(|| (0, example(), "user(s)"))
            .0 += 1;
    }

    /// As [`Builder::warn_folded`], counting memberships (the example names a user and a group).
    fn warn_folded_memberships(&mut self, what: &'static str, example: impl FnOnce() -> String) {
        self.folded
            .entry(what)
            .or_insert_with(|| (0, example(), "membership(s)"))
            .0 += 1;
    }

    /// The operations in plan order (by kind; within a kind, in the order they were planned:
    /// source users by object id, which is deterministic), and the warnings. With
    /// `keep_removals` false, removals are left out and only counted.
    fn finish(
        self,
        index: &GroupIndex,
        source_reasons: &[String],
        keep_removals: bool,
    ) -> (Vec<PlannedOperation>, Vec<String>, usize) {
        let Builder {
            target,
            ops,
            adds,
            removes,
            subjects,
            mut warnings,
            folded,
        } = self;
        for (what, (count, example, unit)) in folded {
            warnings.push(format!("{what}: {count} {unit}, e.g. {example}"));
        }
        let len = |kind: OperationKind| match kind {
            OperationKind::AddMembership => adds.len(),
            OperationKind::RemoveMembership => removes.len(),
            _ => ops[kind as usize].len(),
        };
        let mut total = 0;
        let mut held = 0;
        for kind in OperationKind::ALL {
            if keep_removals || !kind.is_removal() {
                total += len(kind);
            } else {
                held += len(kind);
            }
        }
        let materialize = |m: &Membership, add: bool| {
            let group = index.name(m.group).spelling.clone();
            let subject = &subjects[m.subject as usize];
            let (key, user) = (subject.key.to_owned(), subject.user.as_ref().to_owned());
            let reason = match m.reason {
                MembershipReason::Wanted(GroupReason::SourceGroup(i)) => {
                    source_reasons[i as usize].clone()
                }
                MembershipReason::Wanted(GroupReason::AllUsers) => {
                    "default group for all users".to_owned()
                }
                MembershipReason::Wanted(GroupReason::NewUsers) => {
                    "default group for new users".to_owned()
                }
                MembershipReason::NoLongerMapped => {
                    "no longer in a source group mapped to this group".to_owned()
                }
                MembershipReason::Enforced => {
                    "not in the mapped source group (memberships = enforce)".to_owned()
                }
                MembershipReason::Stripped(why) => why.strip_text().to_owned(),
            };
            PlannedOperation {
                target: target.to_owned(),
                op: if add {
                    Operation::AddMembership { group, key, user }
                } else {
                    Operation::RemoveMembership { group, key, user }
                },
                reason,
                source_id: subject.source_id.map(str::to_owned),
            }
        };
        // Exactly sized: the list of a large plan is its biggest allocation.
        let mut out = Vec::with_capacity(total);
        for (kind, list) in OperationKind::ALL.into_iter().zip(ops) {
            if !keep_removals && kind.is_removal() {
                continue;
            }
            match kind {
                OperationKind::AddMembership => {
                    out.extend(adds.iter().map(|m| materialize(m, true)));
                }
                OperationKind::RemoveMembership => {
                    out.extend(removes.iter().map(|m| materialize(m, false)));
                }
                _ => out.extend(list),
            }
        }
        (out, warnings, held)
    }
}

/// Plans one target for one app.
pub fn plan(input: &PlanInput<'_>) -> TargetPlan {
    let caps = input.capabilities;
    let rules = &input.users.config;
    let group_rules = &input.groups.config;
    let mut index = GroupIndex::default();
    let account_keys = concat(input.actual.users.iter().map(|u| u.key.as_str()));
    let actual = Actual::new(
        input.actual,
        &account_keys,
        input.managed_memberships,
        &mut index,
    );
    let mut b = Builder::new(input.target);

    // Links: which account is each of our source users. The other apps' links are only looked
    // at (through `Ctx::owner_of_key`) when an account is about to be adopted or created.
    // A source id linked twice: the last link listed wins. The flag records that the source
    // user is still in scope.
    let mut my_links: FastMap<&str, (&Link, bool)> = fast_map(input.links.len());
    for l in input.links.iter().filter(|l| l.app == input.app) {
        my_links.insert(l.source_id.as_str(), (l, false));
    }
    let mut dropped_links = Vec::new();
    let mut adoptions = Vec::new();
    let mut rename_reports: Vec<Link> = Vec::new();
    let mut claimed = Vec::new();

    // Group mapping → the target groups each source group (with its nested groups) feeds.
    let resolved = input.groups.resolve(input.snapshot);
    let (mappings, mapping_warnings) = (resolved.mappings, resolved.warnings);
    for t in &resolved.unresolved_targets {
        let id = index.intern(t);
        index.name_mut(id).unresolved = true;
    }
    let mut direct_targets: FastMap<&str, Vec<(u32, GroupReason)>> = fast_map(mappings.len());
    let mut source_reasons = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        source_reasons.push(format!("member of source group {:?}", m.source_name));
        for t in &m.targets {
            let id = index.intern(t);
            let name = index.name_mut(id);
            name.mapped = true;
            name.may_create |= m.create_missing;
            direct_targets
                .entry(m.source_id.as_str())
                .or_default()
                .push((id, GroupReason::SourceGroup(i)));
        }
    }
    let mut all_user_defaults = Vec::new();
    for g in &group_rules.default_groups_all_users {
        let id = index.intern(g);
        index.name_mut(id).may_create = true;
        all_user_defaults.push(id);
    }
    let mut new_user_defaults = Vec::new();
    for g in &group_rules.default_groups_new_users {
        let id = index.intern(g);
        let name = index.name_mut(id);
        name.may_create = true;
        name.new_user_default = true;
        new_user_defaults.push(id);
    }
    // A user in a nested group is in every group above it: each source group feeds the targets
    // of its ancestors too. Worked out once per group, not once per user.
    let mut group_targets: Vec<(&str, Vec<(u32, GroupReason)>)> = if input.nested_groups {
        let mut parents: FastMap<&str, Vec<&str>> = fast_map(input.snapshot.groups.len());
        for g in input.snapshot.groups.values() {
            for child in &g.group_members {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(g.id.as_str());
            }
        }
        input
            .snapshot
            .groups
            .keys()
            .filter_map(|id| {
                let mut seen: HashSet<&str> = HashSet::new();
                let mut stack = vec![id.as_str()];
                let mut targets = Vec::new();
                while let Some(g) = stack.pop() {
                    if seen.insert(g) {
                        targets.extend(direct_targets.get(g).into_iter().flatten().copied());
                        stack.extend(parents.get(g).into_iter().flatten().copied());
                    }
                }
                (!targets.is_empty()).then_some((id.as_str(), targets))
            })
            .collect()
    } else {
        direct_targets.into_iter().collect()
    };
    // By source group id: when two source groups feed one target group, the reason given is
    // that of the first of them by id (the lookup this replaces went in hash order, so which
    // reason a plan gave could change from run to run).
    group_targets.sort_unstable_by(|a, b| a.0.cmp(b.0));

    // Source users by object id (the same id twice, which a sane source never sends, shares a
    // slot, and the first of them in scope gets the groups, as before).
    let source_ids = concat(input.snapshot.users.values().map(|u| u.id.as_str()));
    let source_slots = SourceSlots::new(
        &source_ids,
        input.snapshot.users.values().map(|u| u.id.as_str()),
    );
    // Each user's source groups that map somewhere (positions in `group_targets`, in order),
    // grouped by user with a counting sort into one flat list.
    let (feeds_start, feeds) = {
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (g, (group_id, _)) in group_targets.iter().enumerate() {
            if let Some(group) = input.snapshot.groups.get(*group_id) {
                let g = u32::try_from(g).unwrap_or(u32::MAX);
                source_slots.of_members(&group.user_members, |slot| pairs.push((slot, g)));
            }
        }
        let slots = source_slots.len();
        let mut start = vec![0u32; slots + 1];
        for (slot, _) in &pairs {
            start[*slot as usize + 1] += 1;
        }
        for s in 0..slots {
            start[s + 1] += start[s];
        }
        let mut fill = start.clone();
        let mut feeds = vec![0u32; pairs.len()];
        for (slot, g) in pairs {
            let at = &mut fill[slot as usize];
            feeds[*at as usize] = g;
            *at += 1;
        }
        (start, feeds)
    };
    let mut feeds_taken = vec![false; source_slots.len()];

    // Target groups the plan must create if they are missing.
    let mut needed = vec![false; index.names.len()];
    for (id, name) in index.names.iter().enumerate() {
        if (group_rules.import_groups && name.mapped) || all_user_defaults.contains(&(id as u32)) {
            needed[id] = true;
        }
    }
    for id in &new_user_defaults {
        needed[*id as usize] = true;
    }

    let enforce = group_rules.memberships == idsync_config::MembershipPolicy::Enforce;
    let ctx = Ctx {
        input,
        actual,
        index,
        owner_of_key: OnceCell::new(),
        leads_of: OnceCell::new(),
    };
    let actual = &ctx.actual;

    // Warnings come in this order: the mapping's, the users skipped for their username, the
    // custom attributes', then those of planning the users (pushed to the builder).
    let mut username_warnings = Vec::new();
    let mut managed_users = 0usize;
    // One username per target account. Who holds a username two source users produce is
    // decided before any user is planned, so that it does not depend on who comes first: a
    // source user this app has linked keeps it (a link is never taken from its owner: the
    // newcomer would otherwise take the name and the owner be deprovisioned as gone), the one
    // linked under that very username first; else the first by object id. Each user's username
    // comes with the number of its entry in `holders`: (the holder's id, its rank: 2 linked
    // under this name, 1 linked, 0 not; whether planned yet), so that planning a user looks
    // its holder up by number, not by name.
    let users_len = input.snapshot.users.len();
    let mut usernames: Vec<Option<(String, u32)>> = Vec::with_capacity(users_len);
    let mut holders: Vec<(&str, u8, bool)> = Vec::with_capacity(users_len);
    {
        let mut holder_of: FastMap<String, u32> = fast_map(users_len);
        for src in input.snapshot.users.values() {
            let Some(username) = input.users.username(src) else {
                usernames.push(None);
                continue;
            };
            let rank = match my_links.get(src.id.as_str()) {
                Some((link, _)) if same_lower(&link.username, &username) => 2,
                Some(_) => 1,
                None => 0,
            };
            let slot = *holder_of
                .entry(lower(&username).into_owned())
                .or_insert_with(|| {
                    holders.push((src.id.as_str(), rank, false));
                    u32::try_from(holders.len() - 1).unwrap_or(u32::MAX)
                });
            if let Some(holder) = holders.get_mut(slot as usize)
                && rank > holder.1
            {
                *holder = (src.id.as_str(), rank, false);
            }
            usernames.push(Some((username, slot)));
        }
    }
    // The target groups one user should be in (sorted ids, one reason each); reused.
    let mut groups: Vec<(u32, GroupReason)> = Vec::new();

    for (position, src) in input.snapshot.users.values().enumerate() {
        let Some((username, slot)) = usernames.get_mut(position).and_then(Option::take) else {
            // Still in scope: an account this user holds stays as it is (never deprovisioned
            // as "gone" for a blank attribute), and nothing else is planned for it.
            if let Some((_, in_scope)) = my_links.get_mut(src.id.as_str()) {
                *in_scope = true;
                b.warn_folded(
                    "left as it is: the username attribute is empty for a user whose account idsync manages (fill it, or change users.username)",
                    || format!("source user {}", src.id),
                );
            } else {
                b.warn_folded("skipped: the username attribute is empty", || {
                    format!("source user {}", src.id)
                });
            }
            continue;
        };
        // Another source user holding this username; for a linked user, whose account stays
        // theirs, it only stops a rename (or a creation) under that name.
        let mut name_held_by: Option<&str> = None;
        if let Some(holder) = holders.get_mut(slot as usize) {
            if holder.0 == src.id && !holder.2 {
                holder.2 = true;
            } else if my_links.contains_key(src.id.as_str()) {
                name_held_by = Some(holder.0);
            } else {
                username_warnings.push(if holder.1 > 0 {
                    format!(
                        "skipped source user {}: username {username:?} belongs to source user {}, whose account idsync manages (a link is never taken from its owner); give one of them another username (users.username rules) or take {} out of scope",
                        src.id, holder.0, src.id
                    )
                } else {
                    format!(
                        "skipped source user {}: username {username:?} is already produced by source user {} (the first by object id gets it); give one of them another username (users.username rules)",
                        src.id, holder.0
                    )
                });
                continue;
            }
        }

        // What the rules want for this user.
        groups.clear();
        if let Some(slot) = source_slots.of_user(position, &src.id) {
            let slot = slot as usize;
            if !feeds_taken[slot] {
                feeds_taken[slot] = true;
                let range = feeds_start[slot] as usize..feeds_start[slot + 1] as usize;
                for g in &feeds[range] {
                    groups.extend(group_targets[*g as usize].1.iter().copied());
                }
            }
        }
        groups.extend(
            all_user_defaults
                .iter()
                .map(|id| (*id, GroupReason::AllUsers)),
        );
        // Stable sort, then the first reason of each group is kept.
        groups.sort_by_key(|(id, _)| *id);
        groups.dedup_by_key(|(id, _)| *id);
        let email = input.users.email_str(src);
        let display_name = input
            .users
            .display_name_str(src)
            .unwrap_or(username.as_str());

        // Which account is this user?
        let mut account: Option<u32> = None;
        // The username the rules gave when the account was adopted under its own, kept one
        // (`users.rename_adopted = false`); and whether it is adopted by e-mail in this run.
        let mut kept_username: Option<&str> = None;
        let mut adopted_by_email = false;
        let mut my_link: Option<&Link> = None;
        if let Some((link, in_scope)) = my_links.get_mut(src.id.as_str()) {
            *in_scope = true;
            match actual.by_key(&link.key) {
                Some(a) => {
                    account = Some(a);
                    kept_username = link.kept_username.as_deref();
                    my_link = Some(*link);
                }
                None => dropped_links.push((*link).clone()),
            }
        }
        if account.is_none() {
            let mut candidate = None;
            for by in &rules.adopt_by {
                let found = match by {
                    AdoptBy::Username => actual.by_username(&lower(&username)),
                    AdoptBy::Email => email.and_then(|e| actual.by_email(&lower(e))),
                };
                if let Some(found) = found {
                    candidate = Some((found, *by));
                    break;
                }
            }
            if let Some((found, by)) = candidate {
                let found_user = actual.user(found);
                match ctx.owner_of_key(&found_user.key) {
                    Some(owner) if owner.app != input.app => {
                        b.warn(format!(
                            "skipped {:?}: account {:?} is managed by app {:?} (first owner wins)",
                            username, found_user.username, owner.app
                        ));
                        continue;
                    }
                    Some(owner) if owner.source_id != src.id => {
                        b.warn(format!(
                            "skipped {:?}: account {:?} is linked to another source user ({})",
                            username, found_user.username, owner.source_id
                        ));
                        continue;
                    }
                    _ => {
                        let how = match by {
                            AdoptBy::Username => "existing account adopted (same username)",
                            AdoptBy::Email => "existing account adopted (same email)",
                        };
                        let keeps_own_name =
                            !rules.rename_adopted && !same_lower(&found_user.username, &username);
                        adoptions.push(Adoption {
                            source_id: src.id.clone(),
                            key: found_user.key.clone(),
                            user: found_user.username.clone(),
                            reason: if keeps_own_name {
                                format!(
                                    "{how}; keeps its username instead of {username:?} (users.rename_adopted = false)"
                                )
                            } else {
                                how.to_owned()
                            },
                            kept_username: keeps_own_name.then(|| username.clone()),
                        });
                        account = Some(found);
                        adopted_by_email = by == AdoptBy::Email;
                        if keeps_own_name {
                            kept_username = Some(username.as_str());
                        }
                    }
                }
            }
        }

        let Some(account_id) = account else {
            // No account yet.
            if !src.enabled {
                continue;
            }
            if let Some(holder) = name_held_by {
                username_warnings.push(format!(
                    "skipped source user {}: its account is gone and username {username:?} belongs to source user {holder}; give one of them another username (users.username rules)",
                    src.id
                ));
                continue;
            }
            if !rules.create {
                b.warn_folded("not created because users.create = false", || {
                    format!("{username:?}")
                });
                continue;
            }
            if let Some(taken) = actual.by_username(&lower(&username)) {
                let owner = ctx
                    .owner_of_key(&actual.user(taken).key)
                    .map(|l| format!("managed by app {:?}", l.app))
                    .unwrap_or_else(|| "not adoptable under users.adopt_by".to_owned());
                b.warn(format!(
                    "skipped {username:?}: an account with that username exists ({owner})"
                ));
                continue;
            }
            // A name the product refuses (Confluence: whitespace, \ , + < > ' ") is a problem
            // of this user, said here, never a 400 at apply time.
            if let Some(why) = input.users.username_refusal(&username) {
                username_warnings.push(format!(
                    "skipped source user {}: username {username:?} {why}; change the users.username rules (a replace, for example) so that it produces a name without it",
                    src.id
                ));
                continue;
            }
            if caps.requires_email && email.is_none() {
                // The target refuses such a creation (Atlassian Cloud: 400 without a primary
                // e-mail); said here, per user, rather than as a failed request at apply time.
                b.warn(format!(
                    "skipped {username:?}: source user {} has no e-mail address (users.email) and this target creates no account without one",
                    src.id
                ));
                continue;
            }
            if !caps.reads_email && email.is_some() && rules.adopt_by.contains(&AdoptBy::Email) {
                // Said for every creation, so that no second account for a person whose
                // existing account has another username is made without a word.
                b.warn_folded(
                    "created without adoption by e-mail: this product does not report e-mail addresses, so users.adopt_by \"email\" only finds accounts idsync itself sent an e-mail; an existing account of the same person under another username is not found (link it by giving it the username the rules give, then sync)",
                    || format!("{username:?}"),
                );
            }
            let attributes = if caps.custom_attributes {
                input.users.custom_attributes(src)
            } else {
                BTreeMap::new()
            };
            b.op(
                Operation::CreateUser {
                    user: username.clone(),
                    email: email.map(str::to_owned),
                    display_name: Some(display_name.to_owned()),
                    attributes,
                    external_id: Some(src.id.clone()),
                },
                match input.users.username_note() {
                    Some(note) => format!("in scope at the source, no account yet ({note})"),
                    None => "in scope at the source, no account yet".to_owned(),
                },
                Some(&src.id),
            );
            groups.extend(
                new_user_defaults
                    .iter()
                    .map(|id| (*id, GroupReason::NewUsers)),
            );
            groups.sort_by_key(|(id, _)| *id);
            groups.dedup_by_key(|(id, _)| *id);
            let mut subject = None;
            for (group, reason) in &groups {
                if !need_group(&mut needed, &ctx.index, *group) {
                    b.warn_folded_memberships(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        || format!("{username:?} in {:?}", ctx.index.name(*group).spelling),
                    );
                    continue;
                }
                let s = b.subject(&mut subject, || Subject {
                    // The key is only known once the account exists; the executor fills it.
                    key: "",
                    user: Cow::Owned(username.clone()),
                    source_id: Some(src.id.as_str()),
                });
                b.add(*group, s, MembershipReason::Wanted(*reason));
            }
            continue;
        };

        managed_users += 1;
        let account = actual.user(account_id);
        let key = account.key.as_str();
        let will_be_active = if src.enabled {
            if !account.active {
                if rules.reactivate {
                    b.op(
                        Operation::ReactivateUser {
                            key: key.to_owned(),
                            user: account.username.clone(),
                        },
                        "enabled at the source",
                        Some(&src.id),
                    );
                    true
                } else {
                    b.warn_folded("not reactivated because users.reactivate = false", || {
                        format!("{:?}", account.username)
                    });
                    false
                }
            } else {
                true
            }
        } else {
            // An account already inactive is still deleted when the policy says delete.
            if account.active || rules.on_disable == LeaveAction::Delete {
                deprovision(
                    &mut b,
                    &ctx,
                    account_id,
                    rules.on_disable,
                    Why::Disabled,
                    Some(&src.id),
                );
            } else if rules.strip_groups_on_deprovision {
                strip_memberships(&mut b, &ctx, account_id, Why::Disabled);
            }
            false
        };

        // Rename (the link follows the object id, so a UPN change is a rename, not a new user).
        let mut renamed = false;
        // An adopted account keeps its own username while the rules give the one they gave at
        // its adoption (and the admin asked for that).
        let keeps_own_name =
            !rules.rename_adopted && kept_username.is_some_and(|kept| same_lower(kept, &username));
        if !same_lower(&account.username, &username) && !keeps_own_name {
            if let Some(holder) = name_held_by {
                b.warn(format!(
                    "cannot rename {:?} to {:?}: source user {} produces that username too (and holds it); source user {} keeps account {:?}",
                    account.username, username, holder, src.id, account.username
                ));
            } else if !rules.rename {
                b.warn_folded("not renamed because users.rename = false", || {
                    format!("{:?} → {:?}", account.username, username)
                });
            } else if !caps.rename_user {
                // Reported once per account and wanted name, not on every run: nothing idsync
                // can do changes it, and the same warning every run buries the others.
                let wanted = lower(&username);
                let reported =
                    my_link.is_some_and(|l| l.rename_reported.as_deref() == Some(&*wanted));
                if !reported {
                    b.warn_folded(
                        "not renamed: this product cannot rename users (reported once; rename them in the product's user administration)",
                        || format!("{:?} → {:?}", account.username, username),
                    );
                    if let Some(link) = my_link {
                        rename_reports.push(Link {
                            rename_reported: Some(wanted.into_owned()),
                            ..link.clone()
                        });
                    }
                }
            } else if let Some(other) = actual.by_username(&lower(&username)) {
                b.warn(format!(
                    "cannot rename {:?} to {:?}: another account ({}) has that username",
                    account.username,
                    username,
                    actual.user(other).key
                ));
            } else {
                let why = if adopted_by_email {
                    "adopted by e-mail under another username: renamed to the one the users.username rules give (users.rename_adopted)"
                } else if kept_username.is_some() {
                    if rules.rename_adopted {
                        "adopted under another username, kept while users.rename_adopted was false: renamed to the one the users.username rules give"
                    } else {
                        "username attribute changed at the source (the account had kept the username it was adopted with)"
                    }
                } else {
                    "username attribute changed at the source"
                };
                b.op(
                    Operation::RenameUser {
                        key: key.to_owned(),
                        user: account.username.clone(),
                        new_username: username.clone(),
                    },
                    why,
                    Some(&src.id),
                );
                renamed = true;
            }
        }
        // The name the account has once the operations before a later one are done.
        let username_now: &str = if renamed {
            &username
        } else {
            &account.username
        };

        if rules.update {
            let mut changes = UserChanges::default();
            // A target that does not report e-mail addresses (Confluence's REST API never
            // does) is given, in `account.email`, the address idsync last sent it (the runner
            // remembers them). An account with none remembered (adopted, or created before
            // idsync remembered them) is sent the source's address once.
            let why_email = match (email, &account.email) {
                (Some(want), Some(has)) if !same_lower(want, has) => {
                    Some("details changed at the source")
                }
                (Some(_), None) if !caps.reads_email => Some(
                    "e-mail set once: this product does not report e-mail addresses, and idsync has not sent this account one yet",
                ),
                _ => None,
            };
            if caps.update_email
                && let (Some(want), Some(_)) = (email, why_email)
            {
                changes.email = Some(want.to_owned());
            }
            if caps.update_display_name && account.display_name.as_deref() != Some(display_name) {
                changes.display_name = Some(display_name.to_owned());
            }
            if !changes.is_empty() {
                let details = "details changed at the source";
                let why: Cow<'static, str> = match why_email {
                    Some(why) if changes.display_name.is_none() => why.into(),
                    Some(why) if why != details => format!("{details}; {why}").into(),
                    _ => details.into(),
                };
                b.op(
                    Operation::UpdateUser {
                        key: key.to_owned(),
                        user: username_now.to_owned(),
                        changes,
                    },
                    why,
                    Some(&src.id),
                );
            }
            if caps.custom_attributes {
                for (name, source) in &rules.custom_attributes {
                    let want = src.attr(source);
                    if want != account.attributes.get(name).map(String::as_str) {
                        b.op(
                            Operation::SetAttribute {
                                key: key.to_owned(),
                                user: username_now.to_owned(),
                                name: name.clone(),
                                value: want.map(str::to_owned),
                            },
                            "custom attribute changed at the source",
                            Some(&src.id),
                        );
                    }
                }
            }
        }

        // Memberships: only active users gain groups.
        if will_be_active {
            let current = actual.groups_of(account_id);
            let mut subject = None;
            let subject_of = || Subject {
                key,
                user: if renamed {
                    Cow::Owned(username.clone())
                } else {
                    Cow::Borrowed(account.username.as_str())
                },
                source_id: Some(src.id.as_str()),
            };
            for (group, reason) in &groups {
                if let Ok(at) = current.binary_search_by_key(group, |(id, _)| *id) {
                    // Already as desired. Under `enforce` this app decides the membership from
                    // now on, so it becomes managed. Under `keep` it was there before idsync
                    // and stays someone else's: only memberships idsync adds (recorded as they
                    // are sent) are ever removed.
                    if enforce && !current[at].1 {
                        claimed.push((ctx.index.name(*group).lower.clone(), key.to_owned()));
                    }
                    continue;
                }
                if !need_group(&mut needed, &ctx.index, *group) {
                    b.warn_folded_memberships(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        || format!("{username:?} in {:?}", ctx.index.name(*group).spelling),
                    );
                    continue;
                }
                let s = b.subject(&mut subject, subject_of);
                b.add(*group, s, MembershipReason::Wanted(*reason));
            }
            // Removals: memberships we manage that the rules no longer want, and under
            // `enforce`, any membership of this account in a group we map.
            for (group, managed) in current {
                if groups.binary_search_by_key(group, |(id, _)| *id).is_ok() {
                    continue;
                }
                let name = ctx.index.name(*group);
                // A default group for new users is a one-time placement: the rules do not
                // want it on later runs, yet it must not be taken away.
                let managed = *managed && !name.new_user_default;
                let enforced = enforce && name.mapped;
                // The target of a mapping whose source group is missing: whether the user
                // belongs there is unknown (a renamed group would otherwise empty it).
                if name.unresolved {
                    continue;
                }
                if managed || enforced {
                    let s = b.subject(&mut subject, subject_of);
                    b.remove(
                        *group,
                        s,
                        if managed {
                            MembershipReason::NoLongerMapped
                        } else {
                            MembershipReason::Enforced
                        },
                    );
                }
            }
        }
    }

    // Accounts of ours whose source user has left the scope (or was deleted at the source), by
    // source id.
    let mut gone: Vec<&Link> = my_links
        .into_values()
        .filter(|(_, in_scope)| !in_scope)
        .map(|(link, _)| link)
        .collect();
    gone.sort_unstable_by(|a, b| a.source_id.cmp(&b.source_id));
    for link in gone {
        let Some(account_id) = actual.by_key(&link.key) else {
            dropped_links.push(link.clone());
            continue;
        };
        managed_users += 1;
        let account = actual.user(account_id);
        if account.active || rules.on_leave == LeaveAction::Delete {
            deprovision(
                &mut b,
                &ctx,
                account_id,
                rules.on_leave,
                Why::OutOfScope,
                Some(&link.source_id),
            );
        } else if rules.strip_groups_on_deprovision {
            strip_memberships(&mut b, &ctx, account_id, Why::OutOfScope);
        }
    }

    for (id, name) in ctx.index.names.iter().enumerate() {
        if needed[id] && !name.on_target && name.may_create {
            b.op(
                Operation::CreateGroup {
                    group: name.spelling.clone(),
                },
                if name.mapped {
                    "mapped group missing on the target"
                } else {
                    "default group missing on the target"
                },
                None,
            );
        }
    }

    let mut warnings = mapping_warnings;
    warnings.append(&mut username_warnings);
    if !rules.custom_attributes.is_empty() && !caps.custom_attributes {
        warnings.push(format!(
            "{} has no custom attributes: users.custom_attributes ({}) are not synced to it",
            input.target,
            rules
                .custom_attributes
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (operations, mut planned_warnings, held) =
        b.finish(&ctx.index, &source_reasons, input.source_complete);
    warnings.append(&mut planned_warnings);
    let operations = withhold_unavailable(operations, input.capabilities, &mut warnings);
    if held > 0 {
        warnings.push(format!(
            "the source read was incomplete: {held} removal(s) and deprovisioning(s) held back until a complete read"
        ));
    }
    dropped_links.sort();
    dropped_links.dedup();
    TargetPlan {
        target: input.target.to_owned(),
        operations,
        adoptions,
        claimed_memberships: claimed,
        dropped_links,
        rename_reports,
        warnings,
        managed_users,
    }
}

/// Operations the product cannot do at the version it runs are not sent: each kind is said
/// once, with why (the version it needs) and how many; the memberships of accounts that cannot
/// be created go with them.
fn withhold_unavailable(
    operations: Vec<PlannedOperation>,
    caps: &Capabilities,
    warnings: &mut Vec<String>,
) -> Vec<PlannedOperation> {
    if caps.unavailable.is_empty() {
        return operations;
    }
    let creations_withheld = caps.unavailable.contains_key(&OperationKind::CreateUser);
    let mut withheld: BTreeMap<OperationKind, (usize, String)> = BTreeMap::new();
    let kept = operations
        .into_iter()
        .filter(|planned| {
            let kind = planned.op.kind();
            if caps.unavailable.contains_key(&kind) {
                withheld
                    .entry(kind)
                    .or_insert_with(|| (0, planned.op.user().unwrap_or_default().to_owned()))
                    .0 += 1;
                return false;
            }
            // An account that is not created gets no memberships (their key is not known).
            !(creations_withheld
                && matches!(&planned.op, Operation::AddMembership { key, .. } if key.is_empty()))
        })
        .collect();
    for (kind, (count, example)) in withheld {
        if let Some(why) = caps.unavailable.get(&kind) {
            warnings.push(format!(
                "not sent: {why}: {count} {} operation(s), e.g. {example:?}",
                kind.as_str()
            ));
        }
    }
    kept
}

/// Records that a group must exist; false when it is missing and may not be created.
fn need_group(needed: &mut [bool], index: &GroupIndex, group: u32) -> bool {
    let name = index.name(group);
    if !name.on_target {
        if !name.may_create {
            return false;
        }
        needed[group as usize] = true;
    }
    true
}

/// Plans taking access away from one of our accounts, as `action` says and the target can.
fn deprovision<'a>(
    b: &mut Builder<'a>,
    ctx: &Ctx<'a>,
    account_id: u32,
    action: LeaveAction,
    why: Why,
    source_id: Option<&str>,
) {
    let input = ctx.input;
    let rules = &input.users.config;
    let caps = input.capabilities;
    let account = ctx.actual.user(account_id);
    let delete = match action {
        LeaveAction::Keep => return,
        LeaveAction::Delete => {
            if !rules.delete {
                b.warn_folded("not deleted because users.delete = false", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            if !caps.delete_user {
                b.warn_folded("not deleted: this product cannot delete users", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            true
        }
        LeaveAction::Deactivate => {
            if !rules.deactivate {
                b.warn_folded("not deactivated because users.deactivate = false", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            // A product without deactivation deletes only when its target says so.
            matches!(caps.deprovisioning, Deprovisioning::Delete)
        }
    };
    // Jira refuses to deactivate or delete a project lead: hand leads over first.
    if caps.leads {
        let mut blocked = None;
        let mut handovers = Vec::new();
        for lead in ctx.leads_of(&account.username) {
            let lead = &input.actual.leads[*lead];
            let default = match lead.kind {
                LeadKind::Project => rules.default_project_lead.as_ref(),
                LeadKind::Component => rules.default_component_lead.as_ref(),
            };
            match default {
                Some(new_lead) if !same_lower(new_lead, &account.username) => {
                    handovers.push((lead, new_lead.clone()));
                }
                _ if lead.kind == LeadKind::Project => {
                    blocked = Some(lead);
                }
                // A component without a new lead falls back to its project's lead.
                _ => {}
            }
        }
        if let Some(lead) = blocked {
            b.warn(format!(
                "cannot deprovision {:?} ({}): they lead project {} ({}); set users.default_project_lead",
                account.username,
                why.text(),
                lead.id,
                lead.name
            ));
            return;
        }
        for (lead, new_lead) in handovers {
            b.op(
                Operation::HandOverLead {
                    kind: lead.kind,
                    id: lead.id.clone(),
                    user: account.username.clone(),
                    new_lead,
                },
                format!("{} is about to be deprovisioned", account.username),
                source_id,
            );
        }
    }
    if rules.strip_groups_on_deprovision && !delete {
        strip_memberships(b, ctx, account_id, why);
    }
    let op = if delete {
        Operation::DeleteUser {
            key: account.key.clone(),
            user: account.username.clone(),
        }
    } else {
        Operation::DeactivateUser {
            key: account.key.clone(),
            user: account.username.clone(),
        }
    };
    b.op(op, why.text(), source_id);
}

/// Removes the memberships this app manages for an account being deprovisioned.
fn strip_memberships<'a>(b: &mut Builder<'a>, ctx: &Ctx<'a>, account_id: u32, why: Why) {
    let account = ctx.actual.user(account_id);
    let mut subject = None;
    for (group, managed) in ctx.actual.groups_of(account_id) {
        if *managed {
            let s = b.subject(&mut subject, || Subject {
                key: &account.key,
                user: Cow::Borrowed(&account.username),
                source_id: None,
            });
            b.remove(*group, s, MembershipReason::Stripped(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_kinds_index_their_lists_in_plan_order() {
        // `Builder` files operations under `kind as usize` and reads the lists back in
        // `OperationKind::ALL` order: the two must agree.
        for (i, kind) in OperationKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind}");
        }
    }

    #[test]
    fn lower_and_same_lower_agree_with_to_lowercase() {
        for (a, b) in [
            ("Ada", "ada"),
            ("ADA", "adb"),
            ("\u{212A}elvin", "kelvin"),
            ("Ünï", "üNÏ"),
            ("", ""),
        ] {
            assert_eq!(lower(a), a.to_lowercase());
            assert_eq!(
                same_lower(a, b),
                a.to_lowercase() == b.to_lowercase(),
                "{a} {b}"
            );
        }
    }
}
