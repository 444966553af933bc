//! The mass-change guard: a plan that would deactivate or delete more accounts than the app's
//! threshold allows is held for approval instead of applied.

use idsync_config::GuardConfig;
use serde::{Deserialize, Serialize};

/// Why a plan is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub deprovisions: usize,
    pub managed_users: usize,
    pub reason: String,
}

/// Checks a plan's deactivations + deletions against the app's limits. `approved` is how many
/// deprovisions an admin has approved for this run (0 when none).
pub fn check(
    guard: &GuardConfig,
    deprovisions: usize,
    managed_users: usize,
    approved: usize,
) -> Option<Hold> {
    if deprovisions == 0 || deprovisions <= approved {
        return None;
    }
    let count = deprovisions as u64;
    let percent = if managed_users == 0 {
        100.0
    } else {
        deprovisions as f64 * 100.0 / managed_users as f64
    };
    let reason = if count > guard.max_deprovision_count {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_over_either_limit() {
        let g = GuardConfig {
            max_deprovision_percent: 5.0,
            max_deprovision_count: 50,
        };
        assert!(check(&g, 0, 1000, 0).is_none());
        assert!(
            check(&g, 50, 1000, 0).is_none(),
            "exactly 5% and 50 is allowed"
        );
        assert!(check(&g, 51, 10_000, 0).is_some(), "over the count");
        assert!(check(&g, 6, 100, 0).is_some(), "over the percentage");
        assert!(check(&g, 6, 100, 6).is_none(), "approved");
        assert!(check(&g, 7, 100, 6).is_some(), "more than approved");
    }
}
