//! The mass-change guard: a plan that would deactivate or delete more people, or remove more
//! memberships, than the app's limits allow, or that comes from a source read that found nobody
//! in scope, is held for approval instead of applied.
//!
//! The limits count people, not accounts: one person leaving with accounts on four targets is
//! one deprovision (an account linked to no source user counts alone). An approval covers
//! exactly what the held plan named (accounts by target and key, memberships by target, group
//! and key), not a number: a later plan that removes other things is judged on those alone.

use std::collections::{BTreeMap, BTreeSet};

use idsync_config::GuardConfig;
use serde::{Deserialize, Serialize};

// What a held plan names is kept by the store with the run: in the model, so that the store
// stands without the engine.
pub use idsync_model::held::{Deprovision, Held, MembershipRemoval};

/// Why a plan is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// People deprovisioned (on any of the app's targets) not covered by an approval.
    pub deprovisions: usize,
    /// People the app manages an account of, on any of its targets.
    pub managed_users: usize,
    /// Membership removals not covered by an approval (those of accounts the plan deprovisions
    /// are left out: the deprovision limits judge those).
    #[serde(default)]
    pub membership_removals: usize,
    /// Memberships the app manages, over its targets.
    #[serde(default)]
    pub managed_memberships: usize,
    /// The limit that was passed (or the empty read), with the numbers, in words for whoever
    /// approves.
    pub reason: String,
    /// What an approval of this run covers.
    #[serde(skip)]
    pub held: Held,
}

/// What the guard looks at.
#[derive(Debug, Clone, Copy)]
pub struct GuardInput<'a> {
    /// Every deactivation and deletion of the app's plans.
    pub deprovisions: &'a BTreeSet<Deprovision>,
    /// The source user (person) of each deprovisioned account; an account not here counts as
    /// a person of its own.
    pub people: &'a BTreeMap<Deprovision, String>,
    /// People the app manages an account of (distinct source users over all its targets).
    pub managed_people: usize,
    /// Every membership removal of the app's plans.
    pub membership_removals: &'a BTreeSet<MembershipRemoval>,
    /// Memberships the app manages, over all its targets.
    pub managed_memberships: usize,
    /// Users in scope in this run's source read, and in the last kept one (if any).
    pub users_in_scope: usize,
    /// Users in scope in the last kept read; `None` when there is none yet.
    pub previous_users_in_scope: Option<usize>,
    /// The approval this run applies with, if any.
    pub approved: Option<&'a Held>,
}

/// A source read that found nobody in scope where the last kept one found some: a directory
/// does not empty itself; a changed scope, a lost app assignment or a broken read does.
pub fn empty_source(input: &GuardInput<'_>) -> bool {
    input.users_in_scope == 0 && input.previous_users_in_scope.is_some_and(|n| n > 0)
}

/// `part` of `whole` in percent; all of nothing is 100%.
fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Checks the app's plans against its limits; `None` lets them through.
pub fn check(guard: &GuardConfig, input: &GuardInput<'_>) -> Option<Hold> {
    let approved = input.approved;
    let unapproved: BTreeSet<&Deprovision> = input
        .deprovisions
        .iter()
        .filter(|d| !approved.is_some_and(|a| a.accounts.contains(*d)))
        .collect();
    // People, not accounts: one leaver with accounts on four targets is one.
    let people: BTreeSet<(bool, String)> = unapproved
        .iter()
        .map(|d| match input.people.get(*d) {
            Some(id) => (true, id.clone()),
            None => (false, format!("{}\u{0}{}", d.0, d.1)),
        })
        .collect();
    // A deprovisioned account's memberships are the deprovision's business, not counted twice.
    let removals = input
        .membership_removals
        .iter()
        .filter(|(target, _, key)| !input.deprovisions.contains(&(target.clone(), key.clone())))
        .filter(|m| !approved.is_some_and(|a| a.memberships.contains(*m)))
        .count();
    let empty = empty_source(input) && !approved.is_some_and(|a| a.empty_source);
    let deprovisions = people.len();
    let managed_users = input.managed_people;
    let managed_memberships = input.managed_memberships;
    let deprovision_percent = percent(deprovisions, managed_users);
    let removal_percent = percent(removals, managed_memberships);
    let reason = if empty {
        format!(
            "the source read found no users in scope, where the last one found {}: check the app's scope and the source before approving",
            input.previous_users_in_scope.unwrap_or_default()
        )
    } else if deprovisions > 0 && deprovisions as u64 > guard.max_deprovision_count {
        format!(
            "{deprovisions} people to deactivate/delete exceed guard.max_deprovision_count = {}",
            guard.max_deprovision_count
        )
    } else if deprovisions > 0 && deprovision_percent > guard.max_deprovision_percent {
        format!(
            "{deprovisions} people to deactivate/delete are {deprovision_percent:.1}% of the {managed_users} people with managed accounts, over guard.max_deprovision_percent = {}",
            guard.max_deprovision_percent
        )
    } else if removals > 0 && removals as u64 > guard.max_membership_removal_count {
        format!(
            "{removals} membership removals exceed guard.max_membership_removal_count = {}",
            guard.max_membership_removal_count
        )
    } else if removals > 0 && removal_percent > guard.max_membership_removal_percent {
        format!(
            "{removals} membership removals are {removal_percent:.1}% of {managed_memberships} managed memberships, over guard.max_membership_removal_percent = {}",
            guard.max_membership_removal_percent
        )
    } else {
        return None;
    };
    Some(Hold {
        deprovisions,
        managed_users,
        membership_removals: removals,
        managed_memberships,
        reason,
        held: Held {
            accounts: input.deprovisions.clone(),
            empty_source: empty_source(input),
            memberships: input.membership_removals.clone(),
        },
    })
}

/// A note when the source shrank by more than the guard's limits since the last kept read
/// (without emptying, which [`check`] holds): worth a look even when nothing is deprovisioned.
pub fn shrink_note(guard: &GuardConfig, input: &GuardInput<'_>) -> Option<String> {
    let previous = input.previous_users_in_scope?;
    let lost = previous.checked_sub(input.users_in_scope)?;
    if lost == 0 || input.users_in_scope == 0 {
        return None;
    }
    let percent = lost as f64 * 100.0 / previous as f64;
    (lost as u64 > guard.max_deprovision_count || percent > guard.max_deprovision_percent).then(
        || {
            format!(
                "suspicious source read: {} users in scope, {lost} ({percent:.1}%) fewer than the last read; if that is not expected, check the app's scope",
                input.users_in_scope
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(n: usize) -> BTreeSet<Deprovision> {
        (0..n)
            .map(|i| ("jira".to_owned(), format!("k{i}")))
            .collect()
    }

    fn input<'a>(
        deprovisions: &'a BTreeSet<Deprovision>,
        managed_users: usize,
        approved: Option<&'a Held>,
    ) -> GuardInput<'a> {
        GuardInput {
            deprovisions,
            // Each account a person of its own, as before people were counted.
            people: Box::leak(Box::default()),
            managed_people: managed_users,
            membership_removals: Box::leak(Box::default()),
            managed_memberships: 0,
            users_in_scope: managed_users,
            previous_users_in_scope: Some(managed_users),
            approved,
        }
    }

    fn guard() -> GuardConfig {
        GuardConfig {
            max_deprovision_percent: 5.0,
            max_deprovision_count: 50,
            ..GuardConfig::default()
        }
    }

    #[test]
    fn holds_over_either_limit() {
        let g = guard();
        assert!(check(&g, &input(&accounts(0), 1000, None)).is_none());
        assert!(
            check(&g, &input(&accounts(50), 1000, None)).is_none(),
            "exactly 5% and 50 is allowed"
        );
        assert!(
            check(&g, &input(&accounts(51), 10_000, None)).is_some(),
            "over the count"
        );
        assert!(
            check(&g, &input(&accounts(6), 100, None)).is_some(),
            "over the percentage"
        );
    }

    #[test]
    fn an_approval_covers_the_accounts_it_names_and_no_others() {
        let g = guard();
        let held = check(&g, &input(&accounts(6), 100, None)).expect("held");
        assert_eq!(held.held.accounts, accounts(6));
        // The same accounts: through.
        assert!(check(&g, &input(&accounts(6), 100, Some(&held.held))).is_none());
        // Fewer of them: through.
        assert!(check(&g, &input(&accounts(3), 100, Some(&held.held))).is_none());
        // As many, but other accounts: judged on their own, and held.
        let others: BTreeSet<Deprovision> = (0..6)
            .map(|i| ("jira".to_owned(), format!("x{i}")))
            .collect();
        let again = check(&g, &input(&others, 100, Some(&held.held))).expect("others held");
        assert_eq!(again.deprovisions, 6);
        // The approved ones plus a few others within the limits: through.
        let mut mixed = accounts(6);
        mixed.insert(("jira".to_owned(), "x0".to_owned()));
        assert!(check(&g, &input(&mixed, 100, Some(&held.held))).is_none());
    }

    #[test]
    fn an_empty_source_is_held_even_with_nothing_to_deprovision() {
        let g = guard();
        let none = accounts(0);
        let mut empty = input(&none, 0, None);
        empty.users_in_scope = 0;
        empty.previous_users_in_scope = Some(2000);
        let hold = check(&g, &empty).expect("held");
        assert!(hold.reason.contains("no users in scope"), "{}", hold.reason);
        assert!(hold.held.empty_source);
        // Approved: through.
        empty.approved = Some(&hold.held);
        assert!(check(&g, &empty).is_none());
        // A first read that finds nobody has nothing to compare with.
        empty.approved = None;
        empty.previous_users_in_scope = None;
        assert!(check(&g, &empty).is_none());
    }

    #[test]
    fn a_drastic_shrink_is_noted() {
        let g = guard();
        let none = accounts(0);
        let mut shrunk = input(&none, 100, None);
        shrunk.users_in_scope = 100;
        shrunk.previous_users_in_scope = Some(2000);
        assert!(shrink_note(&g, &shrunk).is_some_and(|n| n.contains("1900")));
        shrunk.users_in_scope = 1990;
        assert!(shrink_note(&g, &shrunk).is_none(), "0.5% fewer is ordinary");
    }

    #[test]
    fn people_are_counted_not_accounts() {
        let g = GuardConfig {
            max_deprovision_percent: 100.0,
            max_deprovision_count: 10,
            ..GuardConfig::default()
        };
        // Three people leaving, each with an account on four targets: 12 accounts, 3 people.
        let mut deprovisions = BTreeSet::new();
        let mut people = BTreeMap::new();
        for target in ["jira", "confluence", "bitbucket", "cloud"] {
            for p in 0..3 {
                let d = (target.to_owned(), format!("{target}-k{p}"));
                people.insert(d.clone(), format!("person{p}"));
                deprovisions.insert(d);
            }
        }
        let mut i = input(&deprovisions, 100, None);
        i.people = &people;
        assert!(check(&g, &i).is_none(), "3 people are within a count of 10");
        // The percentage is of people too: 3 of 20 people is 15%, over 10%.
        let g10 = GuardConfig {
            max_deprovision_percent: 10.0,
            max_deprovision_count: 10,
            ..GuardConfig::default()
        };
        i.managed_people = 20;
        let hold = check(&g10, &i).expect("15% of people");
        assert_eq!((hold.deprovisions, hold.managed_users), (3, 20));
        assert_eq!(hold.held.accounts.len(), 12, "approval names every account");
        // An account linked to nobody counts alone.
        let mut more = deprovisions.clone();
        for k in 0..8 {
            more.insert(("jira".to_owned(), format!("orphan{k}")));
        }
        let mut i = input(&more, 1000, None);
        i.people = &people;
        let hold = check(&g, &i).expect("3 people and 8 accounts of nobody are 11");
        assert_eq!(hold.deprovisions, 11);
    }

    fn removals(n: usize) -> BTreeSet<MembershipRemoval> {
        (0..n)
            .map(|i| ("jira".to_owned(), "devs".to_owned(), format!("k{i}")))
            .collect()
    }

    #[test]
    fn mass_membership_removals_are_held_and_approved_by_name() {
        let g = GuardConfig {
            max_membership_removal_percent: 10.0,
            max_membership_removal_count: 50,
            ..guard()
        };
        let none = accounts(0);
        let within = removals(10);
        let mut i = input(&none, 100, None);
        i.membership_removals = &within;
        i.managed_memberships = 100;
        assert!(check(&g, &i).is_none(), "10 of 100 is 10%: allowed");
        let over = removals(11);
        i.membership_removals = &over;
        let hold = check(&g, &i).expect("11%");
        assert!(
            hold.reason.contains("max_membership_removal_percent"),
            "{}",
            hold.reason
        );
        assert_eq!(hold.membership_removals, 11);
        assert_eq!(hold.held.memberships, over);
        // Approved: these through, others judged on their own.
        i.approved = Some(&hold.held);
        assert!(check(&g, &i).is_none());
        let others: BTreeSet<MembershipRemoval> = (0..11)
            .map(|k| ("jira".to_owned(), "ops".to_owned(), format!("k{k}")))
            .collect();
        i.membership_removals = &others;
        assert!(check(&g, &i).is_some(), "another group's removals");
        // The count holds whatever the percentage.
        let many = removals(51);
        let mut i = input(&none, 100, None);
        i.membership_removals = &many;
        i.managed_memberships = 100_000;
        let hold = check(&g, &i).expect("over the count");
        assert!(
            hold.reason.contains("max_membership_removal_count = 50"),
            "{}",
            hold.reason
        );
    }

    #[test]
    fn memberships_of_deprovisioned_accounts_are_left_to_the_deprovision_limits() {
        let g = GuardConfig {
            max_membership_removal_percent: 10.0,
            ..guard()
        };
        let gone = accounts(2);
        let stripped: BTreeSet<MembershipRemoval> = gone
            .iter()
            .flat_map(|(t, k)| ["devs", "ops", "qa"].map(|g| (t.clone(), g.to_owned(), k.clone())))
            .collect();
        let mut i = input(&gone, 100, None);
        i.membership_removals = &stripped;
        i.managed_memberships = 20;
        assert!(check(&g, &i).is_none(), "6 of 20 removals, all of leavers");
    }
}
