//! A target's product version decides what is planned for it: what an older Confluence has no
//! REST resource for is a warning naming the version it needs, never a request.

use atlassian_sim::Product;
use idsync_model::{OperationKind as K, TargetKind};

use crate::harness::*;

#[tokio::test]
async fn an_older_confluence_gets_only_what_it_can_do() {
    let kind = TargetKind::ConfluenceDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_group(&tenant, "confluence-users", &[&ada]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    w.atl.sim.set_version(Product::Confluence, "8.3.0");
    w.atl
        .sim
        .seed_group(Product::Confluence, "confluence-users");
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);

    for dry_run in [true, false] {
        let report = w.run(&config, "main", dry_run).await;
        let target = report
            .targets
            .iter()
            .find(|t| t.target == name)
            .expect("target report");
        assert_eq!(target.product.as_deref(), Some("Confluence 8.3.0"));
        assert!(
            ops_of(&report, name).is_empty(),
            "nothing 8.3 cannot do is sent: {}",
            pretty(&report)
        );
        assert!(
            warnings(&report, name).iter().any(|w| w.contains(
                "not sent: Confluence 8.3.0 cannot create users through its REST API (needs Confluence 8.4 or later): 1 create_user"
            )),
            "{:?}",
            warnings(&report, name)
        );
    }
    assert!(w.usernames(kind).is_empty());

    // Upgraded: the next run creates the account and its membership.
    w.atl.sim.set_version(Product::Confluence, "9.0.0");
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateUser, 1);
    assert_count(&report, name, K::AddMembership, 1);
    assert_eq!(w.members(kind, "confluence-users"), vec!["ada@contoso.com"]);

    // Back on 8.3, a membership to remove is withheld, a deactivation (8.2) is sent.
    w.atl.sim.set_version(Product::Confluence, "8.3.0");
    tenant.disable_user(&ada).expect("disabled");
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n[apps.users]\nstrip_groups_on_deprovision = true\n",
    )]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, "ada@contoso.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(
        warnings(&report, name)
            .iter()
            .any(|w| w.contains("cannot remove users from groups")
                && w.contains("needs Confluence 9.0")),
        "{:?}",
        warnings(&report, name)
    );
    assert!(!w.is_active(kind, "ada@contoso.com"));
}
