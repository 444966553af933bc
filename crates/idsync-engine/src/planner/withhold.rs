//! The last phase: operations the product cannot do at the version it runs are withheld, each
//! kind said once in a warning (with the version it needs).

use std::collections::BTreeMap;

use idsync_model::{Capabilities, Operation, OperationKind, PlannedOperation};

/// Operations the product cannot do at the version it runs are not sent: each kind is said
/// once, with why (the version it needs) and how many; the memberships of accounts that cannot
/// be created go with them.
pub(super) fn withhold_unavailable(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(unavailable: BTreeMap<OperationKind, String>) -> Capabilities {
        Capabilities {
            bulk_membership: false,
            leads: false,
            unavailable,
            ..Capabilities::FULL
        }
    }

    fn planned(op: Operation) -> PlannedOperation {
        PlannedOperation {
            target: "confluence".into(),
            op,
            reason: String::new(),
            source_id: None,
        }
    }

    #[test]
    fn each_kind_withheld_is_one_warning_and_memberships_of_accounts_not_created_go_too() {
        let create = |user: &str| {
            planned(Operation::CreateUser {
                user: user.into(),
                email: None,
                display_name: None,
                attributes: BTreeMap::new(),
                external_id: None,
            })
        };
        let join = |key: &str| {
            planned(Operation::AddMembership {
                group: "eng".into(),
                key: key.into(),
                user: "ada".into(),
            })
        };
        let old_version = caps(BTreeMap::from([(
            OperationKind::CreateUser,
            "needs version 8.4".to_owned(),
        )]));
        let mut warnings = Vec::new();
        let kept = withhold_unavailable(
            vec![create("ada"), create("bob"), join(""), join("K1")],
            &old_version,
            &mut warnings,
        );
        assert_eq!(kept, [join("K1")]);
        assert_eq!(
            warnings,
            ["not sent: needs version 8.4: 2 create_user operation(s), e.g. \"ada\""]
        );
        // A product that can do everything keeps everything.
        let all = vec![create("ada"), join("")];
        assert_eq!(
            withhold_unavailable(all.clone(), &caps(BTreeMap::new()), &mut warnings),
            all
        );
    }
}
