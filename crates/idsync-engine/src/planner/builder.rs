//! The builder every phase plans into: operations filed by kind, so that the plan comes out in
//! plan order without sorting; memberships kept small until the plan is complete; warnings of
//! one kind folded into one line with a count and an example.

use std::borrow::Cow;
use std::collections::BTreeMap;

use idsync_model::stored::as_index;
use idsync_model::{Operation, OperationKind, PlannedOperation};

use super::deprovision::Why;
use super::index::GroupIndex;
use super::wanted::GroupReason;

/// Why a membership is added or removed.
#[derive(Clone, Copy)]
pub(super) enum MembershipReason {
    Wanted(GroupReason),
    NoLongerMapped,
    Enforced,
    Stripped(Why),
}

/// The account a membership operation is about, shared by all of that user's memberships.
pub(super) struct Subject<'a> {
    pub(super) key: &'a str,
    pub(super) user: Cow<'a, str>,
    pub(super) source_id: Option<&'a str>,
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
pub(super) struct Builder<'a> {
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
    pub(super) fn new(target: &'a str) -> Self {
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

    pub(super) fn op(&mut self, op: Operation, reason: impl Into<String>, source_id: Option<&str>) {
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
    pub(super) fn subject(
        &mut self,
        made: &mut Option<u32>,
        make: impl FnOnce() -> Subject<'a>,
    ) -> u32 {
        *made.get_or_insert_with(|| {
            self.subjects.push(make());
            as_index(self.subjects.len() - 1)
        })
    }

    pub(super) fn add(&mut self, group: u32, subject: u32, reason: MembershipReason) {
        self.adds.push(Membership {
            group,
            subject,
            reason,
        });
    }

    pub(super) fn remove(&mut self, group: u32, subject: u32, reason: MembershipReason) {
        self.removes.push(Membership {
            group,
            subject,
            reason,
        });
    }

    pub(super) fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// A warning that may apply to many users: reported once with a count and the first
    /// example (made only for the first: the others would be thrown away).
    pub(super) fn warn_folded(&mut self, what: &'static str, example: impl FnOnce() -> String) {
        self.folded
            .entry(what)
            .or_insert_with(|| (0, example(), "user(s)"))
            .0 += 1;
    }

    /// As [`Builder::warn_folded`], counting memberships (the example names a user and a group).
    pub(super) fn warn_folded_memberships(
        &mut self,
        what: &'static str,
        example: impl FnOnce() -> String,
    ) {
        self.folded
            .entry(what)
            .or_insert_with(|| (0, example(), "membership(s)"))
            .0 += 1;
    }

    /// The operations in plan order (by kind; within a kind, in the order they were planned:
    /// source users by object id, which is deterministic), and the warnings. With
    /// `keep_removals` false, removals are left out and only counted.
    pub(super) fn finish(
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
    fn operations_come_in_plan_order_with_warnings_folded_and_removals_held_when_asked() {
        let mut index = GroupIndex::default();
        let eng = index.intern("Eng");
        let reasons = ["member of source group \"eng\"".to_owned()];
        for keep_removals in [true, false] {
            let mut b = Builder::new("jira");
            let deactivate = Operation::DeactivateUser {
                key: "K2".into(),
                user: "bob".into(),
            };
            b.op(deactivate.clone(), "gone", Some("u2"));
            let mut subject = None;
            let s = b.subject(&mut subject, || Subject {
                key: "K1",
                user: Cow::Borrowed("ada"),
                source_id: Some("u1"),
            });
            b.remove(eng, s, MembershipReason::NoLongerMapped);
            b.add(
                eng,
                s,
                MembershipReason::Wanted(GroupReason::SourceGroup(0)),
            );
            b.warn_folded("not renamed", || "\"ada\"".into());
            b.warn_folded("not renamed", || {
                unreachable!("only the first example is made")
            });
            b.warn("one of its own".into());
            let (ops, warnings, held) = b.finish(&index, &reasons, keep_removals);
            let add = PlannedOperation {
                target: "jira".into(),
                op: Operation::AddMembership {
                    group: "Eng".into(),
                    key: "K1".into(),
                    user: "ada".into(),
                },
                reason: reasons[0].clone(),
                source_id: Some("u1".into()),
            };
            assert_eq!(ops[0], add);
            if keep_removals {
                assert_eq!(held, 0);
                assert!(matches!(ops[1].op, Operation::RemoveMembership { .. }));
                assert_eq!(ops[2].op, deactivate);
            } else {
                assert_eq!((ops.len(), held), (1, 2));
            }
            assert_eq!(
                warnings,
                ["one of its own", "not renamed: 2 user(s), e.g. \"ada\""]
            );
        }
    }
}
