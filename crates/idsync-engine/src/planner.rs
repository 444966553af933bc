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
//!
//! [`plan`] runs in phases, one module each, which pass a `Planning` (what the plan holds so
//! far) along and read a `Ctx` (the input and its indexes):
//! 1. `index`: the target's groups and accounts as indexes (`Ctx`);
//! 2. `wanted`: what the rules want: the target groups each source user belongs in;
//! 3. `identify`: each user's username (and who holds one two users produce) and account:
//!    through this app's link, or adopted;
//! 4. `account`: that account created, reactivated or deprovisioned, renamed, updated;
//! 5. `memberships`: its memberships added, claimed or removed, missing groups created;
//! 6. `deprovision`: accounts of users gone from the scope, and taking access away;
//! 7. `withhold`: what the product's version cannot do is left out, with a warning.
//!
//! Every phase plans into the `builder`, which puts operations in plan order and folds warnings.

mod account;
mod builder;
mod deprovision;
#[cfg(test)]
mod fixture;
mod identify;
mod index;
mod memberships;
mod text;
mod wanted;
mod withhold;

use std::collections::HashMap;

use idsync_model::{
    ActualState, Capabilities, OperationKind, PlannedOperation, SourceSnapshot, SourceUser,
};
use serde::{Deserialize, Serialize};

use crate::rules::{CompiledGroupRules, CompiledUserRules};
use builder::Builder;
use identify::{Identity, Usernames};
use idsync_model::managed::ManagedMemberships;
use index::{Actual, Ctx, GroupIndex};
use text::concat;
use wanted::Wanted;

// Plain data the store keeps too: in the model, so that the store stands without the engine.
pub use idsync_model::link::{Link, ManagedMembership};

/// An existing account taken under management by this app on its first sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// The source user the account now serves (Entra object id).
    pub source_id: String,
    /// The account's key on the target.
    pub key: String,
    /// The account's username on the target.
    pub user: String,
    /// How it was matched (same username or same e-mail), for the plan and the history.
    pub reason: String,
    /// The username the rules give, when the account keeps its own (see
    /// [`Link::kept_username`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_username: Option<String>,
}

/// Everything the planner looks at for one (app, target) pair.
pub struct PlanInput<'a> {
    /// The app's name: links and managed memberships are per app.
    pub app: &'a str,
    /// The target's configured name, put on every operation.
    pub target: &'a str,
    /// What the target can do (at the version found), so that the plan leaves out what it cannot.
    pub capabilities: &'a Capabilities,
    /// Users in scope and every group read.
    pub snapshot: &'a SourceSnapshot,
    /// False when the source read was cut short: then nothing is removed or deprovisioned.
    pub source_complete: bool,
    /// What the target holds now.
    pub actual: &'a ActualState,
    /// Links of every app on this target (other apps' links protect their accounts).
    pub links: &'a [Link],
    /// Memberships this app manages on this target.
    pub managed_memberships: &'a ManagedMemberships,
    /// The app's user rules, compiled for this target ([`CompiledUserRules::for_target`]).
    pub users: &'a CompiledUserRules,
    /// The app's group rules, compiled.
    pub groups: &'a CompiledGroupRules,
    /// Members of groups nested in a mapped group count as its members (the app's `nested_groups`).
    pub nested_groups: bool,
}

/// The plan for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetPlan {
    /// The target's configured name.
    pub target: String,
    /// What to do, in the order it must be done (see [`OperationKind`]).
    pub operations: Vec<PlannedOperation>,
    /// Existing accounts this plan takes under management.
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
    /// What the plan leaves out or works around, and why, for the admin to read.
    pub warnings: Vec<String>,
    /// Accounts this app manages on the target (links kept plus adoptions), for the guard.
    pub managed_users: usize,
}

impl TargetPlan {
    /// Operations of one kind in the plan (nothing in the workspace calls it today).
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

/// A hash map for the plan's own indexes (ids, keys and names of one directory), with
/// foldhash's fast hasher: SipHash, std's default, was a large part of a 100k-user plan, and its
/// resistance to crafted collisions buys little here, where every key comes from the customer's
/// own directory and targets. A fixed seed: no plan depends on the order of a map, and a run is
/// the same from one time to the next.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub(crate) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}

/// Plans one target for one app.
pub fn plan(input: &PlanInput<'_>) -> TargetPlan {
    let strings = Strings::of(input);
    let (ctx, mut wanted, mut p) = prepare(input, &strings);
    let mut usernames = Usernames::new(&ctx, &p.my_links);
    for (position, src) in ctx.input.snapshot.users.values().enumerate() {
        plan_user(&ctx, &mut wanted, &mut usernames, &mut p, position, src);
    }
    deprovision::gone(&ctx, &mut p);
    memberships::create_needed_groups(&ctx, &mut p);
    p.finish(&ctx, wanted)
}

/// Plans one source user: which account is theirs, what becomes of it, and its memberships.
fn plan_user<'a>(
    ctx: &Ctx<'a>,
    wanted: &mut Wanted<'a>,
    usernames: &mut Usernames<'a>,
    p: &mut Planning<'a>,
    position: usize,
    src: &'a SourceUser,
) {
    let Some(user) = usernames.take(ctx, p, position, src) else {
        return;
    };
    let groups = wanted.of_user(position, &src.id);
    match identify::account_of(ctx, p, &user) {
        Identity::Skipped => {}
        Identity::NoAccount => {
            if account::create(ctx, p, &user) {
                let groups = wanted.of_new_user();
                memberships::of_new_account(ctx, p, &user, groups);
            }
        }
        Identity::Found(found) => {
            p.managed_users += 1;
            let active = account::activity(ctx, p, &user, found.id);
            let renamed = account::rename(ctx, p, &user, &found);
            if ctx.rules().update {
                account::update(ctx, p, &user, found.id, renamed);
            }
            if active {
                memberships::of_account(ctx, p, &user, found.id, renamed, groups);
            }
        }
    }
}

/// The strings the indexes borrow their keys from (see [`text::concat`]).
struct Strings {
    account_keys: String,
    source_ids: String,
}

impl Strings {
    fn of(input: &PlanInput<'_>) -> Self {
        Strings {
            account_keys: concat(input.actual.users.iter().map(|u| u.key.as_str())),
            source_ids: concat(input.snapshot.users.values().map(|u| u.id.as_str())),
        }
    }
}

/// The indexes (the target's groups first, then those the rules name), what the rules want,
/// and an empty plan.
fn prepare<'a>(
    input: &'a PlanInput<'a>,
    strings: &'a Strings,
) -> (Ctx<'a>, Wanted<'a>, Planning<'a>) {
    let mut index = GroupIndex::default();
    let actual = Actual::new(
        input.actual,
        &strings.account_keys,
        input.managed_memberships,
        &mut index,
    );
    let wanted = Wanted::new(input, &strings.source_ids, &mut index);
    let needed = wanted.needed(&index, input.groups.config.import_groups);
    let ctx = Ctx::new(input, actual, index);
    let p = Planning::new(input, needed);
    (ctx, wanted, p)
}

/// The plan as the phases make it: what each decides, passed on to the next.
struct Planning<'a> {
    b: Builder<'a>,
    /// Links of this app, by source id (a source id linked twice: the last link listed wins),
    /// each with whether its source user is still in scope. The other apps' links are only
    /// looked at (through [`Ctx::owner_of_key`]) when an account is about to be adopted or
    /// created.
    my_links: FastMap<&'a str, (&'a Link, bool)>,
    /// Target groups the plan must create if they are missing (by group id).
    needed: Vec<bool>,
    adoptions: Vec<Adoption>,
    claimed: Vec<ManagedMembership>,
    dropped_links: Vec<Link>,
    rename_reports: Vec<Link>,
    /// Users skipped for their username: warned of after the mapping's warnings, before the
    /// builder's.
    username_warnings: Vec<String>,
    managed_users: usize,
}

impl<'a> Planning<'a> {
    fn new(input: &'a PlanInput<'a>, needed: Vec<bool>) -> Self {
        let mut my_links: FastMap<&str, (&Link, bool)> = fast_map(input.links.len());
        for l in input.links.iter().filter(|l| l.app == input.app) {
            my_links.insert(l.source_id.as_str(), (l, false));
        }
        Planning {
            b: Builder::new(input.target),
            my_links,
            needed,
            adoptions: Vec::new(),
            claimed: Vec::new(),
            dropped_links: Vec::new(),
            rename_reports: Vec::new(),
            username_warnings: Vec::new(),
            managed_users: 0,
        }
    }

    /// The plan: operations in plan order (held back when the source read was incomplete, and
    /// withheld when the product cannot do them), and the warnings in order: the mapping's,
    /// the users skipped for their username, the custom attributes', then those of planning.
    fn finish(mut self, ctx: &Ctx<'a>, wanted: Wanted<'a>) -> TargetPlan {
        let (input, rules) = (ctx.input, ctx.rules());
        let mut warnings = wanted.mapping_warnings;
        warnings.append(&mut self.username_warnings);
        if !rules.custom_attributes.is_empty() && !input.capabilities.custom_attributes {
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
            self.b
                .finish(&ctx.index, &wanted.source_reasons, input.source_complete);
        warnings.append(&mut planned_warnings);
        let operations =
            withhold::withhold_unavailable(operations, input.capabilities, &mut warnings);
        if held > 0 {
            warnings.push(format!(
                "the source read was incomplete: {held} removal(s) and deprovisioning(s) held back until a complete read"
            ));
        }
        self.dropped_links.sort();
        self.dropped_links.dedup();
        TargetPlan {
            target: input.target.to_owned(),
            operations,
            adoptions: self.adoptions,
            claimed_memberships: self.claimed,
            dropped_links: self.dropped_links,
            rename_reports: self.rename_reports,
            warnings,
            managed_users: self.managed_users,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use idsync_config::{ManualMapping, MappingMode};

    use super::fixture::Fixture;
    use super::*;

    #[test]
    fn warnings_come_mapping_first_then_usernames_custom_attributes_and_planning() {
        let mut fx = Fixture::new()
            .source_user("u1", "ada", true)
            .source_user("u2", "ada", true)
            .source_user("u3", "bob", true)
            .account("K9", "gone", true)
            .link("corp", "u9", "K9", "gone")
            .user_rules(|u| {
                u.create = false;
                u.custom_attributes = BTreeMap::from([("dept".into(), "department".into())]);
            })
            .group_rules(|g| {
                g.mapping = MappingMode::Manual;
                g.manual = vec![ManualMapping {
                    source: "missing".into(),
                    targets: vec!["eng".into()],
                }];
            });
        fx.caps.custom_attributes = false;
        fx.source_complete = false;
        let p = plan(&fx.input());
        let starts: Vec<&str> = p
            .warnings
            .iter()
            .map(|w| w.split([':', ' ']).next().unwrap_or_default())
            .collect();
        assert_eq!(
            starts,
            ["groups.manual[0]", "skipped", "jira", "not", "the"],
            "{:#?}",
            p.warnings
        );
        assert!(p.warnings[3].starts_with("not created because users.create = false: 2 user(s)"));
        assert!(p.warnings[4].contains("1 removal(s) and deprovisioning(s) held back"));
        assert!(p.operations.is_empty());
        assert_eq!(p.managed_users, 1);
    }

    #[test]
    fn the_targets_groups_are_interned_before_those_the_rules_name() {
        let fx = Fixture::new()
            .account("K1", "ada", true)
            .member("Zeta", "K1")
            .group_rules(|g| g.default_groups_all_users = vec!["alpha".into(), "ZETA".into()]);
        fx.phases(|ctx, wanted, _| {
            let names: Vec<&str> = ctx
                .index
                .names
                .iter()
                .map(|n| n.spelling.as_str())
                .collect();
            assert_eq!(names, ["Zeta", "alpha"]);
            assert_eq!(wanted.all_user_defaults, [1, 0]);
        });
    }
}
