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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use idsync_config::{AdoptBy, LeaveAction};
use idsync_model::{
    ActualState, Capabilities, Deprovisioning, LeadKind, Operation, OperationKind,
    PlannedOperation, SourceSnapshot, SourceUser, TargetUser, UserChanges,
};
use serde::{Deserialize, Serialize};

use crate::rules::{CompiledGroupRules, CompiledUserRules};

/// The lasting tie between a source object and a target account, owned by one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    pub app: String,
    pub source_id: String,
    pub key: String,
    pub username: String,
}

/// An existing account taken under management by this app on its first sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    pub source_id: String,
    pub key: String,
    pub user: String,
    pub reason: String,
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
    pub managed_memberships: &'a BTreeSet<ManagedMembership>,
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
    /// Memberships that are already as desired and become managed by this app.
    #[serde(skip)]
    pub claimed_memberships: Vec<ManagedMembership>,
    /// Links whose account no longer exists on the target (deleted by hand): dropped.
    #[serde(skip)]
    pub dropped_links: Vec<Link>,
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

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Target group names, interned once per plan: memberships are then compared by number, which
/// keeps a plan of 100k users and 500k memberships well under a second.
#[derive(Default)]
struct GroupIndex {
    /// lower-case name → id
    ids: HashMap<String, u32>,
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
}

impl GroupIndex {
    fn intern(&mut self, name: &str) -> u32 {
        let lower = lower(name);
        if let Some(id) = self.ids.get(&lower) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(GroupName {
            lower: lower.clone(),
            spelling: name.to_owned(),
            on_target: false,
            mapped: false,
            may_create: false,
            new_user_default: false,
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

/// Indexes over the actual state, built once per plan.
struct Actual<'a> {
    by_key: HashMap<&'a str, &'a TargetUser>,
    by_username: HashMap<String, &'a TargetUser>,
    by_email: HashMap<String, &'a TargetUser>,
    /// account key → the groups it is in (sorted ids)
    groups_of: HashMap<&'a str, Vec<u32>>,
}

impl<'a> Actual<'a> {
    fn new(state: &'a ActualState, index: &mut GroupIndex) -> Self {
        let mut by_email = HashMap::new();
        for u in &state.users {
            if let Some(email) = &u.email {
                // Two accounts with one email: adopting either would be a guess, so neither is.
                by_email
                    .entry(lower(email))
                    .and_modify(|e| *e = None)
                    .or_insert(Some(u));
            }
        }
        for group in &state.groups {
            let id = index.intern(group);
            let name = index.name_mut(id);
            name.on_target = true;
            name.spelling = group.clone();
        }
        let mut groups_of: HashMap<&str, Vec<u32>> = HashMap::new();
        for (group, keys) in &state.memberships {
            let id = index.intern(group);
            index.name_mut(id).on_target = true;
            for key in keys {
                groups_of.entry(key.as_str()).or_default().push(id);
            }
        }
        for ids in groups_of.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        Actual {
            by_key: state.users.iter().map(|u| (u.key.as_str(), u)).collect(),
            by_username: state
                .users
                .iter()
                .map(|u| (lower(&u.username), u))
                .collect(),
            by_email: by_email
                .into_iter()
                .filter_map(|(k, v)| v.map(|u| (k, u)))
                .collect(),
            groups_of,
        }
    }

    fn groups_of(&self, key: &str) -> &[u32] {
        self.groups_of.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Why a user belongs in a target group.
#[derive(Clone, Copy)]
enum GroupReason<'s> {
    SourceGroup(&'s str),
    AllUsers,
    NewUsers,
}

impl GroupReason<'_> {
    fn text(self) -> String {
        match self {
            GroupReason::SourceGroup(name) => format!("member of source group {name:?}"),
            GroupReason::AllUsers => "default group for all users".to_owned(),
            GroupReason::NewUsers => "default group for new users".to_owned(),
        }
    }
}

/// What a plan needs besides the builder: the indexes, shared by the helper functions.
struct Ctx<'a> {
    input: &'a PlanInput<'a>,
    actual: Actual<'a>,
    index: GroupIndex,
    /// account key → groups whose membership this app manages (sorted ids)
    managed_of: HashMap<&'a str, Vec<u32>>,
}

impl Ctx<'_> {
    fn manages(&self, key: &str, group: u32) -> bool {
        self.managed_of
            .get(key)
            .is_some_and(|ids| ids.binary_search(&group).is_ok())
    }
}

/// What the rules want for one source user on this target.
struct Desired<'s> {
    source: &'s SourceUser,
    username: String,
    email: Option<String>,
    display_name: Option<String>,
    attributes: BTreeMap<String, String>,
    /// target groups (sorted ids, one reason each)
    groups: Vec<(u32, GroupReason<'s>)>,
}

/// Accumulates operations and warnings; warnings of one kind are folded into one line.
struct Builder<'a> {
    target: &'a str,
    ops: Vec<PlannedOperation>,
    warnings: Vec<String>,
    folded: BTreeMap<&'static str, (usize, String)>,
}

impl<'a> Builder<'a> {
    fn op(&mut self, op: Operation, reason: impl Into<String>, source_id: Option<&str>) {
        self.ops.push(PlannedOperation {
            target: self.target.to_owned(),
            op,
            reason: reason.into(),
            source_id: source_id.map(str::to_owned),
        });
    }

    fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// A warning that may apply to many users: reported once with a count and an example.
    fn warn_folded(&mut self, what: &'static str, example: String) {
        let entry = self.folded.entry(what).or_insert((0, example));
        entry.0 += 1;
    }

    fn finish(mut self) -> (Vec<PlannedOperation>, Vec<String>) {
        for (what, (count, example)) in std::mem::take(&mut self.folded) {
            self.warnings
                .push(format!("{what}: {count} user(s), e.g. {example}"));
        }
        // Plan order: by kind. The sort is stable, so within a kind operations keep the order
        // they were planned in (source users by object id), which is deterministic; comparing
        // names instead would cost more than the rest of a 100k-user plan.
        self.ops.sort_by_key(|o| o.op.kind());
        (self.ops, self.warnings)
    }
}

/// Plans one target for one app.
pub fn plan(input: &PlanInput<'_>) -> TargetPlan {
    let caps = input.capabilities;
    let rules = &input.users.config;
    let group_rules = &input.groups.config;
    let mut index = GroupIndex::default();
    let actual = Actual::new(input.actual, &mut index);
    let mut b = Builder {
        target: input.target,
        ops: Vec::new(),
        warnings: Vec::new(),
        folded: BTreeMap::new(),
    };

    // Links: whose is each account, and which account is each of our source users.
    let owner_of_key: HashMap<&str, &Link> =
        input.links.iter().map(|l| (l.key.as_str(), l)).collect();
    let my_links: BTreeMap<&str, &Link> = input
        .links
        .iter()
        .filter(|l| l.app == input.app)
        .map(|l| (l.source_id.as_str(), l))
        .collect();
    let mut dropped_links = Vec::new();
    let mut adoptions = Vec::new();
    let mut claimed = Vec::new();

    // Group mapping → the target groups each source group (with its nested groups) feeds.
    let (mappings, mapping_warnings) = input.groups.resolve(input.snapshot);
    for w in mapping_warnings {
        b.warn(w);
    }
    let mut direct_targets: HashMap<&str, Vec<(u32, GroupReason<'_>)>> = HashMap::new();
    for m in &mappings {
        for t in &m.targets {
            let id = index.intern(t);
            let name = index.name_mut(id);
            name.mapped = true;
            name.may_create |= m.create_missing;
            direct_targets
                .entry(m.source_id.as_str())
                .or_default()
                .push((id, GroupReason::SourceGroup(m.source_name.as_str())));
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
    let group_targets: HashMap<&str, Vec<(u32, GroupReason<'_>)>> = if input.nested_groups {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
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
        direct_targets
    };
    let mut user_targets: HashMap<&str, Vec<(u32, GroupReason<'_>)>> = HashMap::new();
    for (group_id, targets) in &group_targets {
        if let Some(group) = input.snapshot.groups.get(*group_id) {
            for user in &group.user_members {
                user_targets
                    .entry(user.as_str())
                    .or_default()
                    .extend(targets.iter().copied());
            }
        }
    }

    // Desired users, one per username (first by source id wins; the other is reported).
    let mut desired: Vec<Desired<'_>> = Vec::with_capacity(input.snapshot.users.len());
    let mut seen_usernames: HashMap<String, &str> = HashMap::new();
    for user in input.snapshot.users.values() {
        let Some(username) = input.users.username(user) else {
            b.warn_folded(
                "skipped: the username attribute is empty",
                format!("source user {}", user.id),
            );
            continue;
        };
        if let Some(first) = seen_usernames.get(&lower(&username)) {
            b.warn(format!(
                "skipped source user {}: username {username:?} is already produced by source user {first}",
                user.id
            ));
            continue;
        }
        seen_usernames.insert(lower(&username), user.id.as_str());
        let mut groups = user_targets.remove(user.id.as_str()).unwrap_or_default();
        groups.extend(
            all_user_defaults
                .iter()
                .map(|id| (*id, GroupReason::AllUsers)),
        );
        // Stable sort, then the first reason of each group is kept.
        groups.sort_by_key(|(id, _)| *id);
        groups.dedup_by_key(|(id, _)| *id);
        let display_name = input
            .users
            .display_name(user)
            .or_else(|| Some(username.clone()));
        desired.push(Desired {
            email: input.users.email(user),
            display_name,
            attributes: input.users.custom_attributes(user),
            groups,
            username,
            source: user,
        });
    }

    if !rules.custom_attributes.is_empty() && !caps.custom_attributes {
        b.warn(format!(
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

    let mut managed_of: HashMap<&str, Vec<u32>> = HashMap::new();
    for (group, key) in input.managed_memberships {
        if let Some(id) = index.ids.get(group) {
            managed_of.entry(key.as_str()).or_default().push(*id);
        }
    }
    for ids in managed_of.values_mut() {
        ids.sort_unstable();
    }
    let enforce = group_rules.memberships == idsync_config::MembershipPolicy::Enforce;
    let ctx = Ctx {
        input,
        actual,
        index,
        managed_of,
    };
    let actual = &ctx.actual;

    let mut managed_users = 0usize;
    let mut in_scope_ids: BTreeSet<&str> = BTreeSet::new();

    for d in &desired {
        let src = d.source;
        in_scope_ids.insert(src.id.as_str());
        // Which account is this user?
        let mut account: Option<&TargetUser> = None;
        if let Some(link) = my_links.get(src.id.as_str()) {
            match actual.by_key.get(link.key.as_str()) {
                Some(a) => account = Some(a),
                None => dropped_links.push((*link).clone()),
            }
        }
        if account.is_none() {
            let mut candidate = None;
            for by in &rules.adopt_by {
                let found = match by {
                    AdoptBy::Username => actual.by_username.get(&lower(&d.username)),
                    AdoptBy::Email => d
                        .email
                        .as_ref()
                        .and_then(|e| actual.by_email.get(&lower(e))),
                };
                if let Some(found) = found {
                    candidate = Some((*found, *by));
                    break;
                }
            }
            if let Some((found, by)) = candidate {
                match owner_of_key.get(found.key.as_str()) {
                    Some(owner) if owner.app != input.app => {
                        b.warn(format!(
                            "skipped {:?}: account {:?} is managed by app {:?} (first owner wins)",
                            d.username, found.username, owner.app
                        ));
                        continue;
                    }
                    Some(owner) if owner.source_id != src.id => {
                        b.warn(format!(
                            "skipped {:?}: account {:?} is linked to another source user ({})",
                            d.username, found.username, owner.source_id
                        ));
                        continue;
                    }
                    _ => {
                        let how = match by {
                            AdoptBy::Username => "same username",
                            AdoptBy::Email => "same email",
                        };
                        adoptions.push(Adoption {
                            source_id: src.id.clone(),
                            key: found.key.clone(),
                            user: found.username.clone(),
                            reason: format!("existing account adopted ({how})"),
                        });
                        account = Some(found);
                    }
                }
            }
        }

        let Some(account) = account else {
            // No account yet.
            if !src.enabled {
                continue;
            }
            if !rules.create {
                b.warn_folded(
                    "not created because users.create = false",
                    format!("{:?}", d.username),
                );
                continue;
            }
            if let Some(taken) = actual.by_username.get(&lower(&d.username)) {
                let owner = owner_of_key
                    .get(taken.key.as_str())
                    .map(|l| format!("managed by app {:?}", l.app))
                    .unwrap_or_else(|| "not adoptable under users.adopt_by".to_owned());
                b.warn(format!(
                    "skipped {:?}: an account with that username exists ({owner})",
                    d.username
                ));
                continue;
            }
            let attributes = if caps.custom_attributes {
                d.attributes.clone()
            } else {
                BTreeMap::new()
            };
            b.op(
                Operation::CreateUser {
                    user: d.username.clone(),
                    email: d.email.clone(),
                    display_name: d.display_name.clone(),
                    attributes,
                    external_id: Some(src.id.clone()),
                },
                "in scope at the source, no account yet",
                Some(&src.id),
            );
            let mut groups = d.groups.clone();
            groups.extend(
                new_user_defaults
                    .iter()
                    .map(|id| (*id, GroupReason::NewUsers)),
            );
            groups.sort_by_key(|(id, _)| *id);
            groups.dedup_by_key(|(id, _)| *id);
            for (group, reason) in groups {
                let Some(spelled) = need_group(&mut needed, &ctx.index, group) else {
                    b.warn_folded(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        format!("{:?}", ctx.index.name(group).spelling),
                    );
                    continue;
                };
                b.op(
                    Operation::AddMembership {
                        group: spelled,
                        // The key is only known once the account exists; the executor fills it.
                        key: String::new(),
                        user: d.username.clone(),
                    },
                    reason.text(),
                    Some(&src.id),
                );
            }
            continue;
        };

        managed_users += 1;
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
                    b.warn_folded(
                        "not reactivated because users.reactivate = false",
                        format!("{:?}", account.username),
                    );
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
                    account,
                    rules.on_disable,
                    "disabled at the source",
                    Some(&src.id),
                );
            } else if rules.strip_groups_on_deprovision {
                strip_memberships(&mut b, &ctx, account, "disabled at the source");
            }
            false
        };

        // Rename (the link follows the object id, so a UPN change is a rename, not a new user).
        let mut username = account.username.clone();
        if lower(&account.username) != lower(&d.username) {
            if !rules.rename {
                b.warn_folded(
                    "not renamed because users.rename = false",
                    format!("{:?} → {:?}", account.username, d.username),
                );
            } else if !caps.rename_user {
                b.warn_folded(
                    "not renamed: this product cannot rename users",
                    format!("{:?} → {:?}", account.username, d.username),
                );
            } else if let Some(other) = actual.by_username.get(&lower(&d.username)) {
                b.warn(format!(
                    "cannot rename {:?} to {:?}: another account ({}) has that username",
                    account.username, d.username, other.key
                ));
            } else {
                b.op(
                    Operation::RenameUser {
                        key: key.to_owned(),
                        user: account.username.clone(),
                        new_username: d.username.clone(),
                    },
                    "username attribute changed at the source",
                    Some(&src.id),
                );
                username = d.username.clone();
            }
        }

        if rules.update {
            let mut changes = UserChanges::default();
            // A target that does not report e-mail addresses (Confluence's REST API never
            // does) gives `None`: nothing to compare with, so no update every run.
            if caps.update_email
                && d.email.is_some()
                && account.email.is_some()
                && d.email.as_deref().map(lower) != account.email.as_deref().map(lower)
            {
                changes.email = d.email.clone();
            }
            if caps.update_display_name
                && d.display_name.is_some()
                && d.display_name != account.display_name
            {
                changes.display_name = d.display_name.clone();
            }
            if !changes.is_empty() {
                b.op(
                    Operation::UpdateUser {
                        key: key.to_owned(),
                        user: username.clone(),
                        changes,
                    },
                    "details changed at the source",
                    Some(&src.id),
                );
            }
            if caps.custom_attributes {
                for name in rules.custom_attributes.keys() {
                    let want = d.attributes.get(name);
                    if want != account.attributes.get(name) {
                        b.op(
                            Operation::SetAttribute {
                                key: key.to_owned(),
                                user: username.clone(),
                                name: name.clone(),
                                value: want.cloned(),
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
            let current = actual.groups_of(key);
            for (group, reason) in &d.groups {
                if current.binary_search(group).is_ok() {
                    // Already as desired: from now on this app manages it.
                    if !ctx.manages(key, *group) {
                        claimed.push((ctx.index.name(*group).lower.clone(), key.to_owned()));
                    }
                    continue;
                }
                let Some(spelled) = need_group(&mut needed, &ctx.index, *group) else {
                    b.warn_folded(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        format!("{:?}", ctx.index.name(*group).spelling),
                    );
                    continue;
                };
                b.op(
                    Operation::AddMembership {
                        group: spelled,
                        key: key.to_owned(),
                        user: username.clone(),
                    },
                    reason.text(),
                    Some(&src.id),
                );
            }
            // Removals: memberships we manage that the rules no longer want, and under
            // `enforce`, any membership of this account in a group we map.
            for group in current {
                if d.groups.binary_search_by_key(group, |(id, _)| *id).is_ok() {
                    continue;
                }
                let name = ctx.index.name(*group);
                // A default group for new users is a one-time placement: the rules do not
                // want it on later runs, yet it must not be taken away.
                let managed = ctx.manages(key, *group) && !name.new_user_default;
                let enforced = enforce && name.mapped;
                if managed || enforced {
                    b.op(
                        Operation::RemoveMembership {
                            group: name.spelling.clone(),
                            key: key.to_owned(),
                            user: username.clone(),
                        },
                        if managed {
                            "no longer in a source group mapped to this group"
                        } else {
                            "not in the mapped source group (memberships = enforce)"
                        },
                        Some(&src.id),
                    );
                }
            }
        }
    }

    // Accounts of ours whose source user has left the scope (or was deleted at the source).
    for link in my_links.values() {
        if in_scope_ids.contains(link.source_id.as_str()) {
            continue;
        }
        let Some(account) = actual.by_key.get(link.key.as_str()) else {
            dropped_links.push((*link).clone());
            continue;
        };
        managed_users += 1;
        if account.active || rules.on_leave == LeaveAction::Delete {
            deprovision(
                &mut b,
                &ctx,
                account,
                rules.on_leave,
                "no longer in scope at the source",
                Some(&link.source_id),
            );
        } else if rules.strip_groups_on_deprovision {
            strip_memberships(&mut b, &ctx, account, "no longer in scope at the source");
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

    let (mut operations, mut warnings) = b.finish();
    if !input.source_complete {
        let before = operations.len();
        operations.retain(|o| !o.op.kind().is_removal());
        let held = before - operations.len();
        if held > 0 {
            warnings.push(format!(
                "the source read was incomplete: {held} removal(s) and deprovisioning(s) held back until a complete read"
            ));
        }
    }
    dropped_links.sort();
    dropped_links.dedup();
    TargetPlan {
        target: input.target.to_owned(),
        operations,
        adoptions,
        claimed_memberships: claimed,
        dropped_links,
        warnings,
        managed_users,
    }
}

/// Records that a group must exist and returns how to spell it, or `None` when it is missing
/// and may not be created.
fn need_group(needed: &mut [bool], index: &GroupIndex, group: u32) -> Option<String> {
    let name = index.name(group);
    if !name.on_target {
        if !name.may_create {
            return None;
        }
        needed[group as usize] = true;
    }
    Some(name.spelling.clone())
}

/// Plans taking access away from one of our accounts, as `action` says and the target can.
fn deprovision(
    b: &mut Builder<'_>,
    ctx: &Ctx<'_>,
    account: &TargetUser,
    action: LeaveAction,
    why: &str,
    source_id: Option<&str>,
) {
    let input = ctx.input;
    let rules = &input.users.config;
    let caps = input.capabilities;
    let delete = match action {
        LeaveAction::Keep => return,
        LeaveAction::Delete => {
            if !rules.delete {
                b.warn_folded(
                    "not deleted because users.delete = false",
                    format!("{:?}", account.username),
                );
                return;
            }
            if !caps.delete_user {
                b.warn_folded(
                    "not deleted: this product cannot delete users",
                    format!("{:?}", account.username),
                );
                return;
            }
            true
        }
        LeaveAction::Deactivate => {
            if !rules.deactivate {
                b.warn_folded(
                    "not deactivated because users.deactivate = false",
                    format!("{:?}", account.username),
                );
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
        for lead in &input.actual.leads {
            if lower(&lead.lead) != lower(&account.username) {
                continue;
            }
            let default = match lead.kind {
                LeadKind::Project => rules.default_project_lead.as_ref(),
                LeadKind::Component => rules.default_component_lead.as_ref(),
            };
            match default {
                Some(new_lead) if lower(new_lead) != lower(&account.username) => {
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
                "cannot deprovision {:?} ({why}): they lead project {} ({}); set users.default_project_lead",
                account.username, lead.id, lead.name
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
        strip_memberships(b, ctx, account, why);
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
    b.op(op, why, source_id);
}

/// Removes the memberships this app manages for an account being deprovisioned.
fn strip_memberships(b: &mut Builder<'_>, ctx: &Ctx<'_>, account: &TargetUser, why: &str) {
    for group in ctx.actual.groups_of(&account.key) {
        if ctx.manages(&account.key, *group) {
            b.op(
                Operation::RemoveMembership {
                    group: ctx.index.name(*group).spelling.clone(),
                    key: account.key.clone(),
                    user: account.username.clone(),
                },
                format!("{why} (users.strip_groups_on_deprovision)"),
                None,
            );
        }
    }
}
