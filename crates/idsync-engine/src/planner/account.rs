//! Phase 4: what becomes of each user's account. One that does not exist yet is created
//! ([`create`]); one that does is reactivated or deprovisioned as the source user is enabled or
//! not ([`activity`]), renamed when the rules give another username ([`rename`]), and its
//! details and custom attributes brought in line ([`update`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use idsync_config::{AdoptBy, LeaveAction};
use idsync_model::{Operation, UserChanges};

use super::Link;
use super::Planning;
use super::deprovision::{Why, deprovision, strip_memberships};
use super::identify::{Found, User};
use super::index::Ctx;
use super::text::{lower, same_lower};

/// Plans an account for a user who has none: true when its creation is planned (else why not
/// is said, unless the user is disabled).
pub(super) fn create<'a>(ctx: &Ctx<'a>, p: &mut Planning<'a>, user: &User<'a>) -> bool {
    let (input, rules, caps) = (ctx.input, ctx.rules(), ctx.caps());
    let (src, username, email) = (user.src, &user.username, user.email);
    let b = &mut p.b;
    if !src.enabled {
        return false;
    }
    if let Some(holder) = user.name_held_by {
        p.username_warnings.push(format!(
            "skipped source user {}: its account is gone and username {username:?} belongs to source user {holder}; give one of them another username (users.username rules)",
            src.id
        ));
        return false;
    }
    if !rules.create {
        b.warn_folded("not created because users.create = false", || {
            format!("{username:?}")
        });
        return false;
    }
    if let Some(taken) = ctx.actual.by_username(&lower(username)) {
        let owner = ctx
            .owner_of_key(&ctx.actual.user(taken).key)
            .map(|l| format!("managed by app {:?}", l.app))
            .unwrap_or_else(|| "not adoptable under users.adopt_by".to_owned());
        b.warn(format!(
            "skipped {username:?}: an account with that username exists ({owner})"
        ));
        return false;
    }
    // A name the product refuses (Confluence: whitespace, \ , + < > ' ") is a problem of this
    // user, said here, never a 400 at apply time.
    if let Some(why) = input.users.username_refusal(username) {
        p.username_warnings.push(format!(
            "skipped source user {}: username {username:?} {why}; change the users.username rules (a replace, for example) so that it produces a name without it",
            src.id
        ));
        return false;
    }
    if caps.requires_email && email.is_none() {
        // The target refuses such a creation (Atlassian Cloud: 400 without a primary e-mail);
        // said here, per user, rather than as a failed request at apply time.
        b.warn(format!(
            "skipped {username:?}: source user {} has no e-mail address (users.email) and this target creates no account without one",
            src.id
        ));
        return false;
    }
    if !caps.reads_email && email.is_some() && rules.adopt_by.contains(&AdoptBy::Email) {
        // Said for every creation, so that no second account for a person whose existing
        // account has another username is made without a word.
        b.warn_folded(
            "created without adoption by e-mail: this product does not report e-mail addresses, so users.adopt_by \"email\" only finds accounts idsync itself sent an e-mail; an existing account of the same person under another username is not found (link it by giving it the username the rules give, then sync)",
            || format!("{username:?}"),
        );
    }
    let attributes = if caps.custom_attributes {
        input.users.custom_attributes(src)
    } else {
        BTreeMap::new()
    };
    b.op(
        Operation::CreateUser {
            user: username.clone(),
            email: email.map(str::to_owned),
            display_name: Some(user.display_name().to_owned()),
            attributes,
            external_id: Some(src.id.clone()),
        },
        match input.users.username_note() {
            Some(note) => format!("in scope at the source, no account yet ({note})"),
            None => "in scope at the source, no account yet".to_owned(),
        },
        Some(&src.id),
    );
    true
}

/// Reactivates the account of a user enabled at the source, deprovisions that of one disabled
/// there: whether the account is active once the plan is done.
pub(super) fn activity<'a>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &User<'a>,
    account_id: u32,
) -> bool {
    let rules = ctx.rules();
    let account = ctx.actual.user(account_id);
    let src = user.src;
    if !src.enabled {
        // An account already inactive is still deleted when the policy says delete.
        if account.active || rules.on_disable == LeaveAction::Delete {
            deprovision(
                &mut p.b,
                ctx,
                account_id,
                rules.on_disable,
                Why::Disabled,
                Some(&src.id),
            );
        } else if rules.strip_groups_on_deprovision {
            strip_memberships(&mut p.b, ctx, account_id, Why::Disabled);
        }
        return false;
    }
    if account.active {
        return true;
    }
    if !rules.reactivate {
        p.b.warn_folded("not reactivated because users.reactivate = false", || {
            format!("{:?}", account.username)
        });
        return false;
    }
    p.b.op(
        Operation::ReactivateUser {
            key: account.key.clone(),
            user: account.username.clone(),
        },
        "enabled at the source",
        Some(&src.id),
    );
    true
}

/// Renames the account when the rules give another username (the link follows the object id,
/// so a UPN change is a rename, not a new user): true when the rename is planned.
pub(super) fn rename<'a>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &User<'a>,
    found: &Found<'_>,
) -> bool {
    let (rules, caps) = (ctx.rules(), ctx.caps());
    let account = ctx.actual.user(found.id);
    let (username, b) = (&user.username, &mut p.b);
    // An adopted account keeps its own username while the rules give the one they gave at its
    // adoption (and the admin asked for that).
    let keeps_own_name = !rules.rename_adopted
        && found
            .kept_username
            .is_some_and(|kept| same_lower(kept, username));
    if same_lower(&account.username, username) || keeps_own_name {
        return false;
    }
    if let Some(holder) = user.name_held_by {
        b.warn(format!(
            "cannot rename {:?} to {:?}: source user {} produces that username too (and holds it); source user {} keeps account {:?}",
            account.username, username, holder, user.src.id, account.username
        ));
    } else if !rules.rename {
        b.warn_folded("not renamed because users.rename = false", || {
            format!("{:?} → {:?}", account.username, username)
        });
    } else if !caps.rename_user {
        // Reported once per account and wanted name, not on every run: nothing idsync can do
        // changes it, and the same warning every run buries the others.
        let wanted = lower(username);
        let reported = found
            .link
            .is_some_and(|l| l.rename_reported.as_deref() == Some(&*wanted));
        if !reported {
            b.warn_folded(
                "not renamed: this product cannot rename users (reported once; rename them in the product's user administration)",
                || format!("{:?} → {:?}", account.username, username),
            );
            if let Some(link) = found.link {
                p.rename_reports.push(Link {
                    rename_reported: Some(wanted.into_owned()),
                    ..link.clone()
                });
            }
        }
    } else if let Some(other) = ctx.actual.by_username(&lower(username)) {
        b.warn(format!(
            "cannot rename {:?} to {:?}: another account ({}) has that username",
            account.username,
            username,
            ctx.actual.user(other).key
        ));
    } else {
        b.op(
            Operation::RenameUser {
                key: account.key.clone(),
                user: account.username.clone(),
                new_username: username.clone(),
            },
            rename_reason(found, rules.rename_adopted),
            Some(&user.src.id),
        );
        return true;
    }
    false
}

fn rename_reason(found: &Found<'_>, rename_adopted: bool) -> &'static str {
    if found.adopted_by_email {
        "adopted by e-mail under another username: renamed to the one the users.username rules give (users.rename_adopted)"
    } else if found.kept_username.is_some() {
        if rename_adopted {
            "adopted under another username, kept while users.rename_adopted was false: renamed to the one the users.username rules give"
        } else {
            "username attribute changed at the source (the account had kept the username it was adopted with)"
        }
    } else {
        "username attribute changed at the source"
    }
}

/// Brings the account's e-mail, display name and custom attributes in line with the source
/// (`users.update`). `renamed`: a rename of it is planned, which comes first.
pub(super) fn update<'a>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &User<'a>,
    account_id: u32,
    renamed: bool,
) {
    let (rules, caps, b) = (ctx.rules(), ctx.caps(), &mut p.b);
    let account = ctx.actual.user(account_id);
    let (src, email, display_name) = (user.src, user.email, user.display_name());
    // The name the account has once the operations before a later one are done.
    let username_now: &str = if renamed {
        &user.username
    } else {
        &account.username
    };
    let mut changes = UserChanges::default();
    // A target that does not report e-mail addresses (Confluence's REST API never does) is
    // given, in `account.email`, the address idsync last sent it (the runner remembers them).
    // An account with none remembered (adopted, or created before idsync remembered them) is
    // sent the source's address once.
    let why_email = match (email, &account.email) {
        (Some(want), Some(has)) if !same_lower(want, has) => Some("details changed at the source"),
        (Some(_), None) if !caps.reads_email => Some(
            "e-mail set once: this product does not report e-mail addresses, and idsync has not sent this account one yet",
        ),
        _ => None,
    };
    if caps.update_email
        && let (Some(want), Some(_)) = (email, why_email)
    {
        changes.email = Some(want.to_owned());
    }
    if caps.update_display_name && account.display_name.as_deref() != Some(display_name) {
        changes.display_name = Some(display_name.to_owned());
    }
    if !changes.is_empty() {
        let details = "details changed at the source";
        let why: Cow<'static, str> = match why_email {
            Some(why) if changes.display_name.is_none() => why.into(),
            Some(why) if why != details => format!("{details}; {why}").into(),
            _ => details.into(),
        };
        b.op(
            Operation::UpdateUser {
                key: account.key.clone(),
                user: username_now.to_owned(),
                changes,
            },
            why,
            Some(&src.id),
        );
    }
    if caps.custom_attributes {
        for (name, source) in &rules.custom_attributes {
            let want = src.attr(source);
            if want != account.attributes.get(name).map(String::as_str) {
                b.op(
                    Operation::SetAttribute {
                        key: account.key.clone(),
                        user: username_now.to_owned(),
                        name: name.clone(),
                        value: want.map(str::to_owned),
                    },
                    "custom attribute changed at the source",
                    Some(&src.id),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, found, planned, user};
    use super::*;

    #[test]
    fn a_new_user_is_created_unless_an_unadoptable_account_has_the_username() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .source_user("u2", "bob", true)
            .account("K1", "ada", true)
            .user_rules(|u| u.adopt_by = vec![]);
        fx.phases(|ctx, wanted, p| {
            let ada = user(ctx, p, "u1");
            assert!(!create(ctx, p, &ada));
            let bob = user(ctx, p, "u2");
            assert!(create(ctx, p, &bob));
            let (ops, warnings) = planned(ctx, wanted, p);
            assert_eq!(
                ops[0].op,
                Operation::CreateUser {
                    user: "bob".into(),
                    email: Some("bob@mail.example".into()),
                    display_name: Some("bob".into()),
                    attributes: BTreeMap::new(),
                    external_id: Some("u2".into()),
                }
            );
            assert_eq!(
                warnings,
                ["skipped \"ada\": an account with that username exists (not adoptable under users.adopt_by)"]
            );
        });
    }

    #[test]
    fn a_disabled_user_is_deactivated_and_an_enabled_one_reactivated() {
        let fx = Fixture::new()
            .source_user("u1", "ada", false)
            .source_user("u2", "bob", true)
            .account("K1", "ada", true)
            .account("K2", "bob", false)
            .link("corp", "u1", "K1", "ada")
            .link("corp", "u2", "K2", "bob");
        fx.phases(|ctx, wanted, p| {
            let ada = user(ctx, p, "u1");
            assert!(!activity(ctx, p, &ada, 0));
            let bob = user(ctx, p, "u2");
            assert!(activity(ctx, p, &bob, 1));
            let (ops, _) = planned(ctx, wanted, p);
            let ops: Vec<(&Operation, &str)> =
                ops.iter().map(|o| (&o.op, o.reason.as_str())).collect();
            assert!(matches!(
                ops[..],
                [
                    (Operation::ReactivateUser { .. }, "enabled at the source"),
                    (Operation::DeactivateUser { .. }, "disabled at the source"),
                ]
            ));
        });
    }

    #[test]
    fn a_product_that_cannot_rename_says_so_once_per_wanted_name() {
        for reported in [None, Some("ada".to_owned())] {
            let mut fx = Fixture::new()
                .source_user("u1", "ada", true)
                .account("K1", "lovelace", true)
                .link("corp", "u1", "K1", "lovelace");
            fx.caps.rename_user = false;
            fx.links[0].rename_reported = reported.clone();
            fx.phases(|ctx, wanted, p| {
                let ada = user(ctx, p, "u1");
                let account = found(ctx, p, &ada);
                assert!(!rename(ctx, p, &ada, &account));
                let (_, warnings) = planned(ctx, wanted, p);
                let reports: Vec<Option<&str>> = p
                    .rename_reports
                    .iter()
                    .map(|l| l.rename_reported.as_deref())
                    .collect();
                if reported.is_none() {
                    assert_eq!(reports, [Some("ada")]);
                    assert!(warnings[0].starts_with("not renamed: this product cannot rename"));
                } else {
                    assert!(reports.is_empty() && warnings.is_empty());
                }
            });
        }
    }

    #[test]
    fn an_email_is_sent_once_to_a_product_that_does_not_report_them() {
        let mut fx = Fixture::new()
            .source_user("u1", "ada", true)
            .account("K1", "ada", true)
            .link("corp", "u1", "K1", "ada");
        fx.caps.reads_email = false;
        fx.actual.users[0].email = None;
        fx.phases(|ctx, wanted, p| {
            let ada = user(ctx, p, "u1");
            update(ctx, p, &ada, 0, false);
            let (ops, _) = planned(ctx, wanted, p);
            assert_eq!(ops.len(), 1);
            assert!(ops[0].reason.starts_with("e-mail set once"));
            let Operation::UpdateUser { changes, .. } = &ops[0].op else {
                panic!("{:?}", ops[0].op);
            };
            assert_eq!(changes.email.as_deref(), Some("ada@mail.example"));
            assert_eq!(changes.display_name, None);
        });
    }
}
