//! Every user operation toggle, off and on, and what happens to users who are disabled or
//! leave the scope (`on_disable`, `on_leave`: keep / deactivate / delete), with
//! `strip_groups_on_deprovision`.

use idsync_model::{OperationKind as K, TargetKind};
use serde_json::json;

use crate::harness::*;

const GROUPS: &str = r#"
[apps.groups]
mapping = "manual"
manual = [{ source = "Devs", targets = ["developers"] }]
"#;

fn users(rules: &str) -> String {
    format!("[apps.users]\n{rules}\n{GROUPS}")
}

fn has_warning(report: &idsync_runner::RunReport, target: &str, what: &str) -> bool {
    warnings(report, target).iter().any(|w| w.contains(what))
}

async fn toggles(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let cyd = add_user(&tenant, "cyd@contoso.com");
    add_group(&tenant, "Devs", &[&ada, &bob, &cyd]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let app = |rules: &str| w.write_config(&[App::new(&tenant, users(rules))]);

    // create = false: nothing is created, and the plan says why, once.
    let config = app("create = false");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(
        has_warning(
            &report,
            name,
            "not created because users.create = false: 3 user(s)"
        ),
        "{:?}",
        warnings(&report, name)
    );
    assert!(w.user(kind, "ada@contoso.com").is_none());

    // create = true (the default).
    let config = app("");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(count(&report, name, K::CreateUser), 3);
    assert_eq!(count(&report, name, K::AddMembership), 3);
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", "bob@contoso.com", "cyd@contoso.com"]
    );
    w.assert_converged(&config).await;

    // update = false, rename = false: changes at the source are left alone, with a warning
    // for the rename.
    tenant
        .update_user(&ada, json!({"displayName": "Ada Byron"}))
        .expect("updated");
    tenant
        .update_user(&bob, json!({"userPrincipalName": "robert@contoso.com"}))
        .expect("renamed");
    let config = app("update = false\nrename = false");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(has_warning(
        &report,
        name,
        "not renamed because users.rename = false"
    ));
    assert_eq!(
        w.user(kind, "ada@contoso.com").expect("ada").display_name,
        "Ada"
    );
    assert!(w.user(kind, "robert@contoso.com").is_none());
    assert!(
        w.user(kind, "bob@contoso.com").is_some(),
        "no second account"
    );
    w.assert_converged(&config).await;

    // Both on again: one update, one rename (Confluence cannot rename, and says so).
    let config = app("");
    let report = w.sync_ok(&config, "main").await;
    let renames = kind != TargetKind::ConfluenceDc;
    let mut expected = vec![(K::UpdateUser, "ada@contoso.com".into(), String::new())];
    if renames {
        expected.insert(0, (K::RenameUser, "bob@contoso.com".into(), String::new()));
    } else {
        assert!(has_warning(
            &report,
            name,
            "this product cannot rename users"
        ));
    }
    assert_eq!(ops_of(&report, name), expected, "{}", pretty(&report));
    assert_eq!(
        w.user(kind, "ada@contoso.com").expect("ada").display_name,
        "Ada Byron"
    );
    let robert = if renames {
        "robert@contoso.com"
    } else {
        "bob@contoso.com"
    };
    assert!(w.user(kind, robert).is_some());
    assert_eq!(w.usernames(kind).len(), 3, "no second account");
    w.assert_converged(&config).await;

    // cyd is disabled: deactivate = false keeps the account, and says so.
    tenant.disable_user(&cyd).expect("disabled");
    let config = app("deactivate = false");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(has_warning(
        &report,
        name,
        "not deactivated because users.deactivate = false"
    ));
    assert!(w.is_active(kind, "cyd@contoso.com"));

    // on_disable = "keep": nothing, silently.
    let config = app("on_disable = \"keep\"");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(w.is_active(kind, "cyd@contoso.com"));

    // on_disable = "delete" without delete = true: the config is refused, naming the field.
    std::fs::write(
        w.config_path(),
        w.config_text(&[App::new(&tenant, users("on_disable = \"delete\""))]),
    )
    .expect("written");
    let error = idsync_config::load(&w.config_path()).expect_err("refused");
    assert!(
        error.to_string().contains("apps[0].users.on_disable"),
        "{error}"
    );
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(w.is_active(kind, "cyd@contoso.com"));

    // The default (deactivate), stripping the managed memberships.
    let config = app("strip_groups_on_deprovision = true");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![
            (
                K::RemoveMembership,
                "cyd@contoso.com".into(),
                "developers".into()
            ),
            (K::DeactivateUser, "cyd@contoso.com".into(), String::new()),
        ],
        "{}",
        pretty(&report)
    );
    assert!(!w.is_active(kind, "cyd@contoso.com"));
    assert_eq!(
        w.members(kind, "developers"),
        vec!["ada@contoso.com", robert]
    );
    w.assert_converged(&config).await;

    // Enabled again: reactivate = false keeps the account inactive and says so.
    tenant.enable_user(&cyd).expect("enabled");
    let config = app("reactivate = false");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(has_warning(
        &report,
        name,
        "not reactivated because users.reactivate = false"
    ));
    assert!(!w.is_active(kind, "cyd@contoso.com"));

    // reactivate = true: back, with the group it was stripped of.
    let config = app("");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![
            (K::ReactivateUser, "cyd@contoso.com".into(), String::new()),
            (
                K::AddMembership,
                "cyd@contoso.com".into(),
                "developers".into()
            ),
        ],
        "{}",
        pretty(&report)
    );
    assert!(w.is_active(kind, "cyd@contoso.com"));
    w.assert_converged(&config).await;

    // bob (now robert) is deleted at the source. on_leave = "keep": nothing.
    tenant.hard_delete_user(&bob).expect("deleted");
    let config = app("on_leave = \"keep\"");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(w.is_active(kind, robert));

    // on_leave = "deactivate" (the default).
    let config = app("");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, robert.into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(!w.is_active(kind, robert));
    w.assert_converged(&config).await;

    // on_leave = "delete" with delete = true: the (already deactivated) account is deleted.
    let config = app("on_leave = \"delete\"\ndelete = true");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeleteUser, robert.into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(w.user(kind, robert).is_none());
    w.assert_converged(&config).await;
}

crate::per_target!(toggles: jira, confluence, bitbucket, cloud);
