//! Rules doing exactly what docs/config.md says where it matters most: two source users that
//! produce one username (a link is never taken from its owner), a manual mapping whose source
//! group is gone (its target groups are left as they are), and `memberships = "keep"` (only
//! memberships idsync added are ever removed).

use atlassian_sim::SimUser;
use graph_sim::GraphSim;
use idsync_model::{OperationKind as K, TargetKind};

use crate::harness::*;

/// Adds a user with a chosen object id, so that tests decide who sorts first.
fn add_user_with_id(tenant: &GraphSim, upn: &str, id: &str) -> String {
    let mut user = new_user(upn);
    user.id = Some(id.to_owned());
    tenant.add_user(user).expect("user added")
}

/// Whether some warning of `target` contains every one of `parts`.
fn warned(report: &idsync_runner::RunReport, target: &str, parts: &[&str]) -> bool {
    warnings(report, target)
        .iter()
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

const ROOT_CONTOSO: &str = "f0000000-0000-0000-0000-00000000000b";
const ROOT_FABRIKAM: &str = "00000000-0000-0000-0000-000000000001";
const ALICE_CONTOSO: &str = "f0000000-0000-0000-0000-00000000000c";
const ALICE_FABRIKAM: &str = "00000000-0000-0000-0000-000000000002";

async fn username_collision_keeps_the_linked_user(kind: TargetKind) {
    let tenant = tenant().await;
    add_user_with_id(&tenant, "root@contoso.com", ROOT_CONTOSO);
    // Both new in the same run: the first by object id gets the username, deterministically.
    add_user_with_id(&tenant, "alice@contoso.com", ALICE_CONTOSO);
    add_user_with_id(&tenant, "alice@fabrikam.com", ALICE_FABRIKAM);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users.username]\nstrip_domain = true\nlowercase = true\n",
    )]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        w.usernames(kind),
        vec!["alice", "root"],
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.user(kind, "alice").expect("alice").email,
        "alice@fabrikam.com"
    );
    assert!(
        warned(&report, name, &[ALICE_CONTOSO, ALICE_FABRIKAM, "\"alice\""]),
        "{:?}",
        warnings(&report, name)
    );
    w.assert_converged(&config).await;

    // A newcomer producing the linked user's username, sorting first by object id: it gets no
    // account, and the linked user keeps hers, in a dry run as in a real one.
    add_user_with_id(&tenant, "root@fabrikam.com", ROOT_FABRIKAM);
    for dry_run in [true, false] {
        let report = w.run(&config, "main", dry_run).await;
        assert!(
            ops_of(&report, name).is_empty(),
            "dry run {dry_run}: {}",
            pretty(&report)
        );
        assert!(
            warned(&report, name, &[ROOT_CONTOSO, ROOT_FABRIKAM, "\"root\""]),
            "dry run {dry_run}: {:?}",
            warnings(&report, name)
        );
        // The one-per-username rule of the same run still names both.
        assert!(
            warned(&report, name, &[ALICE_CONTOSO, ALICE_FABRIKAM]),
            "{:?}",
            warnings(&report, name)
        );
    }
    assert!(w.is_active(kind, "root"));
    assert_eq!(
        w.user(kind, "root").expect("root").email,
        "root@contoso.com"
    );
    assert_eq!(w.usernames(kind), vec!["alice", "root"]);
    w.assert_converged(&config).await;
}

crate::per_target!(username_collision_keeps_the_linked_user: jira, confluence, bitbucket, cloud);

async fn manual_mapping_of_a_missing_group_removes_nothing(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let cyd = add_user(&tenant, "cyd@contoso.com");
    let nordics = add_group(&tenant, "SG-DESIGN-Nordics", &[&ada, &bob]);
    add_group(&tenant, "SG-DESIGN-Core", &[&cyd]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let rules = |source: &str, policy: &str| {
        format!(
            r#"
[apps.groups]
mapping = "manual"
memberships = "{policy}"
manual = [
  {{ source = "{source}", targets = ["design", "design-nordics"] }},
  {{ source = "SG-DESIGN-Core", targets = ["design"] }},
]
"#
        )
    };
    let config = w.write_config(&[App::new(&tenant, rules("SG-DESIGN-Nordics", "keep"))]);
    w.sync_ok(&config, "main").await;
    let design = vec!["ada@contoso.com", "bob@contoso.com", "cyd@contoso.com"];
    let nordic_members = vec!["ada@contoso.com", "bob@contoso.com"];
    assert_eq!(w.members(kind, "design"), design);
    assert_eq!(w.members(kind, "design-nordics"), nordic_members);
    w.assert_converged(&config).await;

    // The group is renamed in Entra: the mapping finds no group. Its target groups are left as
    // they are (even the one another mapping still feeds), under keep and under enforce.
    tenant
        .rename_group(&nordics, "SG-DESIGN-Norden")
        .expect("renamed");
    for policy in ["keep", "enforce"] {
        let config = w.write_config(&[App::new(&tenant, rules("SG-DESIGN-Nordics", policy))]);
        for dry_run in [true, false] {
            let report = w.run(&config, "main", dry_run).await;
            assert!(
                ops_of(&report, name).is_empty(),
                "{policy}, dry run {dry_run}: {}",
                pretty(&report)
            );
            assert!(
                warned(
                    &report,
                    name,
                    &["SG-DESIGN-Nordics", "design-nordics", "left as they are"]
                ),
                "{:?}",
                warnings(&report, name)
            );
        }
        assert_eq!(w.members(kind, "design"), design);
        assert_eq!(w.members(kind, "design-nordics"), nordic_members);
    }

    // Put right (the new name in the config): nothing to do, and the mapping works again.
    let config = w.write_config(&[App::new(&tenant, rules("SG-DESIGN-Norden", "keep"))]);
    w.assert_converged(&config).await;
    tenant.remove_member(&nordics, &bob).expect("removed");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![
            (
                K::RemoveMembership,
                "bob@contoso.com".into(),
                "design".into()
            ),
            (
                K::RemoveMembership,
                "bob@contoso.com".into(),
                "design-nordics".into()
            ),
        ],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;
}

crate::per_target!(manual_mapping_of_a_missing_group_removes_nothing: jira, confluence, bitbucket, cloud);

async fn keep_never_removes_memberships_idsync_did_not_add(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let devs = add_group(&tenant, "sg-devs", &[&ada, &bob]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let p = product(kind);
    // ada's account exists before idsync, already in the mapped group and in the default group.
    w.seed(kind, "ada@contoso.com", "ada@contoso.com");
    w.atl.seed_membership(p, "developers", "ada@contoso.com");
    w.atl.seed_membership(p, "everyone", "ada@contoso.com");
    // An account idsync never manages, in the mapped group.
    w.atl.seed_user(p, SimUser::new("zed"));
    w.atl.seed_membership(p, "developers", "zed");
    let rules = |policy: &str| {
        format!(
            "[apps.users]\nstrip_groups_on_deprovision = true\n\n[apps.groups]\nmapping = \"manual\"\nmemberships = \"{policy}\"\ndefault_groups_all_users = [\"everyone\"]\nmanual = [{{ source = \"sg-devs\", targets = [\"developers\"] }}]\n"
        )
    };
    let config = w.write_config(&[App::new(&tenant, rules("keep"))]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "bob@contoso.com", "zed"],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;

    // Both leave the source group: only bob's membership, which idsync added, goes.
    tenant.remove_member(&devs, &ada).expect("removed");
    tenant.remove_member(&devs, &bob).expect("removed");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(
            K::RemoveMembership,
            "bob@contoso.com".into(),
            "developers".into()
        )],
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "zed"]
    );
    w.assert_converged(&config).await;

    // Deprovisioned with strip_groups_on_deprovision: bob loses the group idsync put him in,
    // ada keeps the one she had before idsync.
    tenant.disable_user(&ada).expect("disabled");
    tenant.disable_user(&bob).expect("disabled");
    w.sync_ok(&config, "main").await;
    assert_eq!(w.members(kind, "everyone"), vec!["ada@contoso.com"]);
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "zed"]
    );
    w.assert_converged(&config).await;

    // enforce, as documented: in mapped groups a managed account is a member exactly when the
    // source says so, whoever added the membership.
    tenant.enable_user(&ada).expect("enabled");
    let config = w.write_config(&[App::new(&tenant, rules("enforce"))]);
    let report = w.sync_ok(&config, "main").await;
    assert!(
        ops_of(&report, name).contains(&(
            K::RemoveMembership,
            "ada@contoso.com".into(),
            "developers".into()
        )),
        "{}",
        pretty(&report)
    );
    assert_eq!(w.members(kind, "developers"), vec!["zed"]);
    w.assert_converged(&config).await;
}

crate::per_target!(keep_never_removes_memberships_idsync_did_not_add: jira, confluence, bitbucket, cloud);
