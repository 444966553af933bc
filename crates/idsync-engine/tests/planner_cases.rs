//! Planner cases worth pinning down one by one.

use std::collections::{BTreeMap, BTreeSet};

use idsync_config::{GroupRules, MappingMode, UserRules};
use idsync_engine::{CompiledGroupRules, CompiledUserRules, Link, PlanInput, TargetPlan, plan};
use idsync_model::{
    ActualState, Capabilities, Operation, SourceGroup, SourceSnapshot, SourceUser, TargetUser,
};

fn caps() -> Capabilities {
    Capabilities {
        custom_attributes: false,
        bulk_membership: false,
        leads: false,
        ..Capabilities::FULL
    }
}

fn group(id: &str, users: &[&str], groups: &[&str]) -> SourceGroup {
    SourceGroup {
        id: id.into(),
        display_name: id.into(),
        user_members: users.iter().map(|s| s.to_string()).collect(),
        group_members: groups.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn nested_groups_with_a_cycle_give_every_group_once() {
    let mut snapshot = SourceSnapshot::default();
    snapshot.users.insert(
        "u1".into(),
        SourceUser {
            id: "u1".into(),
            enabled: true,
            attributes: BTreeMap::from([("userPrincipalName".into(), "ada@x.example".into())]),
        },
    );
    // a ⊃ b ⊃ c ⊃ a: a cycle; the user is a direct member of c only.
    for g in [
        group("a", &[], &["b"]),
        group("b", &[], &["c"]),
        group("c", &["u1"], &["a"]),
        group("lonely", &[], &[]),
    ] {
        snapshot.groups.insert(g.id.clone(), g);
    }
    let users = CompiledUserRules::compile(&UserRules::default(), "users").expect("valid");
    let groups = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid");
    let caps = caps();
    let actual = ActualState::default();
    let managed = idsync_engine::ManagedMemberships::default();
    for (nested, expected) in [(true, vec!["a", "b", "c"]), (false, vec!["c"])] {
        let p = plan(&PlanInput {
            app: "corp",
            target: "jira",
            capabilities: &caps,
            snapshot: &snapshot,
            source_complete: true,
            actual: &actual,
            links: &[],
            managed_memberships: &managed,
            users: &users,
            groups: &groups,
            nested_groups: nested,
        });
        let memberships: Vec<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::AddMembership { group, .. } => Some(group.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(memberships, expected, "nested_groups = {nested}");
        let created: BTreeSet<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::CreateGroup { group } => Some(group.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            created,
            expected.iter().copied().collect(),
            "only groups someone is in are created (import_groups is off)"
        );
    }
}

fn upn_user(id: &str, upn: &str) -> SourceUser {
    SourceUser {
        id: id.into(),
        enabled: true,
        attributes: BTreeMap::from([
            ("userPrincipalName".into(), upn.into()),
            ("mail".into(), upn.into()),
            ("displayName".into(), upn.into()),
        ]),
    }
}

fn account(key: &str, username: &str, email: &str) -> TargetUser {
    TargetUser {
        key: key.into(),
        username: username.into(),
        email: Some(email.into()),
        display_name: Some(email.into()),
        active: true,
        attributes: BTreeMap::new(),
        external_id: None,
    }
}

fn link(source_id: &str, key: &str, username: &str) -> Link {
    Link::new("corp", source_id, key, username)
}

/// Plans with `strip_domain`, so that users of two domains can produce one username.
fn plan_stripped(users: &[SourceUser], actual: &ActualState, links: &[Link]) -> TargetPlan {
    let mut snapshot = SourceSnapshot::default();
    for u in users {
        snapshot.users.insert(u.id.clone(), u.clone());
    }
    let rules = UserRules {
        username: idsync_config::UsernameRule {
            strip_domain: true,
            ..Default::default()
        },
        ..UserRules::default()
    };
    let users = CompiledUserRules::compile(&rules, "users").expect("valid");
    let groups = CompiledGroupRules::compile(&GroupRules::default(), "groups").expect("valid");
    let caps = caps();
    let managed = idsync_engine::ManagedMemberships::default();
    plan(&PlanInput {
        app: "corp",
        target: "jira",
        capabilities: &caps,
        snapshot: &snapshot,
        source_complete: true,
        actual,
        links,
        managed_memberships: &managed,
        users: &users,
        groups: &groups,
        nested_groups: true,
    })
}

#[test]
fn a_linked_user_keeps_its_username_against_a_newcomer_that_sorts_first() {
    let actual = ActualState {
        users: vec![account("k-root", "root", "root@contoso.com")],
        ..ActualState::default()
    };
    let p = plan_stripped(
        &[
            upn_user("f-contoso", "root@contoso.com"),
            upn_user("0-fabrikam", "root@fabrikam.com"),
        ],
        &actual,
        &[link("f-contoso", "k-root", "root")],
    );
    assert!(p.operations.is_empty(), "{:#?}", p.operations);
    assert!(
        p.warnings.iter().any(|w| w.contains("0-fabrikam")
            && w.contains("f-contoso")
            && w.contains("never taken from its owner")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn two_linked_users_producing_one_username_both_keep_their_accounts() {
    // b's UPN changed so that it now strips to a's username: b is not renamed onto it, and
    // neither account is deprovisioned.
    let actual = ActualState {
        users: vec![
            account("k-a", "root", "root@contoso.com"),
            account("k-b", "broot", "root@fabrikam.com"),
        ],
        ..ActualState::default()
    };
    // Whoever sorts first, the holder is the one linked under that username.
    for (holder, other) in [("a", "b"), ("b", "a")] {
        let links = [link(holder, "k-a", "root"), link(other, "k-b", "broot")];
        let users = [
            upn_user(holder, "root@contoso.com"),
            upn_user(other, "root@fabrikam.com"),
        ];
        let p = plan_stripped(&users, &actual, &links);
        assert!(p.operations.is_empty(), "{:#?}", p.operations);
        assert_eq!(p.managed_users, 2);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("cannot rename \"broot\" to \"root\"")
                    && w.contains(&format!("source user {holder}"))),
            "{:?}",
            p.warnings
        );
    }
}

#[test]
fn two_newcomers_producing_one_username_the_first_by_object_id_gets_it() {
    let p = plan_stripped(
        &[
            upn_user("f-contoso", "alice@contoso.com"),
            upn_user("0-fabrikam", "alice@fabrikam.com"),
        ],
        &ActualState::default(),
        &[],
    );
    let created: Vec<(&str, Option<&str>)> = p
        .operations
        .iter()
        .filter_map(|o| match &o.op {
            Operation::CreateUser { user, email, .. } => Some((user.as_str(), email.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![("alice", Some("alice@fabrikam.com"))]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("skipped source user f-contoso") && w.contains("0-fabrikam")),
        "{:?}",
        p.warnings
    );
}

/// Confluence DC takes lower-case usernames only and refuses whitespace and `\ , + < > ' "`
/// (Confluence 9.4/10.0 REST, POST /admin/user): for a confluence-dc target the planner
/// creates the lower-cased name and says so, and a name that still holds a refused character
/// is a warning naming the user and the character, never a creation the product refuses.
#[test]
fn confluence_usernames_are_lower_cased_and_refused_characters_are_warned_about() {
    let mut snapshot = SourceSnapshot::default();
    for user in [
        upn_user("u1", "Ada.Lovelace@x.example"),
        upn_user("u2", "o'brien@x.example"),
        upn_user("u3", "Grace Hopper@x.example"),
    ] {
        snapshot.users.insert(user.id.clone(), user);
    }
    let groups = CompiledGroupRules::compile(&GroupRules::default(), "groups").expect("valid");
    let caps = caps();
    let actual = ActualState::default();
    let managed = idsync_engine::ManagedMemberships::default();
    let plan_for = |users: &CompiledUserRules| {
        plan(&PlanInput {
            app: "corp",
            target: "wiki",
            capabilities: &caps,
            snapshot: &snapshot,
            source_complete: true,
            actual: &actual,
            links: &[],
            managed_memberships: &managed,
            users,
            groups: &groups,
            nested_groups: true,
        })
    };
    let created = |p: &TargetPlan| -> Vec<(String, String)> {
        p.operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::CreateUser { user, .. } => Some((user.clone(), o.reason.clone())),
                _ => None,
            })
            .collect()
    };
    let rules = CompiledUserRules::compile(&UserRules::default(), "users").expect("valid");

    let wiki = plan_for(
        &rules
            .clone()
            .for_target(idsync_model::TargetKind::ConfluenceDc),
    );
    let made = created(&wiki);
    assert_eq!(made.len(), 1, "{made:?} {:?}", wiki.warnings);
    assert_eq!(made[0].0, "ada.lovelace@x.example");
    assert!(
        made[0].1.contains("lower-cased") && made[0].1.contains("confluence-dc"),
        "the plan says why: {}",
        made[0].1
    );
    for (id, name, what) in [
        ("u2", "o'brien@x.example", "`'`"),
        ("u3", "grace hopper@x.example", "whitespace"),
    ] {
        assert!(
            wiki.warnings
                .iter()
                .any(|w| w.contains(&format!("skipped source user {id}"))
                    && w.contains(&format!("{name:?}"))
                    && w.contains(what)
                    && w.contains("Confluence")),
            "{id}: {:?}",
            wiki.warnings
        );
    }

    // Other products keep the names as the rules make them.
    let jira = plan_for(&rules.clone().for_target(idsync_model::TargetKind::JiraDc));
    let made: Vec<String> = created(&jira).into_iter().map(|(u, _)| u).collect();
    assert_eq!(
        made,
        vec![
            "Ada.Lovelace@x.example",
            "o'brien@x.example",
            "Grace Hopper@x.example"
        ]
    );
    assert!(
        created(&jira)
            .iter()
            .all(|(_, r)| !r.contains("lower-cased"))
    );
}

/// A target that requires an e-mail (Atlassian Cloud) gets no creation for a source user
/// without one: a warning names the user instead; other targets still get the creation.
#[test]
fn a_user_without_email_is_not_created_where_the_target_requires_one() {
    let mut snapshot = SourceSnapshot::default();
    snapshot
        .users
        .insert("with".into(), upn_user("with", "ada@contoso.com"));
    snapshot.users.insert(
        "without".into(),
        SourceUser {
            id: "without".into(),
            enabled: true,
            attributes: BTreeMap::from([("userPrincipalName".into(), "bob@contoso.com".into())]),
        },
    );
    snapshot
        .groups
        .insert("g".into(), group("g", &["with", "without"], &[]));
    let rules = UserRules {
        email: vec!["mail".into()],
        ..UserRules::default()
    };
    let users = CompiledUserRules::compile(&rules, "users").expect("valid");
    let groups = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid");
    let managed = idsync_engine::ManagedMemberships::default();
    let actual = ActualState::default();
    for requires_email in [true, false] {
        let caps = Capabilities {
            requires_email,
            ..caps()
        };
        let p = plan(&PlanInput {
            app: "corp",
            target: "cloud",
            capabilities: &caps,
            snapshot: &snapshot,
            source_complete: true,
            actual: &actual,
            links: &[],
            managed_memberships: &managed,
            users: &users,
            groups: &groups,
            nested_groups: true,
        });
        let created: Vec<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::CreateUser { user, .. } => Some(user.as_str()),
                _ => None,
            })
            .collect();
        let memberships: Vec<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::AddMembership { user, .. } => Some(user.as_str()),
                _ => None,
            })
            .collect();
        let warned = p
            .warnings
            .iter()
            .any(|w| w.contains("bob@contoso.com") && w.contains("no e-mail address"));
        if requires_email {
            assert_eq!(created, vec!["ada@contoso.com"]);
            assert_eq!(memberships, vec!["ada@contoso.com"]);
            assert!(warned, "{:?}", p.warnings);
        } else {
            assert_eq!(created, vec!["ada@contoso.com", "bob@contoso.com"]);
            assert!(!warned, "{:?}", p.warnings);
        }
    }
}

/// A linked user whose username attribute turns blank is still in scope: the account is left
/// as it is, with a warning, never deprovisioned as "gone" (a user never linked is skipped).
#[test]
fn a_linked_user_with_a_blank_username_keeps_the_account() {
    let actual = ActualState {
        users: vec![account("k-ada", "ada", "ada@contoso.com")],
        ..ActualState::default()
    };
    let mut blank = upn_user("ada", "ada@contoso.com");
    blank
        .attributes
        .insert("userPrincipalName".into(), "   ".into());
    let mut newcomer = upn_user("bob", "bob@contoso.com");
    newcomer.attributes.remove("userPrincipalName");
    let p = plan_stripped(&[blank, newcomer], &actual, &[link("ada", "k-ada", "ada")]);
    assert!(p.operations.is_empty(), "{:#?}", p.operations);
    assert!(
        p.warnings.iter().any(
            |w| w.starts_with("left as it is: the username attribute is empty")
                && w.contains("source user ada")
        ),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings.iter().any(
            |w| w.starts_with("skipped: the username attribute is empty")
                && w.contains("source user bob")
        ),
        "{:?}",
        p.warnings
    );
}

/// ada and bob at the source, with "Hidden class" (no members readable) and "Open team" (bob).
fn ada_and_bob_with_a_hidden_and_an_open_group() -> SourceSnapshot {
    let mut snapshot = SourceSnapshot::default();
    for u in [
        upn_user("u1", "ada@x.example"),
        upn_user("u2", "bob@x.example"),
    ] {
        snapshot.users.insert(u.id.clone(), u);
    }
    let mut hidden = group("h", &[], &[]);
    hidden.display_name = "Hidden class".into();
    let mut open = group("p", &["u2"], &[]);
    open.display_name = "Open team".into();
    for g in [hidden, open] {
        snapshot.groups.insert(g.id.clone(), g);
    }
    snapshot
}

/// ada, bob, cyd and dan on the target; ada and bob in "Hidden class", bob in "Open team".
fn four_accounts_in_both_groups() -> ActualState {
    ActualState {
        users: vec![
            account("k1", "ada", "ada@x.example"),
            account("k2", "bob", "bob@x.example"),
            account("k3", "cyd", "cyd@x.example"),
            account("k4", "dan", "dan@x.example"),
        ],
        groups: ["Hidden class".to_owned(), "Open team".to_owned()].into(),
        memberships: BTreeMap::from([
            (
                "Hidden class".to_owned(),
                BTreeSet::from(["k1".to_owned(), "k2".to_owned()]),
            ),
            ("Open team".to_owned(), BTreeSet::from(["k2".to_owned()])),
        ]),
        ..ActualState::default()
    }
}

/// The plan's membership removals, as (group, user).
fn removals(p: &TargetPlan) -> Vec<(String, String)> {
    p.operations
        .iter()
        .filter_map(|o| match &o.op {
            Operation::RemoveMembership { group, user, .. } => Some((group.clone(), user.clone())),
            _ => None,
        })
        .collect()
}

/// The users the plan deactivates.
fn deactivated(p: &TargetPlan) -> Vec<String> {
    p.operations
        .iter()
        .filter_map(|o| match &o.op {
            Operation::DeactivateUser { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect()
}

/// A source group whose members could not be read (Entra: hidden membership without
/// Member.Read.Hidden) removes nobody: not from the target group it feeds (under `enforce`
/// either), and no account is deprovisioned for having left a scope that goes through it.
/// Users gone from the source altogether still are.
#[test]
fn a_source_group_with_unknown_members_removes_nobody() {
    let mut snapshot = ada_and_bob_with_a_hidden_and_an_open_group();
    let actual = four_accounts_in_both_groups();
    let links = [
        link("u1", "k1", "ada"),
        link("u2", "k2", "bob"),
        link("u3", "k3", "cyd"),
        link("u4", "k4", "dan"),
    ];
    // idsync added ada to "Hidden class" itself; bob was put there by hand.
    let managed = idsync_engine::ManagedMemberships::from_joined([(
        "hidden class".to_owned(),
        "k1".to_owned(),
    )]);
    let users = CompiledUserRules::compile(
        &UserRules {
            username: idsync_config::UsernameRule {
                strip_domain: true,
                ..Default::default()
            },
            ..UserRules::default()
        },
        "users",
    )
    .expect("valid");
    let groups = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            memberships: idsync_config::MembershipPolicy::Enforce,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid");
    let caps = caps();
    let plan_with = |snapshot: &SourceSnapshot| {
        plan(&PlanInput {
            app: "corp",
            target: "jira",
            capabilities: &caps,
            snapshot,
            source_complete: true,
            actual: &actual,
            links: &links,
            managed_memberships: &managed,
            users: &users,
            groups: &groups,
            nested_groups: true,
        })
    };

    // Taken at its word, the empty group would empty its target group and cyd, outside the
    // scope, would be deactivated.
    let naive = plan_with(&snapshot);
    assert_eq!(removals(&naive).len(), 2, "{:#?}", naive.operations);
    assert_eq!(deactivated(&naive), vec!["cyd", "dan"]);

    snapshot.membership_unknown = BTreeSet::from(["h".to_owned()]);
    // cyd is still in the directory (may be a hidden member); dan is gone from it.
    snapshot.maybe_in_scope = BTreeSet::from(["u3".to_owned()]);
    let p = plan_with(&snapshot);
    assert!(removals(&p).is_empty(), "{:#?}", p.operations);
    assert_eq!(deactivated(&p), vec!["dan"]);
    assert!(
        p.warnings.iter().any(|w| w.contains("\"Hidden class\"")
            && w.contains("Member.Read.Hidden")
            && w.contains("no membership is removed")),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("not deprovisioned") && w.contains("\"cyd\"")),
        "{:?}",
        p.warnings
    );
}
