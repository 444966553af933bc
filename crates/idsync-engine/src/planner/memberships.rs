//! Phase 5: memberships. A new account is put in the groups the rules want
//! ([`of_new_account`]); an existing one of ours gains what it lacks, and loses the memberships
//! this app manages that the rules no longer want ([`of_account`]). Target groups that are
//! needed and missing are created ([`create_needed_groups`]).

use std::borrow::Cow;

use idsync_model::Operation;

use super::Planning;
use super::builder::{MembershipReason, Subject};
use super::identify::User;
use super::index::{Ctx, GroupIndex};
use super::wanted::GroupReason;

const GROUP_MISSING: &str =
    "membership skipped: target group missing and on_the_fly.create_missing = false";

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

/// The memberships of an account whose creation is planned (its key is only known once it
/// exists: the executor fills it in).
pub(super) fn of_new_account<'a>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &User<'a>,
    groups: &[(u32, GroupReason)],
) {
    let username = &user.username;
    let mut subject = None;
    for (group, reason) in groups {
        if !need_group(&mut p.needed, &ctx.index, *group) {
            p.b.warn_folded_memberships(GROUP_MISSING, || {
                format!("{username:?} in {:?}", ctx.index.name(*group).spelling)
            });
            continue;
        }
        let s = p.b.subject(&mut subject, || Subject {
            key: "",
            user: Cow::Owned(username.clone()),
            source_id: Some(user.src.id.as_str()),
        });
        p.b.add(*group, s, MembershipReason::Wanted(*reason));
    }
}

/// The memberships of an existing account of ours that stays active: those the rules want and
/// it lacks are added; those it has are, under `enforce`, claimed; those this app manages that
/// the rules no longer want, and under `enforce` any other in a group it maps, are removed.
/// `renamed`: a rename of the account is planned, which comes first.
pub(super) fn of_account<'a>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &User<'a>,
    account_id: u32,
    renamed: bool,
    groups: &[(u32, GroupReason)],
) {
    let (index, enforce) = (&ctx.index, ctx.enforce());
    let account = ctx.actual.user(account_id);
    let (key, username) = (account.key.as_str(), &user.username);
    let current = ctx.actual.groups_of(account_id);
    let mut subject = None;
    let subject_of = || Subject {
        key,
        user: if renamed {
            Cow::Owned(username.clone())
        } else {
            Cow::Borrowed(account.username.as_str())
        },
        source_id: Some(user.src.id.as_str()),
    };
    for (group, reason) in groups {
        if let Ok(at) = current.binary_search_by_key(group, |(id, _)| *id) {
            // Already as desired. Under `enforce` this app decides the membership from now on,
            // so it becomes managed. Under `keep` it was there before idsync and stays someone
            // else's: only memberships idsync adds (recorded as they are sent) are ever
            // removed.
            if enforce && !current[at].1 {
                p.claimed
                    .push((index.name(*group).lower.clone(), key.to_owned()));
            }
            continue;
        }
        if !need_group(&mut p.needed, index, *group) {
            p.b.warn_folded_memberships(GROUP_MISSING, || {
                format!("{username:?} in {:?}", index.name(*group).spelling)
            });
            continue;
        }
        let s = p.b.subject(&mut subject, subject_of);
        p.b.add(*group, s, MembershipReason::Wanted(*reason));
    }
    for (group, managed) in current {
        if groups.binary_search_by_key(group, |(id, _)| *id).is_ok() {
            continue;
        }
        let name = index.name(*group);
        // A default group for new users is a one-time placement: the rules do not want it on
        // later runs, yet it must not be taken away.
        let managed = *managed && !name.new_user_default;
        let enforced = enforce && name.mapped;
        // The target of a mapping whose source group is missing: whether the user belongs
        // there is unknown (a renamed group would otherwise empty it).
        if name.unresolved {
            continue;
        }
        if managed || enforced {
            let s = p.b.subject(&mut subject, subject_of);
            let reason = if managed {
                MembershipReason::NoLongerMapped
            } else {
                MembershipReason::Enforced
            };
            p.b.remove(*group, s, reason);
        }
    }
}

/// Creates the target groups the plan needs that are missing and may be created.
pub(super) fn create_needed_groups(ctx: &Ctx<'_>, p: &mut Planning<'_>) {
    for (id, name) in ctx.index.names.iter().enumerate() {
        if p.needed[id] && !name.on_target && name.may_create {
            p.b.op(
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
}

#[cfg(test)]
mod tests {
    use idsync_config::{MappingMode, MembershipPolicy};

    use super::super::fixture::{Fixture, planned, user};
    use super::super::wanted::Wanted;
    use super::*;

    /// ada (K1, linked) is in source group eng, mapped on the fly; on the target she is in
    /// `eng` (not managed), `ops` (managed, no longer mapped) and `qa` (not managed).
    fn fixture(policy: MembershipPolicy) -> Fixture {
        Fixture::new()
            .source_user("u1", "ada", true)
            .source_group("g1", "eng", &["u1"])
            .source_group("g2", "qa", &[])
            .source_group("g3", "web", &["u1"])
            .account("K1", "ada", true)
            .link("corp", "u1", "K1", "ada")
            .member("eng", "K1")
            .member("ops", "K1")
            .member("qa", "K1")
            .managed("ops", "K1")
            .group_rules(|g| {
                g.mapping = MappingMode::OnTheFly;
                g.memberships = policy;
            })
    }

    /// What both policies plan for ada: `web` added, `ops` (managed) removed.
    const ADD_WEB: (bool, &str, &str) = (true, "web", "member of source group \"web\"");
    const REMOVE_OPS: (bool, &str, &str) = (
        false,
        "ops",
        "no longer in a source group mapped to this group",
    );

    /// Plans ada's memberships as her existing account's, with `fixture`'s wanted groups.
    fn ada<'a>(ctx: &Ctx<'a>, wanted: &mut Wanted<'a>, p: &mut Planning<'a>) {
        let ada = user(ctx, p, "u1");
        let groups = wanted.of_user(0, "u1").to_vec();
        of_account(ctx, p, &ada, 0, false, &groups);
    }

    /// (add or remove, group, reason) of each membership operation planned.
    fn memberships(ops: &[idsync_model::PlannedOperation]) -> Vec<(bool, &str, &str)> {
        ops.iter()
            .filter_map(|o| match &o.op {
                Operation::AddMembership { group, .. } => Some((true, group.as_str(), &*o.reason)),
                Operation::RemoveMembership { group, .. } => {
                    Some((false, group.as_str(), &*o.reason))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn keep_adds_what_is_missing_and_removes_only_what_this_app_manages() {
        fixture(MembershipPolicy::Keep).phases(|ctx, wanted, p| {
            ada(ctx, wanted, p);
            assert!(p.claimed.is_empty());
            create_needed_groups(ctx, p);
            let (ops, _) = planned(ctx, wanted, p);
            assert!(matches!(&ops[0].op, Operation::CreateGroup { group } if group == "web"));
            assert_eq!(memberships(&ops), [ADD_WEB, REMOVE_OPS]);
        });
    }

    #[test]
    fn enforce_claims_what_is_there_and_removes_any_other_in_a_mapped_group() {
        fixture(MembershipPolicy::Enforce).phases(|ctx, wanted, p| {
            ada(ctx, wanted, p);
            assert_eq!(p.claimed, [("eng".to_owned(), "K1".to_owned())]);
            let (ops, _) = planned(ctx, wanted, p);
            assert_eq!(
                memberships(&ops),
                [
                    ADD_WEB,
                    REMOVE_OPS,
                    (
                        false,
                        "qa",
                        "not in the mapped source group (memberships = enforce)"
                    ),
                ]
            );
        });
    }

    #[test]
    fn a_new_account_joins_its_groups_under_an_empty_key_unless_one_may_not_be_created() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .source_group("g1", "eng", &["u1"])
            .group_rules(|g| {
                g.mapping = MappingMode::OnTheFly;
                g.on_the_fly.create_missing = false;
                g.default_groups_new_users = vec!["newcomers".into()];
            });
        fx.phases(|ctx, wanted, p| {
            let ada = user(ctx, p, "u1");
            wanted.of_user(0, "u1");
            let groups = wanted.of_new_user().to_vec();
            of_new_account(ctx, p, &ada, &groups);
            let (ops, warnings) = planned(ctx, wanted, p);
            assert_eq!(
                ops.iter().map(|o| &o.op).collect::<Vec<_>>(),
                [&Operation::AddMembership {
                    group: "newcomers".into(),
                    key: String::new(),
                    user: "ada".into(),
                }]
            );
            assert_eq!(
                warnings,
                [format!(
                    "{GROUP_MISSING}: 1 membership(s), e.g. \"ada\" in \"eng\""
                )]
            );
        });
    }
}
