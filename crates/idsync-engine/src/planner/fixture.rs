//! Small inputs for the phases' own tests, and the phases' state as `plan` prepares it.

use std::collections::BTreeMap;

use idsync_config::{GroupRules, UserRules, UsernameRule};
use idsync_model::{
    ActualState, Capabilities, PlannedOperation, SourceGroup, SourceSnapshot, SourceUser,
    TargetUser,
};

use super::builder::Builder;
use super::identify::{Found, Identity, User, Usernames, account_of};
use super::index::Ctx;
use super::wanted::Wanted;
use super::{Link, PlanInput, Planning, Strings, prepare};
use crate::rules::{CompiledGroupRules, CompiledUserRules};
use idsync_model::managed::ManagedMemberships;

/// Everything a plan reads, owned; the app is `corp`.
pub(super) struct Fixture {
    pub(super) caps: Capabilities,
    pub(super) snapshot: SourceSnapshot,
    pub(super) actual: ActualState,
    pub(super) links: Vec<Link>,
    pub(super) managed: ManagedMemberships,
    user_rules: UserRules,
    group_rules: GroupRules,
    users: CompiledUserRules,
    groups: CompiledGroupRules,
    pub(super) source_complete: bool,
    pub(super) nested_groups: bool,
}

impl Fixture {
    /// A product that can do everything; usernames are the UPN without its domain.
    pub(super) fn new() -> Self {
        let user_rules = UserRules {
            username: UsernameRule {
                strip_domain: true,
                ..UsernameRule::default()
            },
            ..UserRules::default()
        };
        let group_rules = GroupRules::default();
        Fixture {
            caps: Capabilities {
                bulk_membership: false,
                ..Capabilities::FULL
            },
            snapshot: SourceSnapshot::default(),
            actual: ActualState::default(),
            links: Vec::new(),
            managed: ManagedMemberships::default(),
            users: compile_users(&user_rules),
            groups: compile_groups(&group_rules),
            user_rules,
            group_rules,
            source_complete: true,
            nested_groups: false,
        }
    }

    pub(super) fn user_rules(mut self, change: impl FnOnce(&mut UserRules)) -> Self {
        change(&mut self.user_rules);
        self.users = compile_users(&self.user_rules);
        self
    }

    pub(super) fn group_rules(mut self, change: impl FnOnce(&mut GroupRules)) -> Self {
        change(&mut self.group_rules);
        self.groups = compile_groups(&self.group_rules);
        self
    }

    /// A source user `id` with UPN `{name}@contoso.com` and e-mail `{name}@mail.example`.
    pub(super) fn source_user(mut self, id: &str, name: &str, enabled: bool) -> Self {
        let attributes = BTreeMap::from([
            (
                "userPrincipalName".to_owned(),
                format!("{name}@contoso.com"),
            ),
            ("mail".to_owned(), format!("{name}@mail.example")),
        ]);
        self.snapshot.users.insert(
            id.to_owned(),
            SourceUser {
                id: id.to_owned(),
                enabled,
                attributes,
            },
        );
        self
    }

    pub(super) fn source_group(mut self, id: &str, name: &str, users: &[&str]) -> Self {
        self.snapshot.groups.insert(
            id.to_owned(),
            SourceGroup {
                id: id.to_owned(),
                display_name: name.to_owned(),
                user_members: users.iter().map(|u| (*u).to_owned()).collect(),
                group_members: Default::default(),
            },
        );
        self
    }

    /// An account with e-mail `{username}@mail.example` and display name `{username}`.
    pub(super) fn account(mut self, key: &str, username: &str, active: bool) -> Self {
        self.actual.users.push(TargetUser {
            key: key.to_owned(),
            username: username.to_owned(),
            email: Some(format!("{username}@mail.example")),
            display_name: Some(username.to_owned()),
            active,
            attributes: BTreeMap::new(),
            external_id: None,
        });
        self
    }

    pub(super) fn member(mut self, group: &str, key: &str) -> Self {
        self.actual.groups.insert(group.to_owned());
        self.actual
            .memberships
            .entry(group.to_owned())
            .or_default()
            .insert(key.to_owned());
        self
    }

    pub(super) fn managed(mut self, group: &str, key: &str) -> Self {
        let mut all: Vec<_> = self
            .managed
            .iter()
            .map(|(g, k)| (g.to_owned(), k.to_owned()))
            .collect();
        all.push((group.to_lowercase(), key.to_owned()));
        self.managed = all.into_iter().collect();
        self
    }

    pub(super) fn link(mut self, app: &str, source_id: &str, key: &str, username: &str) -> Self {
        self.links.push(Link::new(app, source_id, key, username));
        self
    }

    pub(super) fn input(&self) -> PlanInput<'_> {
        PlanInput {
            app: "corp",
            target: "jira",
            capabilities: &self.caps,
            snapshot: &self.snapshot,
            source_complete: self.source_complete,
            actual: &self.actual,
            links: &self.links,
            managed_memberships: &self.managed,
            users: &self.users,
            groups: &self.groups,
            nested_groups: self.nested_groups,
        }
    }

    /// Runs `f` on the phases' state as `plan` prepares it.
    pub(super) fn phases<R>(
        &self,
        f: impl for<'a> FnOnce(&Ctx<'a>, &mut Wanted<'a>, &mut Planning<'a>) -> R,
    ) -> R {
        let input = self.input();
        let strings = Strings::of(&input);
        let (ctx, mut wanted, mut p) = prepare(&input, &strings);
        f(&ctx, &mut wanted, &mut p)
    }
}

fn compile_users(rules: &UserRules) -> CompiledUserRules {
    CompiledUserRules::compile(rules, "users").expect("valid user rules")
}

fn compile_groups(rules: &GroupRules) -> CompiledGroupRules {
    CompiledGroupRules::compile(rules, "groups").expect("valid group rules")
}

/// The operations and warnings planned so far (the builder is emptied).
pub(super) fn planned(
    ctx: &Ctx<'_>,
    wanted: &Wanted<'_>,
    p: &mut Planning<'_>,
) -> (Vec<PlannedOperation>, Vec<String>) {
    let b = std::mem::replace(&mut p.b, Builder::new("jira"));
    let (operations, warnings, _) = b.finish(&ctx.index, &wanted.source_reasons, true);
    (operations, warnings)
}

/// The source user `id` as the identify phase hands them on.
pub(super) fn user<'a>(ctx: &Ctx<'a>, p: &mut Planning<'a>, id: &str) -> User<'a> {
    let mut usernames = Usernames::new(ctx, &p.my_links);
    let users = &ctx.input.snapshot.users;
    let position = users.keys().position(|k| k == id).expect("a source user");
    usernames
        .take(ctx, p, position, &users[id])
        .expect("a user with a username of their own")
}

/// The account of source user `id`, as the identify phase finds it.
pub(super) fn found<'u, 'a: 'u>(
    ctx: &Ctx<'a>,
    p: &mut Planning<'a>,
    user: &'u User<'a>,
) -> Found<'u> {
    match account_of(ctx, p, user) {
        Identity::Found(found) => found,
        _ => panic!("no account for {}", user.src.id),
    }
}
