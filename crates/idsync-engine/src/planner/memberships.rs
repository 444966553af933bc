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
