//! One app feeding several targets, each with its own overrides, from one source read.

use idsync_model::TargetKind;

use crate::harness::*;

#[tokio::test]
async fn one_read_serves_every_target_with_its_overrides() {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    add_group(&tenant, "Devs", &[&ada, &bob]);
    let w = World::new(&ALL_TARGETS).await;
    let config = w.write_config(&[App::new(
        &tenant,
        r#"
[apps.groups]
mapping = "manual"
manual = [{ source = "Devs", targets = ["developers"] }]

[apps.overrides.bitbucket.users.username]
strip_domain = true

[apps.overrides.cloud.groups]
default_groups_all_users = ["cloud-users"]
"#,
    )]);
    let graph = tenant.kit();
    graph.reset_counters();
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(report.targets.len(), 4, "{}", pretty(&report));
    // One source read for the four targets: one page of users, one of groups.
    assert_eq!(
        graph.count("GET /v1.0/users/delta"),
        1,
        "{:?}",
        graph.counters()
    );
    assert_eq!(
        graph.count("GET /v1.0/groups/delta"),
        1,
        "{:?}",
        graph.counters()
    );

    let full = vec!["ada@contoso.com", "bob@contoso.com"];
    for kind in [TargetKind::JiraDc, TargetKind::ConfluenceDc] {
        assert_eq!(w.usernames(kind), full);
        assert_eq!(w.members(kind, "developers"), full);
    }
    // Bitbucket's own username rule.
    assert_eq!(w.usernames(TargetKind::BitbucketDc), vec!["ada", "bob"]);
    assert_eq!(
        w.members(TargetKind::BitbucketDc, "developers"),
        vec!["ada", "bob"]
    );
    // Cloud's own group rules replace the app's: no mapping, a default group.
    let cloud = TargetKind::AtlassianCloud;
    assert_eq!(w.usernames(cloud), full);
    assert!(!w.has_group(cloud, "developers"));
    assert_eq!(w.members(cloud, "cloud-users"), full);
    w.assert_converged(&config).await;
}
