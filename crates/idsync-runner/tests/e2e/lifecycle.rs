//! The user lifecycle on every target: create, update, rename (UPN change), deactivate,
//! reactivate, delete — each followed by a sync that plans nothing.

use idsync_model::{OperationKind as K, TargetKind};
use serde_json::json;

use crate::harness::*;

async fn lifecycle(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada.lovelace@contoso.com");
    let bob = add_user(&tenant, "bob.smith@contoso.com");
    let cyd = tenant
        .add_user(graph_sim::NewUser {
            account_enabled: false,
            ..new_user("cyd.jones@contoso.com")
        })
        .expect("user added");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        r#"
[apps.users]
delete = true
on_leave = "delete"
"#,
    )]);

    // First sync: the two enabled users are created, the disabled one is not.
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateUser, 2);
    let a = w
        .user(kind, "ada.lovelace@contoso.com")
        .expect("ada created");
    assert_eq!(a.email, "ada.lovelace@contoso.com");
    assert_eq!(a.display_name, "Ada Lovelace");
    assert!(w.is_active(kind, "ada.lovelace@contoso.com"));
    assert!(w.user(kind, "bob.smith@contoso.com").is_some());
    assert!(w.user(kind, "cyd.jones@contoso.com").is_none());
    w.assert_converged(&config).await;

    // Details changed at the source → an update.
    tenant
        .update_user(
            &bob,
            json!({"displayName": "Robert Smith", "mail": "robert@contoso.com"}),
        )
        .expect("updated");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::UpdateUser, "bob.smith@contoso.com".into(), String::new())]
    );
    let b = w.user(kind, "bob.smith@contoso.com").expect("bob");
    assert_eq!(b.display_name, "Robert Smith");
    // Confluence's REST API never reports e-mail addresses: idsync compares with the one it
    // last sent (see tests/e2e/remembered.rs).
    assert_eq!(b.email, "robert@contoso.com");
    w.assert_converged(&config).await;

    // A UPN change is a rename of the same account, never a second account.
    tenant
        .update_user(&ada, json!({"userPrincipalName": "ada.byron@contoso.com"}))
        .expect("renamed");
    let report = w.sync_ok(&config, "main").await;
    if kind == TargetKind::ConfluenceDc {
        // Confluence cannot rename: the plan says so, and no second account is made.
        assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
        assert!(
            warnings(&report, name)
                .iter()
                .any(|w| w.contains("not renamed: this product cannot rename users")),
            "{:?}",
            warnings(&report, name)
        );
        assert_eq!(
            w.usernames(kind),
            vec!["ada.lovelace@contoso.com", "bob.smith@contoso.com"]
        );
        w.assert_converged(&config).await;
        return lifecycle_rest(kind, &tenant, &w, &config, &bob, &cyd).await;
    }
    assert_eq!(
        ops_of(&report, name),
        vec![(
            K::RenameUser,
            "ada.lovelace@contoso.com".into(),
            String::new()
        )],
        "{}",
        pretty(&report)
    );
    let renamed = w
        .user(kind, "ada.byron@contoso.com")
        .expect("renamed account");
    assert_eq!(renamed.key, a.key, "the link follows the Entra object id");
    assert!(w.user(kind, "ada.lovelace@contoso.com").is_none());
    assert_eq!(
        w.usernames(kind),
        vec!["ada.byron@contoso.com", "bob.smith@contoso.com"]
    );
    w.assert_converged(&config).await;
    lifecycle_rest(kind, &tenant, &w, &config, &bob, &cyd).await;
}

/// Deactivation, reactivation, creation and deletion.
async fn lifecycle_rest(
    kind: TargetKind,
    tenant: &graph_sim::RunningGraphSim,
    w: &World,
    config: &idsync_config::Config,
    bob: &str,
    cyd: &str,
) {
    let name = target_name(kind);
    let config = config.clone();
    // Disabled at the source → deactivated; enabled again → reactivated.
    tenant.disable_user(bob).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::DeactivateUser, 1);
    assert!(!w.is_active(kind, "bob.smith@contoso.com"));
    w.assert_converged(&config).await;
    tenant.enable_user(bob).expect("enabled");
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::ReactivateUser, 1);
    assert!(w.is_active(kind, "bob.smith@contoso.com"));
    w.assert_converged(&config).await;

    // Enabling the disabled user creates it; deleting a user at the source deletes the account
    // (on_leave = "delete", delete = true).
    tenant.enable_user(cyd).expect("enabled");
    tenant.hard_delete_user(bob).expect("deleted");
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateUser, 1);
    assert_count(&report, name, K::DeleteUser, 1);
    assert!(w.user(kind, "bob.smith@contoso.com").is_none());
    assert!(w.user(kind, "cyd.jones@contoso.com").is_some());
    w.assert_converged(&config).await;
}

crate::per_target!(lifecycle: jira, confluence, bitbucket, cloud);
