//! The mass-change guard: a plan that would deactivate or delete more accounts than the app's
//! threshold allows, or that comes from a source read that found nobody in scope, is held for
//! approval instead of applied.
//!
//! An approval covers exactly what the held plan named (by target and account key), not a
//! number: a later plan that deprovisions other accounts is judged on those alone.

use std::collections::BTreeSet;

use idsync_config::GuardConfig;
use serde::{Deserialize, Serialize};

/// An account a plan deactivates or deletes: (target, account key).
pub type Deprovision = (String, String);

/// What a held plan needs approved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub accounts: BTreeSet<Deprovision>,
    /// The source read found nobody in scope where the last kept read found some.
    pub empty_source: bool,
}

/// Why a plan is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// Deprovisions not covered by an approval.
    pub deprovisions: usize,
    pub managed_users: usize,
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
    pub managed_users: usize,
    /// Users in scope in this run's source read, and in the last kept one (if any).
    pub users_in_scope: usize,
    pub previous_users_in_scope: Option<usize>,
    /// The approval this run applies with, if any.
    pub approved: Option<&'a Held>,
}

/// A source read that found nobody in scope where the last kept one found some: a directory
/// does not empty itself; a changed scope, a lost app assignment or a broken read does.
pub fn empty_source(input: &GuardInput<'_>) -> bool {
    input.users_in_scope == 0 && input.previous_users_in_scope.is_some_and(|n| n > 0)
}

/// Checks the app's plans against its limits; `None` lets them through.
pub fn check(guard: &GuardConfig, input: &GuardInput<'_>) -> Option<Hold> {
    let approved = input.approved;
    let unapproved: BTreeSet<Deprovision> = input
        .deprovisions
        .iter()
        .filter(|d| !approved.is_some_and(|a| a.accounts.contains(*d)))
        .cloned()
        .collect();
    let empty = empty_source(input) && !approved.is_some_and(|a| a.empty_source);
    let deprovisions = unapproved.len();
    let managed_users = input.managed_users;
    let count = deprovisions as u64;
    let percent = if managed_users == 0 {
        100.0
    } else {
        deprovisions as f64 * 100.0 / managed_users as f64
    };
    let reason = if empty {
        format!(
            "the source read found no users in scope, where the last one found {}: check the app's scope and the source before approving",
            input.previous_users_in_scope.unwrap_or_default()
        )
    } else if deprovisions == 0 {
        return None;
    } else if count > guard.max_deprovision_count {
        format!(
            "{deprovisions} deactivations/deletions exceed guard.max_deprovision_count = {}",
            guard.max_deprovision_count
        )
    } else if percent > guard.max_deprovision_percent {
        format!(
            "{deprovisions} deactivations/deletions are {percent:.1}% of {managed_users} managed accounts, over guard.max_deprovision_percent = {}",
            guard.max_deprovision_percent
        )
    } else {
        return None;
    };
    Some(Hold {
        deprovisions,
        managed_users,
        reason,
        held: Held {
            accounts: input.deprovisions.clone(),
            empty_source: empty_source(input),
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
            managed_users,
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
}
