//! Phase 3: who is who. Each source user's username, and who holds a username two of them
//! produce, is settled before any user is planned ([`Usernames`]); then each user's account is
//! found through this app's link, or else adopted by username or e-mail ([`account_of`]).

use idsync_config::AdoptBy;
use idsync_model::SourceUser;
use idsync_model::stored::as_index;

use super::index::Ctx;
use super::text::{lower, same_lower};
use super::{Adoption, FastMap, Link, Planning, fast_map};

/// A source user being planned, with what the rules make of them.
pub(super) struct User<'a> {
    pub(super) src: &'a SourceUser,
    pub(super) username: String,
    /// Another source user holding this username; for a linked user, whose account stays
    /// theirs, it only stops a rename (or a creation) under that name.
    pub(super) name_held_by: Option<&'a str>,
    pub(super) email: Option<&'a str>,
    display_name: Option<&'a str>,
}

impl User<'_> {
    /// The display name the rules give, else the username.
    pub(super) fn display_name(&self) -> &str {
        self.display_name.unwrap_or(self.username.as_str())
    }
}

/// One username per target account. Who holds a username two source users produce is decided
/// before any user is planned, so that it does not depend on who comes first: a source user
/// this app has linked keeps it (a link is never taken from its owner: the newcomer would
/// otherwise take the name and the owner be deprovisioned as gone), the one linked under that
/// very username first; else the first by object id.
pub(super) struct Usernames<'a> {
    /// Each source user's username (by position in the snapshot), with the number of its entry
    /// in `holders`, so that planning a user looks its holder up by number, not by name.
    names: Vec<Option<(String, u32)>>,
    /// (the holder's id, its rank: 2 linked under this name, 1 linked, 0 not; whether planned
    /// yet)
    holders: Vec<(&'a str, u8, bool)>,
}

impl<'a> Usernames<'a> {
    pub(super) fn new(ctx: &Ctx<'a>, my_links: &FastMap<&'a str, (&'a Link, bool)>) -> Self {
        let input = ctx.input;
        let users_len = input.snapshot.users.len();
        let mut names: Vec<Option<(String, u32)>> = Vec::with_capacity(users_len);
        let mut holders: Vec<(&str, u8, bool)> = Vec::with_capacity(users_len);
        let mut holder_of: FastMap<String, u32> = fast_map(users_len);
        for src in input.snapshot.users.values() {
            let Some(username) = input.users.username(src) else {
                names.push(None);
                continue;
            };
            let rank = match my_links.get(src.id.as_str()) {
                Some((link, _)) if same_lower(&link.username, &username) => 2,
                Some(_) => 1,
                None => 0,
            };
            let slot = *holder_of
                .entry(lower(&username).into_owned())
                .or_insert_with(|| {
                    holders.push((src.id.as_str(), rank, false));
                    as_index(holders.len() - 1)
                });
            if let Some(holder) = holders.get_mut(slot as usize)
                && rank > holder.1
            {
                *holder = (src.id.as_str(), rank, false);
            }
            names.push(Some((username, slot)));
        }
        Usernames { names, holders }
    }

    /// The user at `position` in the snapshot, ready to be planned; `None` when they are not
    /// planned (with a warning): no username, or one another source user holds.
    pub(super) fn take(
        &mut self,
        ctx: &Ctx<'a>,
        p: &mut Planning<'a>,
        position: usize,
        src: &'a SourceUser,
    ) -> Option<User<'a>> {
        let Some((username, slot)) = self.names.get_mut(position).and_then(Option::take) else {
            // Still in scope: an account this user holds stays as it is (never deprovisioned
            // as "gone" for a blank attribute), and nothing else is planned for it.
            if let Some((_, in_scope)) = p.my_links.get_mut(src.id.as_str()) {
                *in_scope = true;
                p.b.warn_folded(
                    "left as it is: the username attribute is empty for a user whose account idsync manages (fill it, or change users.username)",
                    || format!("source user {}", src.id),
                );
            } else {
                p.b.warn_folded("skipped: the username attribute is empty", || {
                    format!("source user {}", src.id)
                });
            }
            return None;
        };
        let mut name_held_by: Option<&str> = None;
        if let Some(holder) = self.holders.get_mut(slot as usize) {
            if holder.0 == src.id && !holder.2 {
                holder.2 = true;
            } else if p.my_links.contains_key(src.id.as_str()) {
                name_held_by = Some(holder.0);
            } else {
                p.username_warnings.push(if holder.1 > 0 {
                    format!(
                        "skipped source user {}: username {username:?} belongs to source user {}, whose account idsync manages (a link is never taken from its owner); give one of them another username (users.username rules) or take {} out of scope",
                        src.id, holder.0, src.id
                    )
                } else {
                    format!(
                        "skipped source user {}: username {username:?} is already produced by source user {} (the first by object id gets it); give one of them another username (users.username rules)",
                        src.id, holder.0
                    )
                });
                return None;
            }
        }
        let users = &ctx.input.users;
        Some(User {
            src,
            email: users.email_str(src),
            display_name: users.display_name_str(src),
            username,
            name_held_by,
        })
    }
}

/// The account a source user has, and how it came to be theirs.
pub(super) struct Found<'u> {
    pub(super) id: u32,
    /// The username the rules gave when the account was adopted under its own, kept one
    /// (`users.rename_adopted = false`).
    pub(super) kept_username: Option<&'u str>,
    /// Adopted by e-mail in this run.
    pub(super) adopted_by_email: bool,
    /// This app's link to it, when it had one before this run.
    pub(super) link: Option<&'u Link>,
}

pub(super) enum Identity<'u> {
    Found(Found<'u>),
    NoAccount,
    /// The account that would be theirs belongs to someone else (with a warning).
    Skipped,
}

/// Which account is this user? This app's link says so; else an existing account is adopted,
/// as `users.adopt_by` says.
pub(super) fn account_of<'u, 'a: 'u>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &'u User<'a>,
) -> Identity<'u> {
    if let Some((link, in_scope)) = p.my_links.get_mut(user.src.id.as_str()) {
        *in_scope = true;
        match ctx.actual.by_key(&link.key) {
            Some(id) => {
                return Identity::Found(Found {
                    id,
                    kept_username: link.kept_username.as_deref(),
                    adopted_by_email: false,
                    link: Some(*link),
                });
            }
            None => p.dropped_links.push((*link).clone()),
        }
    }
    adopt(ctx, p, user)
}

/// An existing account taken under management, found by `users.adopt_by`, unless another app
/// or another source user owns it.
fn adopt<'u, 'a: 'u>(ctx: &Ctx<'a>, p: &mut Planning<'a>, user: &'u User<'a>) -> Identity<'u> {
    let (actual, src, username) = (&ctx.actual, user.src, &user.username);
    let rules = ctx.rules();
    let mut candidate = None;
    for by in &rules.adopt_by {
        let found = match by {
            AdoptBy::Username => actual.by_username(&lower(username)),
            AdoptBy::Email => user.email.and_then(|e| actual.by_email(&lower(e))),
        };
        if let Some(found) = found {
            candidate = Some((found, *by));
            break;
        }
    }
    let Some((found, by)) = candidate else {
        return Identity::NoAccount;
    };
    let found_user = actual.user(found);
    match ctx.owner_of_key(&found_user.key) {
        Some(owner) if owner.app != ctx.input.app => {
            p.b.warn(format!(
                "skipped {:?}: account {:?} is managed by app {:?} (first owner wins)",
                username, found_user.username, owner.app
            ));
            return Identity::Skipped;
        }
        Some(owner) if owner.source_id != src.id => {
            p.b.warn(format!(
                "skipped {:?}: account {:?} is linked to another source user ({})",
                username, found_user.username, owner.source_id
            ));
            return Identity::Skipped;
        }
        _ => {}
    }
    let how = match by {
        AdoptBy::Username => "existing account adopted (same username)",
        AdoptBy::Email => "existing account adopted (same email)",
    };
    let keeps_own_name = !rules.rename_adopted && !same_lower(&found_user.username, username);
    p.adoptions.push(Adoption {
        source_id: src.id.clone(),
        key: found_user.key.clone(),
        user: found_user.username.clone(),
        reason: if keeps_own_name {
            format!(
                "{how}; keeps its username instead of {username:?} (users.rename_adopted = false)"
            )
        } else {
            how.to_owned()
        },
        kept_username: keeps_own_name.then(|| username.clone()),
    });
    Identity::Found(Found {
        id: found,
        kept_username: keeps_own_name.then_some(username.as_str()),
        adopted_by_email: by == AdoptBy::Email,
        link: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    #[test]
    fn a_linked_user_keeps_its_username_against_a_newcomer_that_comes_first() {
        // u0 sorts first and produces the username u1's account is linked under.
        let fx = Fixture::new()
            .source_user("u0", "ada", true)
            .source_user("u1", "ada", true)
            .account("K1", "ada", true)
            .link("corp", "u1", "K1", "ada");
        fx.phases(|ctx, _, p| {
            let mut usernames = Usernames::new(ctx, &p.my_links);
            let users: Vec<&SourceUser> = ctx.input.snapshot.users.values().collect();
            assert!(usernames.take(ctx, p, 0, users[0]).is_none());
            assert!(p.username_warnings[0].contains("whose account idsync manages"));
            let u1 = usernames.take(ctx, p, 1, users[1]).expect("planned");
            assert_eq!((u1.username.as_str(), u1.name_held_by), ("ada", None));
        });
    }

    #[test]
    fn a_user_without_a_username_is_skipped_but_its_account_stays_in_scope() {
        let mut fx = Fixture::new()
            .source_user("u1", "ada", true)
            .account("K1", "ada", true)
            .link("corp", "u1", "K1", "ada");
        if let Some(u) = fx.snapshot.users.get_mut("u1") {
            u.attributes.remove("userPrincipalName");
        }
        fx.phases(|ctx, _, p| {
            let mut usernames = Usernames::new(ctx, &p.my_links);
            let src = &ctx.input.snapshot.users["u1"];
            assert!(usernames.take(ctx, p, 0, src).is_none());
            assert_eq!(
                p.my_links.get("u1").map(|(_, in_scope)| *in_scope),
                Some(true)
            );
        });
    }

    #[test]
    fn an_account_found_by_email_is_adopted_and_keeps_its_username_when_asked() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .account("K1", "lovelace", true)
            .user_rules(|u| {
                u.rename_adopted = false;
                u.adopt_by = vec![AdoptBy::Email];
            });
        let mut fx = fx;
        fx.actual.users[0].email = Some("Ada@mail.example".into());
        fx.phases(|ctx, _, p| {
            let mut usernames = Usernames::new(ctx, &p.my_links);
            let src = &ctx.input.snapshot.users["u1"];
            let user = usernames.take(ctx, p, 0, src).expect("planned");
            let Identity::Found(found) = account_of(ctx, p, &user) else {
                panic!("not adopted");
            };
            assert_eq!(found.id, 0);
            assert_eq!(found.kept_username, Some("ada"));
            assert!(found.adopted_by_email && found.link.is_none());
            assert_eq!(p.adoptions[0].kept_username.as_deref(), Some("ada"));
        });
    }

    #[test]
    fn an_account_another_app_owns_is_not_adopted() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .account("K1", "ada", true)
            .link("other", "x9", "K1", "ada");
        fx.phases(|ctx, _, p| {
            let mut usernames = Usernames::new(ctx, &p.my_links);
            let src = &ctx.input.snapshot.users["u1"];
            let user = usernames.take(ctx, p, 0, src).expect("planned");
            assert!(matches!(account_of(ctx, p, &user), Identity::Skipped));
            assert!(p.adoptions.is_empty());
        });
    }
}
