//! Taking access away: from an account whose source user is disabled (called by the account
//! phase), and, once every source user is planned, from the accounts of this app whose source
//! user has left the scope ([`gone`]).

use std::borrow::Cow;

use idsync_config::LeaveAction;
use idsync_model::{Deprovisioning, LeadKind, Operation};

use super::Link;
use super::Planning;
use super::builder::{Builder, MembershipReason, Subject};
use super::index::Ctx;
use super::text::same_lower;

/// Why an account is deprovisioned (and its memberships removed).
#[derive(Clone, Copy)]
pub(super) enum Why {
    Disabled,
    OutOfScope,
}

impl Why {
    pub(super) fn text(self) -> &'static str {
        match self {
            Why::Disabled => "disabled at the source",
            Why::OutOfScope => "no longer in scope at the source",
        }
    }

    pub(super) fn strip_text(self) -> &'static str {
        match self {
            Why::Disabled => "disabled at the source (users.strip_groups_on_deprovision)",
            Why::OutOfScope => {
                "no longer in scope at the source (users.strip_groups_on_deprovision)"
            }
        }
    }
}

/// Accounts of ours whose source user has left the scope (or was deleted at the source), by
/// source id: deprovisioned as `users.on_leave` says; a link whose account is gone is dropped.
/// Consumes [`Planning::my_links`].
pub(super) fn gone<'a>(ctx: &Ctx<'a>, p: &mut Planning<'a>) {
    let rules = ctx.rules();
    let mut gone: Vec<&Link> = std::mem::take(&mut p.my_links)
        .into_values()
        .filter(|(_, in_scope)| !in_scope)
        .map(|(link, _)| link)
        .collect();
    gone.sort_unstable_by(|a, b| a.source_id.cmp(&b.source_id));
    for link in gone {
        let Some(account_id) = ctx.actual.by_key(&link.key) else {
            p.dropped_links.push(link.clone());
            continue;
        };
        p.managed_users += 1;
        // Outside the scope as read, but possibly in it through a group whose members could
        // not be read: leaving cannot be told from being hidden, so nothing is done.
        if ctx.input.snapshot.maybe_in_scope.contains(&link.source_id) {
            p.b.warn_folded(
                "not deprovisioned: out of scope as read, but may be in it through a source group whose members cannot be read (hidden membership; the app needs Member.Read.Hidden)",
                || format!("{:?} (source user {})", link.username, link.source_id),
            );
            continue;
        }
        let account = ctx.actual.user(account_id);
        if account.active || rules.on_leave == LeaveAction::Delete {
            deprovision(
                &mut p.b,
                ctx,
                account_id,
                rules.on_leave,
                Why::OutOfScope,
                Some(&link.source_id),
            );
        } else if rules.strip_groups_on_deprovision {
            strip_memberships(&mut p.b, ctx, account_id, Why::OutOfScope);
        }
    }
}

/// Plans taking access away from one of our accounts, as `action` says and the target can.
pub(super) fn deprovision<'a>(
    b: &mut Builder<'a>,
    ctx: &Ctx<'a>,
    account_id: u32,
    action: LeaveAction,
    why: Why,
    source_id: Option<&str>,
) {
    let rules = ctx.rules();
    let caps = ctx.caps();
    let account = ctx.actual.user(account_id);
    let delete = match action {
        LeaveAction::Keep => return,
        LeaveAction::Delete => {
            if !rules.delete {
                b.warn_folded("not deleted because users.delete = false", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            if !caps.delete_user {
                b.warn_folded("not deleted: this product cannot delete users", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            true
        }
        LeaveAction::Deactivate => {
            if !rules.deactivate {
                b.warn_folded("not deactivated because users.deactivate = false", || {
                    format!("{:?}", account.username)
                });
                return;
            }
            // A product without deactivation deletes only when its target says so.
            matches!(caps.deprovisioning, Deprovisioning::Delete)
        }
    };
    if caps.leads && !hand_over_leads(b, ctx, account_id, why, source_id) {
        return;
    }
    if rules.strip_groups_on_deprovision && !delete {
        strip_memberships(b, ctx, account_id, why);
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
    b.op(op, why.text(), source_id);
}

/// Jira refuses to deactivate or delete a project lead: hands the account's leads over to the
/// default leads first. False (with a warning, and nothing planned) when a project it leads has
/// no one to take over.
fn hand_over_leads(
    b: &mut Builder<'_>,
    ctx: &Ctx<'_>,
    account_id: u32,
    why: Why,
    source_id: Option<&str>,
) -> bool {
    let rules = ctx.rules();
    let account = ctx.actual.user(account_id);
    let mut blocked = None;
    let mut handovers = Vec::new();
    for lead in ctx.leads_of(&account.username) {
        let lead = &ctx.input.actual.leads[*lead];
        let default = match lead.kind {
            LeadKind::Project => rules.default_project_lead.as_ref(),
            LeadKind::Component => rules.default_component_lead.as_ref(),
        };
        match default {
            Some(new_lead) if !same_lower(new_lead, &account.username) => {
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
            "cannot deprovision {:?} ({}): they lead project {} ({}); set users.default_project_lead",
            account.username,
            why.text(),
            lead.id,
            lead.name
        ));
        return false;
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
    true
}

/// Removes the memberships this app manages for an account being deprovisioned.
pub(super) fn strip_memberships<'a>(b: &mut Builder<'a>, ctx: &Ctx<'a>, account_id: u32, why: Why) {
    let account = ctx.actual.user(account_id);
    let mut subject = None;
    for (group, managed) in ctx.actual.groups_of(account_id) {
        if *managed {
            let s = b.subject(&mut subject, || Subject {
                key: &account.key,
                user: Cow::Borrowed(&account.username),
                source_id: None,
            });
            b.remove(*group, s, MembershipReason::Stripped(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use idsync_model::{Lead, PlannedOperation};

    use super::super::fixture::{Fixture, planned};
    use super::*;

    fn ops(ops: &[PlannedOperation]) -> Vec<&Operation> {
        ops.iter().map(|o| &o.op).collect()
    }

    #[test]
    fn users_gone_from_the_scope_are_deprovisioned_and_links_without_an_account_dropped() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .account("K2", "bob", true)
            .account("K3", "cy", false)
            .link("corp", "u2", "K2", "bob")
            .link("corp", "u3", "K3", "cy")
            .link("corp", "u4", "K4", "dee")
            .link("other", "u5", "K5", "eve")
            .member("eng", "K2")
            .member("eng", "K3")
            .managed("eng", "K2")
            .managed("eng", "K3")
            .user_rules(|u| u.strip_groups_on_deprovision = true);
        fx.phases(|ctx, wanted, p| {
            gone(ctx, p);
            assert!(p.my_links.is_empty());
            assert_eq!(p.managed_users, 2);
            let dropped: Vec<&str> = p.dropped_links.iter().map(|l| l.key.as_str()).collect();
            assert_eq!(dropped, ["K4"]);
            let (planned, _) = planned(ctx, wanted, p);
            let remove = |key: &str, user: &str| Operation::RemoveMembership {
                group: "eng".into(),
                key: key.into(),
                user: user.into(),
            };
            assert_eq!(
                ops(&planned),
                [
                    &remove("K2", "bob"),
                    &remove("K3", "cy"),
                    &Operation::DeactivateUser {
                        key: "K2".into(),
                        user: "bob".into(),
                    },
                ]
            );
            assert_eq!(
                planned[0].reason,
                "no longer in scope at the source (users.strip_groups_on_deprovision)"
            );
        });
    }

    #[test]
    fn a_project_lead_is_handed_over_first_and_without_a_new_lead_not_deprovisioned() {
        for default_lead in [Some("boss".to_owned()), None] {
            let mut fx = Fixture::new()
                .account("K1", "ada", true)
                .link("corp", "u1", "K1", "ada")
                .user_rules(|u| u.default_project_lead = default_lead.clone());
            fx.actual.leads.push(Lead {
                kind: LeadKind::Project,
                id: "P1".into(),
                name: "Project one".into(),
                lead: "ADA".into(),
            });
            fx.phases(|ctx, wanted, p| {
                gone(ctx, p);
                let (planned, warnings) = planned(ctx, wanted, p);
                if default_lead.is_some() {
                    assert!(warnings.is_empty());
                    assert!(matches!(
                        ops(&planned)[..],
                        [
                            Operation::HandOverLead { new_lead, .. },
                            Operation::DeactivateUser { .. },
                        ] if new_lead == "boss"
                    ));
                } else {
                    assert!(planned.is_empty());
                    assert_eq!(
                        warnings,
                        ["cannot deprovision \"ada\" (no longer in scope at the source): they lead project P1 (Project one); set users.default_project_lead"]
                    );
                }
            });
        }
    }
}
