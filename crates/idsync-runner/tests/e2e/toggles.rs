//! Every user operation toggle, off and on, and what happens to users who are disabled or
//! leave the scope (`on_disable`, `on_leave`: keep / deactivate / delete), with
//! `strip_groups_on_deprovision`.

use idsync_config::Config;
use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::RunReport;
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

fn has_warning(report: &RunReport, target: &str, what: &str) -> bool {
    warnings(report, target).iter().any(|w| w.contains(what))
}

/// One target with the toggles' people at the source: ada, bob and cyd, all in Devs (which
/// maps to `developers`).
struct Case {
    tenant: graph_sim::RunningGraphSim,
    ada: String,
    bob: String,
    cyd: String,
    w: World,
    kind: TargetKind,
    name: &'static str,
}

impl Case {
    /// The tenant and an empty target of `kind`.
    async fn new(kind: TargetKind) -> Case {
        let tenant = tenant().await;
        let ada = add_user(&tenant, "ada@contoso.com");
        let bob = add_user(&tenant, "bob@contoso.com");
        let cyd = add_user(&tenant, "cyd@contoso.com");
        add_group(&tenant, "Devs", &[&ada, &bob, &cyd]);
        Case {
            tenant,
            ada,
            bob,
            cyd,
            w: World::new(&[kind]).await,
            kind,
            name: target_name(kind),
        }
    }

    /// Writes the config with these user rules and syncs `main` by it.
    async fn sync(&self, rules: &str) -> (Config, RunReport) {
        let config = self.w.write_config(&[App::new(&self.tenant, users(rules))]);
        let report = self.w.sync_ok(&config, "main").await;
        (config, report)
    }
}

/// Checks that the run planned nothing on the target.
fn assert_no_ops(report: &RunReport, name: &str) {
    assert!(ops_of(report, name).is_empty(), "{}", pretty(report));
}

/// create, update and rename, off then on; the name bob has on the target afterwards.
async fn creates_updates_and_renames(t: &Case) -> &'static str {
    // create = false: nothing is created, and the plan says why, once.
    let (_, report) = t.sync("create = false").await;
    assert_no_ops(&report, t.name);
    assert!(
        has_warning(
            &report,
            t.name,
            "not created because users.create = false: 3 user(s)"
        ),
        "{:?}",
        warnings(&report, t.name)
    );
    assert!(t.w.user(t.kind, "ada@contoso.com").is_none());

    // create = true (the default).
    let (config, report) = t.sync("").await;
    assert_eq!(count(&report, t.name, K::CreateUser), 3);
    assert_eq!(count(&report, t.name, K::AddMembership), 3);
    assert_eq!(
        t.w.members(t.kind, "developers"),
        vec!["ada@contoso.com", "bob@contoso.com", "cyd@contoso.com"]
    );
    t.w.assert_converged(&config).await;

    // update = false, rename = false: changes at the source are left alone, with a warning
    // for the rename.
    t.tenant
        .update_user(&t.ada, json!({"displayName": "Ada Byron"}))
        .expect("updated");
    t.tenant
        .update_user(&t.bob, json!({"userPrincipalName": "robert@contoso.com"}))
        .expect("renamed");
    let (config, report) = t.sync("update = false\nrename = false").await;
    assert_no_ops(&report, t.name);
    assert!(has_warning(
        &report,
        t.name,
        "not renamed because users.rename = false"
    ));
    assert_eq!(
        t.w.user(t.kind, "ada@contoso.com")
            .expect("ada")
            .display_name,
        "Ada"
    );
    assert!(t.w.user(t.kind, "robert@contoso.com").is_none());
    assert!(
        t.w.user(t.kind, "bob@contoso.com").is_some(),
        "no second account"
    );
    t.w.assert_converged(&config).await;

    // Both on again: one update, one rename (Confluence cannot rename, and says so).
    let (config, report) = t.sync("").await;
    let renames = t.kind != TargetKind::ConfluenceDc;
    let mut expected = vec![(K::UpdateUser, "ada@contoso.com".into(), String::new())];
    if renames {
        expected.insert(0, (K::RenameUser, "bob@contoso.com".into(), String::new()));
    } else {
        assert!(has_warning(
            &report,
            t.name,
            "this product cannot rename users"
        ));
    }
    assert_eq!(ops_of(&report, t.name), expected, "{}", pretty(&report));
    assert_eq!(
        t.w.user(t.kind, "ada@contoso.com")
            .expect("ada")
            .display_name,
        "Ada Byron"
    );
    let robert = if renames {
        "robert@contoso.com"
    } else {
        "bob@contoso.com"
    };
    assert!(t.w.user(t.kind, robert).is_some());
    assert_eq!(t.w.usernames(t.kind).len(), 3, "no second account");
    t.w.assert_converged(&config).await;
    robert
}

/// cyd disabled (deactivate = false, on_disable keep / delete refused / the default with
/// strip_groups_on_deprovision), then enabled again (reactivate = false, then true).
async fn disabled_and_enabled_again(t: &Case, robert: &str) {
    // cyd is disabled: deactivate = false keeps the account, and says so.
    t.tenant.disable_user(&t.cyd).expect("disabled");
    let (_, report) = t.sync("deactivate = false").await;
    assert_no_ops(&report, t.name);
    assert!(has_warning(
        &report,
        t.name,
        "not deactivated because users.deactivate = false"
    ));
    assert!(t.w.is_active(t.kind, "cyd@contoso.com"));

    // on_disable = "keep": nothing, silently.
    let (config, report) = t.sync("on_disable = \"keep\"").await;
    assert_no_ops(&report, t.name);
    assert!(t.w.is_active(t.kind, "cyd@contoso.com"));

    // on_disable = "delete" without delete = true: the config is refused, naming the field.
    std::fs::write(
        t.w.config_path(),
        t.w.config_text(&[App::new(&t.tenant, users("on_disable = \"delete\""))]),
    )
    .expect("written");
    let error = idsync_config::load(&t.w.config_path()).expect_err("refused");
    assert!(
        error.to_string().contains("apps[0].users.on_disable"),
        "{error}"
    );
    let report = t.w.sync_ok(&config, "main").await;
    assert_no_ops(&report, t.name);
    assert!(t.w.is_active(t.kind, "cyd@contoso.com"));

    // The default (deactivate), stripping the managed memberships.
    let (config, report) = t.sync("strip_groups_on_deprovision = true").await;
    assert_eq!(
        ops_of(&report, t.name),
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
    assert!(!t.w.is_active(t.kind, "cyd@contoso.com"));
    assert_eq!(
        t.w.members(t.kind, "developers"),
        vec!["ada@contoso.com", robert]
    );
    t.w.assert_converged(&config).await;

    // Enabled again: reactivate = false keeps the account inactive and says so.
    t.tenant.enable_user(&t.cyd).expect("enabled");
    let (_, report) = t.sync("reactivate = false").await;
    assert_no_ops(&report, t.name);
    assert!(has_warning(
        &report,
        t.name,
        "not reactivated because users.reactivate = false"
    ));
    assert!(!t.w.is_active(t.kind, "cyd@contoso.com"));

    // reactivate = true: back, with the group it was stripped of.
    let (config, report) = t.sync("").await;
    assert_eq!(
        ops_of(&report, t.name),
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
    assert!(t.w.is_active(t.kind, "cyd@contoso.com"));
    t.w.assert_converged(&config).await;
}

/// bob (as `robert` on the target) gone from the source: on_leave keep, deactivate, delete.
async fn leaves(t: &Case, robert: &str) {
    // bob (now robert) is deleted at the source. on_leave = "keep": nothing.
    t.tenant.hard_delete_user(&t.bob).expect("deleted");
    let (_, report) = t.sync("on_leave = \"keep\"").await;
    assert_no_ops(&report, t.name);
    assert!(t.w.is_active(t.kind, robert));

    // on_leave = "deactivate" (the default).
    let (config, report) = t.sync("").await;
    assert_eq!(
        ops_of(&report, t.name),
        vec![(K::DeactivateUser, robert.into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(!t.w.is_active(t.kind, robert));
    t.w.assert_converged(&config).await;

    // on_leave = "delete" with delete = true: the (already deactivated) account is deleted.
    let (config, report) = t.sync("on_leave = \"delete\"\ndelete = true").await;
    assert_eq!(
        ops_of(&report, t.name),
        vec![(K::DeleteUser, robert.into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(t.w.user(t.kind, robert).is_none());
    t.w.assert_converged(&config).await;
}

/// Every toggle on one target, in three stages on the same people and accounts.
async fn toggles(kind: TargetKind) {
    let t = Case::new(kind).await;
    let robert = creates_updates_and_renames(&t).await;
    disabled_and_enabled_again(&t, robert).await;
    leaves(&t, robert).await;
}

crate::per_target!(toggles: jira, confluence, bitbucket, cloud);
