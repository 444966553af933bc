//! Group rules: default groups (new users, all users), manual mapping by name and by id,
//! on-the-fly mapping with regex rename and include/exclude filters, `create_missing`,
//! `import_groups`, and keep vs enforce for memberships idsync does not manage.

use atlassian_sim::SimUser;
use idsync_model::{OperationKind as K, TargetKind};

use crate::harness::*;

async fn manual_and_default_groups(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let cyd = add_user(&tenant, "cyd@contoso.com");
    add_group(&tenant, "sg-devs", &[&ada, &bob]);
    let marketing = add_group(&tenant, "Marketing", &[&cyd]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        format!(
            r#"
[apps.groups]
default_groups_new_users = ["new-joiners"]
default_groups_all_users = ["everyone"]
mapping = "manual"
manual = [
  {{ source = "sg-devs", targets = ["developers", "all-staff"] }},
  {{ source = "{marketing}", targets = ["marketing"] }},
]
"#
        ),
    )]);
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateGroup, 5);
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "bob@contoso.com"]
    );
    assert_eq!(
        w.members(kind, "all-staff"),
        vec!["ada@contoso.com", "bob@contoso.com"]
    );
    assert_eq!(w.members(kind, "marketing"), vec!["cyd@contoso.com"]);
    let all = vec!["ada@contoso.com", "bob@contoso.com", "cyd@contoso.com"];
    assert_eq!(w.members(kind, "new-joiners"), all);
    assert_eq!(w.members(kind, "everyone"), all);
    w.assert_converged(&config).await;

    // A new user joins sg-devs: created, into the default groups and the mapped ones; the
    // others stay where they are (new-joiners is for new accounts, once).
    let dan = add_user(&tenant, "dan@contoso.com");
    let devs = tenant.find_group_by_name("sg-devs").expect("group");
    tenant.add_member(&devs, &dan).expect("member");
    let report = w.sync_ok(&config, "main").await;
    let mut ops = ops_of(&report, name);
    ops.sort();
    assert_eq!(
        ops,
        vec![
            (K::CreateUser, "dan@contoso.com".into(), String::new()),
            (
                K::AddMembership,
                "dan@contoso.com".into(),
                "all-staff".into()
            ),
            (
                K::AddMembership,
                "dan@contoso.com".into(),
                "developers".into()
            ),
            (
                K::AddMembership,
                "dan@contoso.com".into(),
                "everyone".into()
            ),
            (
                K::AddMembership,
                "dan@contoso.com".into(),
                "new-joiners".into()
            ),
        ],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;

    // bob leaves sg-devs: out of both groups it maps to, still in everyone.
    tenant.remove_member(&devs, &bob).expect("removed");
    let report = w.sync_ok(&config, "main").await;
    let mut ops = ops_of(&report, name);
    ops.sort();
    assert_eq!(
        ops,
        vec![
            (
                K::RemoveMembership,
                "bob@contoso.com".into(),
                "all-staff".into()
            ),
            (
                K::RemoveMembership,
                "bob@contoso.com".into(),
                "developers".into()
            ),
        ],
        "{}",
        pretty(&report)
    );
    assert!(
        w.members(kind, "everyone")
            .contains(&"bob@contoso.com".to_owned())
    );
    w.assert_converged(&config).await;
}

async fn on_the_fly(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let cyd = add_user(&tenant, "cyd@contoso.com");
    add_group(&tenant, "sg-devs", &[&ada, &bob]);
    add_group(&tenant, "sg-admins", &[&ada]);
    add_group(&tenant, "Marketing", &[&cyd]);
    add_group(&tenant, "sg-ops", &[]);
    let qa_contractors = add_group(&tenant, "qa-contractors", &[&cyd]);
    add_group(&tenant, "sg-qa", &[&qa_contractors]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let rules = |extra: &str| {
        format!(
            r#"
[apps.groups]
mapping = "on_the_fly"
{extra}
[apps.groups.on_the_fly]
include = ["^sg-"]
exclude = ["admins$"]
rename = [{{ pattern = "^sg-(.*)$", with = "jira-$1" }}]
"#
        )
    };
    let config = w.write_config(&[App::new(&tenant, rules(""))]);
    let report = w.sync_ok(&config, "main").await;
    let mut created: Vec<String> = ops_of(&report, name)
        .into_iter()
        .filter(|(k, _, _)| *k == K::CreateGroup)
        .map(|(_, _, g)| g)
        .collect();
    created.sort();
    assert_eq!(created, vec!["jira-devs", "jira-qa"], "{}", pretty(&report));
    assert_eq!(
        w.members(kind, "jira-devs"),
        vec!["ada@contoso.com", "bob@contoso.com"]
    );
    assert_eq!(
        w.members(kind, "jira-qa"),
        vec!["cyd@contoso.com"],
        "nested groups expanded"
    );
    for absent in [
        "jira-admins",
        "sg-admins",
        "Marketing",
        "jira-ops",
        "sg-devs",
    ] {
        assert!(!w.has_group(kind, absent), "{absent} should not exist");
    }
    w.assert_converged(&config).await;

    // import_groups: mapped groups are created even when empty.
    let config = w.write_config(&[App::new(&tenant, rules("import_groups = true"))]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::CreateGroup, String::new(), "jira-ops".into())],
        "{}",
        pretty(&report)
    );
    assert!(w.has_group(kind, "jira-ops"));
    assert!(!w.has_group(kind, "jira-admins"));
    w.assert_converged(&config).await;

    // create_missing = false: a new source group whose target group is missing is skipped
    // (and the plan says so); once the group exists on the target, members are added.
    let support = add_group(&tenant, "sg-support", &[&bob]);
    let _ = support;
    let config = w.write_config(&[App::new(
        &tenant,
        rules("").replace(
            "[apps.groups.on_the_fly]",
            "[apps.groups.on_the_fly]\ncreate_missing = false",
        ),
    )]);
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    // It counts memberships, and its example names the user and the group.
    assert!(
        warnings(&report, name)
            .iter()
            .any(|w| w.contains("create_missing = false")
                && w.contains("1 membership(s), e.g. \"bob@contoso.com\" in \"jira-support\"")),
        "{:?}",
        warnings(&report, name)
    );
    assert!(!w.has_group(kind, "jira-support"));
    w.atl.seed_group(product(kind), "jira-support");
    // A group made by hand on the target is seen by the next full read.
    let report = w.sync_full_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(
            K::AddMembership,
            "bob@contoso.com".into(),
            "jira-support".into()
        )],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;
}

async fn keep_and_enforce(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let _cyd = add_user(&tenant, "cyd@contoso.com");
    let devs = add_group(&tenant, "sg-devs", &[&ada, &bob]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let p = product(kind);
    // An account idsync does not manage, already in the mapped group.
    w.atl.seed_user(p, SimUser::new("zed"));
    w.atl.seed_membership(p, "developers", "zed");
    let rules = |policy: &str| {
        format!(
            "[apps.groups]\nmapping = \"manual\"\nmemberships = \"{policy}\"\nmanual = [{{ source = \"sg-devs\", targets = [\"developers\"] }}]\n"
        )
    };
    let config = w.write_config(&[App::new(&tenant, rules("keep"))]);
    w.sync_ok(&config, "main").await;
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "bob@contoso.com", "zed"]
    );
    w.assert_converged(&config).await;

    // By hand, on the target: cyd (managed) into the mapped group and an unmapped one.
    assert!(w.atl.seed_membership(p, "developers", "cyd@contoso.com"));
    assert!(w.atl.seed_membership(p, "hand-made", "cyd@contoso.com"));
    // keep: memberships idsync did not add are left alone.
    w.assert_converged(&config).await;
    // ... but the ones it added follow the source.
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
        vec!["ada@contoso.com", "cyd@contoso.com", "zed"]
    );
    w.assert_converged(&config).await;

    // enforce: in mapped groups, managed accounts are members exactly when the source says
    // so; unmanaged accounts and unmapped groups are still left alone.
    let config = w.write_config(&[App::new(&tenant, rules("enforce"))]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(
            K::RemoveMembership,
            "cyd@contoso.com".into(),
            "developers".into()
        )],
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "zed"]
    );
    assert_eq!(w.members(kind, "hand-made"), vec!["cyd@contoso.com"]);
    assert!(w.user(kind, "zed").expect("zed").active);
    w.assert_converged(&config).await;
}

crate::per_target!(manual_and_default_groups: jira, confluence, bitbucket, cloud);
crate::per_target!(on_the_fly: jira, confluence, bitbucket, cloud);
crate::per_target!(keep_and_enforce: jira, confluence, bitbucket, cloud);

/// Entra allows two groups of one name; on the fly, both become one target group. That is
/// said, naming both, rather than done silently.
#[tokio::test]
async fn on_the_fly_says_when_two_source_groups_become_one_target_group() {
    for kind in ALL_TARGETS {
        let tenant = tenant().await;
        let ada = add_user(&tenant, "ada@contoso.com");
        let bob = add_user(&tenant, "bob@contoso.com");
        let first = add_group(&tenant, "Devs", &[ada.as_str()]);
        let second = add_group(&tenant, "Devs", &[bob.as_str()]);
        let w = World::new(&[kind]).await;
        let config = w.write_config(&[App::new(
            &tenant,
            "[apps.groups]\nmapping = \"on_the_fly\"\n",
        )]);
        let report = w.sync_ok(&config, "main").await;
        let said = warnings(&report, target_name(kind));
        assert!(
            said.iter().any(
                |w| w.contains("2 source groups all become target group \"devs\"")
                    && w.contains(&first)
                    && w.contains(&second)
            ),
            "{kind}: {said:?}"
        );
        assert_eq!(
            w.members(kind, "Devs"),
            vec!["ada@contoso.com".to_owned(), "bob@contoso.com".to_owned()],
            "{kind}"
        );
    }
}
