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
