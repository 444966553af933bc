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

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Indexes over the actual state, built once per plan.
struct Actual<'a> {
    by_key: HashMap<&'a str, &'a TargetUser>,
    by_username: HashMap<String, &'a TargetUser>,
    by_email: HashMap<String, &'a TargetUser>,
    /// lower-case group name → spelling on the target
    groups: HashMap<String, &'a str>,
    /// lower-case group name → member keys
    members: HashMap<String, &'a BTreeSet<String>>,
    /// account key → lower-case groups it is in
    groups_of: HashMap<&'a str, BTreeSet<String>>,
}

impl<'a> Actual<'a> {
    fn new(state: &'a ActualState) -> Self {
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
        let mut groups_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
        let mut members = HashMap::new();
        for (group, keys) in &state.memberships {
            let g = lower(group);
            for key in keys {
                groups_of.entry(key.as_str()).or_default().insert(g.clone());
            }
            members.insert(g, keys);
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
            groups: state
                .groups
                .iter()
                .map(|g| (lower(g), g.as_str()))
                .collect(),
            members,
            groups_of,
        }
    }

    fn is_member(&self, group_lower: &str, key: &str) -> bool {
        self.members
            .get(group_lower)
            .is_some_and(|m| m.contains(key))
    }
}

/// What the rules want for one source user on this target.
struct Desired<'s> {
    source: &'s SourceUser,
    username: String,
    email: Option<String>,
    display_name: Option<String>,
    attributes: BTreeMap<String, String>,
    /// target group (as spelled by the mapping) → reason
    groups: BTreeMap<String, String>,
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
        // Plan order: by kind, then by user and group for a stable, readable listing.
        self.ops.sort_by(|a, b| {
            (a.op.kind(), a.op.user(), a.op.group()).cmp(&(b.op.kind(), b.op.user(), b.op.group()))
        });
        (self.ops, self.warnings)
    }
}

/// Plans one target for one app.
pub fn plan(input: &PlanInput<'_>) -> TargetPlan {
    let caps = input.capabilities;
    let rules = &input.users.config;
    let actual = Actual::new(input.actual);
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

    // Group mapping → which target groups each source user belongs in.
    let (mappings, mapping_warnings) = input.groups.resolve(input.snapshot);
    for w in mapping_warnings {
        b.warn(w);
    }
    let mut targets_of_source_group: HashMap<&str, Vec<(&str, &str, bool)>> = HashMap::new();
    // lower-case name → (spelling, may be created)
    let mut mapped_groups: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for m in &mappings {
        for t in &m.targets {
            targets_of_source_group
                .entry(m.source_id.as_str())
                .or_default()
                .push((t.as_str(), m.source_name.as_str(), m.create_missing));
            let e = mapped_groups
                .entry(lower(t))
                .or_insert_with(|| (t.clone(), m.create_missing));
            e.1 |= m.create_missing;
        }
    }
    let group_rules = &input.groups.config;
    let new_user_groups: BTreeSet<String> = group_rules
        .default_groups_new_users
        .iter()
        .map(|g| lower(g))
        .collect();
    let mut default_groups: BTreeMap<String, String> = BTreeMap::new();
    for g in &group_rules.default_groups_all_users {
        default_groups.insert(lower(g), g.clone());
    }
    let user_group_ids: HashMap<&str, BTreeSet<&str>> = if input.nested_groups {
        input.snapshot.transitive_groups_of_users()
    } else {
        let mut direct: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for g in input.snapshot.groups.values() {
            for u in &g.user_members {
                direct.entry(u.as_str()).or_default().insert(g.id.as_str());
            }
        }
        direct
    };

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
        let mut groups = BTreeMap::new();
        if let Some(ids) = user_group_ids.get(user.id.as_str()) {
            for id in ids {
                for (target, source_name, _) in
                    targets_of_source_group.get(id).into_iter().flatten()
                {
                    groups
                        .entry((*target).to_owned())
                        .or_insert_with(|| format!("member of source group {source_name:?}"));
                }
            }
        }
        for g in default_groups.values() {
            groups
                .entry(g.clone())
                .or_insert_with(|| "default group for all users".to_owned());
        }
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

    // Target groups every membership will need.
    let mut needed_groups: BTreeMap<String, (String, bool)> = BTreeMap::new();
    if group_rules.import_groups {
        needed_groups.extend(mapped_groups.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (k, v) in &default_groups {
        needed_groups.insert(k.clone(), (v.clone(), true));
    }
    for g in &group_rules.default_groups_new_users {
        needed_groups.insert(lower(g), (g.clone(), true));
    }

    let mut managed_users = 0usize;
    let mut in_scope_ids: BTreeSet<&str> = BTreeSet::new();
    // Memberships the rules want, per account key, lower-case group names.
    let mut wanted_memberships: HashMap<String, BTreeSet<String>> = HashMap::new();

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
            for g in &group_rules.default_groups_new_users {
                groups
                    .entry(g.clone())
                    .or_insert_with(|| "default group for new users".to_owned());
            }
            for (group, reason) in groups {
                let spelled = need_group(&mut needed_groups, &mapped_groups, &actual, &group);
                let Some(spelled) = spelled else {
                    b.warn_folded(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        format!("{group:?}"),
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
                    reason,
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
                    input,
                    &actual,
                    account,
                    rules.on_disable,
                    "disabled at the source",
                    Some(&src.id),
                );
            } else if rules.strip_groups_on_deprovision {
                strip_memberships(&mut b, input, &actual, account, "disabled at the source");
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
            if caps.update_email
                && d.email.is_some()
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
            let wanted = wanted_memberships.entry(key.to_owned()).or_default();
            for (group, reason) in &d.groups {
                let g = lower(group);
                wanted.insert(g.clone());
                if actual.is_member(&g, key) {
                    claimed.push((g, key.to_owned()));
                    continue;
                }
                let Some(spelled) = need_group(&mut needed_groups, &mapped_groups, &actual, group)
                else {
                    b.warn_folded(
                        "membership skipped: target group missing and on_the_fly.create_missing = false",
                        format!("{group:?}"),
                    );
                    continue;
                };
                b.op(
                    Operation::AddMembership {
                        group: spelled,
                        key: key.to_owned(),
                        user: username.clone(),
                    },
                    reason.clone(),
                    Some(&src.id),
                );
            }
            // Removals: memberships we manage that the rules no longer want, and under
            // `enforce`, any membership of this account in a group we map.
            let enforce = group_rules.memberships == idsync_config::MembershipPolicy::Enforce;
            if let Some(current) = actual.groups_of.get(key) {
                for g in current {
                    if wanted.contains(g) {
                        continue;
                    }
                    // A default group for new users is a one-time placement: the rules
                    // do not want it on later runs, yet it must not be taken away.
                    let managed = input
                        .managed_memberships
                        .contains(&(g.clone(), key.to_owned()))
                        && !new_user_groups.contains(g);
                    let enforced = enforce && mapped_groups.contains_key(g);
                    if managed || enforced {
                        let spelled = actual.groups.get(g).copied().unwrap_or(g).to_owned();
                        b.op(
                            Operation::RemoveMembership {
                                group: spelled,
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
                input,
                &actual,
                account,
                rules.on_leave,
                "no longer in scope at the source",
                Some(&link.source_id),
            );
        } else if rules.strip_groups_on_deprovision {
            strip_memberships(
                &mut b,
                input,
                &actual,
                account,
                "no longer in scope at the source",
            );
        }
    }
    managed_users += adoptions.len();

    for (g, (spelled, may_create)) in &needed_groups {
        if actual.groups.contains_key(g) {
            continue;
        }
        if *may_create {
            b.op(
                Operation::CreateGroup {
                    group: spelled.clone(),
                },
                if mapped_groups.contains_key(g) {
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

/// Records that `group` must exist and returns how to spell it, or `None` when it is missing
/// and may not be created.
fn need_group(
    needed: &mut BTreeMap<String, (String, bool)>,
    mapped: &BTreeMap<String, (String, bool)>,
    actual: &Actual<'_>,
    group: &str,
) -> Option<String> {
    let g = lower(group);
    if let Some(existing) = actual.groups.get(&g) {
        return Some((*existing).to_owned());
    }
    // Default groups are created; mapped groups follow their mapping's create_missing.
    let may_create = mapped.get(&g).is_none_or(|(_, create)| *create);
    if !may_create {
        return None;
    }
    let entry = needed.entry(g).or_insert_with(|| (group.to_owned(), true));
    Some(entry.0.clone())
}

/// Plans taking access away from one of our accounts, as `action` says and the target can.
fn deprovision(
    b: &mut Builder<'_>,
    input: &PlanInput<'_>,
    actual: &Actual<'_>,
    account: &TargetUser,
    action: LeaveAction,
    why: &str,
    source_id: Option<&str>,
) {
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
        strip_memberships(b, input, actual, account, why);
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
fn strip_memberships(
    b: &mut Builder<'_>,
    input: &PlanInput<'_>,
    actual: &Actual<'_>,
    account: &TargetUser,
    why: &str,
) {
    let Some(groups) = actual.groups_of.get(account.key.as_str()) else {
        return;
    };
    for g in groups {
        if input
            .managed_memberships
            .contains(&(g.clone(), account.key.clone()))
        {
            b.op(
                Operation::RemoveMembership {
                    group: actual.groups.get(g).copied().unwrap_or(g).to_owned(),
                    key: account.key.clone(),
                    user: account.username.clone(),
                },
                format!("{why} (users.strip_groups_on_deprovision)"),
                None,
            );
        }
    }
}
