//! Scopes: the whole directory, an enterprise application's assignments (users and groups,
//! nested groups only when asked, as Entra does not cascade assignments) and chosen groups (by name or id, nested or not).

use idsync_config::Config;
use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::{RunReport, RunStatus};

use crate::harness::*;

const APP_ID: &str = "0f4e7a3c-1b2d-4c5e-8f90-a1b2c3d4e5f6";

fn active_users(w: &World, kind: TargetKind) -> Vec<String> {
    w.usernames(kind)
        .into_iter()
        .filter(|u| w.is_active(kind, u))
        .collect()
}

/// The tenant of the scopes: ada and (through Contractors) cyd in Jira Users; bob assigned
/// to the enterprise app directly, dan through App Nested in the assigned App Group; eve in
/// none of them.
struct Source {
    tenant: graph_sim::RunningGraphSim,
    bob: String,
    contractors: String,
    app_group: String,
}

impl Source {
    /// The tenant, its users, groups and enterprise app with its assignments.
    async fn new() -> Source {
        let tenant = tenant().await;
        let ada = add_user(&tenant, "ada@contoso.com");
        let bob = add_user(&tenant, "bob@contoso.com");
        let cyd = add_user(&tenant, "cyd@contoso.com");
        let dan = add_user(&tenant, "dan@contoso.com");
        let _eve = add_user(&tenant, "eve@contoso.com");
        let contractors = add_group(&tenant, "Contractors", &[&cyd]);
        add_group(&tenant, "Jira Users", &[&ada, &contractors]);
        let nested = add_group(&tenant, "App Nested", &[&dan]);
        let app_group = add_group(&tenant, "App Group", &[&nested]);
        tenant
            .add_service_principal("Jira SSO", Some(APP_ID))
            .expect("enterprise app");
        tenant.assign_app(APP_ID, &bob).expect("assigned");
        tenant.assign_app(APP_ID, &app_group).expect("assigned");
        Source {
            tenant,
            bob,
            contractors,
            app_group,
        }
    }
}

/// A `groups` scope on these groups (the items of a TOML list).
fn groups_scope(groups: &str) -> String {
    format!("[apps.scope]\nkind = \"groups\"\ngroups = [{groups}]\n")
}

/// The enterprise app's scope, through nested groups when `expand_nested`.
fn enterprise_app_scope(expand_nested: bool) -> String {
    let expand = if expand_nested {
        "expand_nested_groups = true\n"
    } else {
        ""
    };
    format!("[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"{APP_ID}\"\n{expand}")
}

/// An operation on a user (no group), as `ops_of` lists it.
fn user_op(kind: K, user: &str) -> (K, String, String) {
    (kind, user.into(), String::new())
}

/// Writes the config with this app TOML and syncs `main` by it.
async fn sync_with(
    w: &World,
    tenant: &graph_sim::RunningGraphSim,
    toml: impl Into<String>,
) -> (Config, RunReport) {
    let config = w.write_config(&[App::new(tenant, toml)]);
    let report = w.sync_ok(&config, "main").await;
    (config, report)
}

/// Checks that the run's operations on the target are `expected`, in order.
fn assert_ops(report: &RunReport, name: &str, expected: Vec<(K, String, String)>) {
    assert_eq!(ops_of(report, name), expected, "{}", pretty(report));
}

/// The scope on groups: by name with nested groups and without, then by object id; cyd is
/// the only account active after.
async fn group_scopes(w: &World, src: &Source, kind: TargetKind) {
    let tenant = &src.tenant;
    let name = target_name(kind);

    // Groups by name, nested groups expanded: ada and (through Contractors) cyd.
    let (config, report) = sync_with(w, tenant, groups_scope("\"Jira Users\"")).await;
    assert_count(&report, name, K::CreateUser, 2);
    assert_eq!(
        w.usernames(kind),
        vec!["ada@contoso.com", "cyd@contoso.com"]
    );
    w.assert_converged(&config).await;

    // Without nested groups cyd leaves the scope and is deactivated.
    let (config, report) = sync_with(
        w,
        tenant,
        format!("nested_groups = false\n{}", groups_scope("\"Jira Users\"")),
    )
    .await;
    assert_ops(
        &report,
        name,
        vec![user_op(K::DeactivateUser, "cyd@contoso.com")],
    );
    assert_eq!(active_users(w, kind), vec!["ada@contoso.com"]);
    w.assert_converged(&config).await;

    // A group by object id: cyd is back, ada leaves.
    let (config, report) =
        sync_with(w, tenant, groups_scope(&format!("\"{}\"", src.contractors))).await;
    assert_ops(
        &report,
        name,
        vec![
            user_op(K::ReactivateUser, "cyd@contoso.com"),
            user_op(K::DeactivateUser, "ada@contoso.com"),
        ],
    );
    assert_eq!(active_users(w, kind), vec!["cyd@contoso.com"]);
    w.assert_converged(&config).await;
}

/// The enterprise app's scope: as Entra assigns it, through nested groups when asked, and an
/// assignment removed; bob is the only account active after.
async fn enterprise_app_scopes(w: &World, src: &Source, kind: TargetKind) {
    let tenant = &src.tenant;
    let name = target_name(kind);

    // The enterprise app, as Entra assigns it: bob directly; dan is in App Nested, a group
    // nested in the assigned App Group, and assignment does not cascade to nested groups.
    let (config, report) = sync_with(w, tenant, enterprise_app_scope(false)).await;
    assert_ops(
        &report,
        name,
        vec![
            user_op(K::CreateUser, "bob@contoso.com"),
            user_op(K::DeactivateUser, "cyd@contoso.com"),
        ],
    );
    assert_eq!(active_users(w, kind), vec!["bob@contoso.com"]);
    assert_eq!(
        tenant.snapshot().users_with_app_access(APP_ID),
        [src.bob.clone()].into_iter().collect(),
        "the simulator's Entra agrees"
    );
    w.assert_converged(&config).await;

    // Going further than Entra, when asked: dan too.
    let (config, report) = sync_with(w, tenant, enterprise_app_scope(true)).await;
    assert_ops(
        &report,
        name,
        vec![user_op(K::CreateUser, "dan@contoso.com")],
    );
    assert_eq!(
        active_users(w, kind),
        vec!["bob@contoso.com", "dan@contoso.com"]
    );
    w.assert_converged(&config).await;

    // Assignment removed at the source: dan leaves the scope.
    tenant
        .unassign_app(APP_ID, &src.app_group)
        .expect("unassigned");
    let report = w.sync_ok(&config, "main").await;
    assert_ops(
        &report,
        name,
        vec![user_op(K::DeactivateUser, "dan@contoso.com")],
    );
    w.assert_converged(&config).await;
}

/// Each kind of scope in turn on one target, the same people throughout.
async fn scopes(kind: TargetKind) {
    let src = Source::new().await;
    let tenant = &src.tenant;
    let w = World::new(&[kind]).await;
    let name = target_name(kind);

    group_scopes(&w, &src, kind).await;
    enterprise_app_scopes(&w, &src, kind).await;

    // The whole directory: everyone, ada/cyd/dan reactivated, eve created.
    let (config, report) = sync_with(&w, tenant, "").await;
    assert_count(&report, name, K::CreateUser, 1);
    assert_count(&report, name, K::ReactivateUser, 3);
    assert_eq!(
        active_users(&w, kind),
        vec![
            "ada@contoso.com",
            "bob@contoso.com",
            "cyd@contoso.com",
            "dan@contoso.com",
            "eve@contoso.com"
        ]
    );
    w.assert_converged(&config).await;
}

crate::per_target!(scopes: jira, confluence, bitbucket, cloud);

/// A scope naming a group the tenant does not have, or one several groups share, fails the run
/// (nothing planned) and says which entry of the config is wrong, as config errors name
/// fields; an enterprise application the tenant does not have likewise.
#[tokio::test]
async fn a_scope_the_tenant_lacks_fails_the_run_naming_each_field() {
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_group(&tenant, "Jira Users", &[&ada]);
    add_group(&tenant, "Devs", &[&ada]);
    add_group(&tenant, "devs", &[]);
    let w = World::new(&[kind]).await;

    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.scope]\nkind = \"groups\"\ngroups = [\"Jira Users\", \"Jira Admins\", \"Devs\"]\n",
    )]);
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", pretty(&report));
    let fields: Vec<&str> = report
        .config_problems
        .iter()
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["apps[0].scope.groups[1]", "apps[0].scope.groups[2]"],
        "{}",
        pretty(&report)
    );
    assert!(
        report.config_problems[0]
            .message
            .contains("\"Jira Admins\"")
    );
    assert!(
        report.config_problems[1]
            .message
            .contains("2 groups are named")
    );
    let error = report.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with(
            "reading the source of app \"main\" failed: apps[0].scope.groups[1]: no group is named"
        ),
        "{error}"
    );
    assert!(
        !error.contains("app 'main'"),
        "the app is named once: {error}"
    );
    assert!(all_ops(&report).is_empty(), "{}", pretty(&report));
    assert!(w.usernames(kind).is_empty());

    let config = w.write_config(&[App::new(
        &tenant,
        format!("[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"{APP_ID}\"\n"),
    )]);
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", pretty(&report));
    assert_eq!(report.config_problems.len(), 1, "{}", pretty(&report));
    assert_eq!(report.config_problems[0].field, "apps[0].scope.app_id");
    assert!(
        report.config_problems[0].message.contains(APP_ID),
        "{}",
        pretty(&report)
    );
}

/// The members of a group with hidden membership need Member.Read.Hidden. Without it, Graph
/// lists such a group as if it had no members; idsync must not take that as everyone having left
/// it: with the group in the scope and mapped (memberships enforced), runs without the permission
/// deactivate nobody and remove no membership, and say why. A user deleted from the directory is
/// still deprovisioned, and once the permission is back, a member who really left is too.
async fn hidden_membership(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let cyd = add_user(&tenant, "cyd@contoso.com");
    let dan = add_user(&tenant, "dan@contoso.com");
    let hidden = tenant
        .create_group_with(serde_json::json!({
            "displayName": "Hidden class", "mailNickname": "hiddenclass",
            "groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false,
            "visibility": "HiddenMembership"
        }))
        .expect("hidden group");
    for u in [&ada, &bob] {
        tenant.add_member(&hidden, u).expect("member");
    }
    add_group(&tenant, "Open team", &[&cyd, &dan]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.scope]\nkind = \"groups\"\ngroups = [\"Hidden class\", \"Open team\"]\n\
         [apps.groups]\nmapping = \"on_the_fly\"\nmemberships = \"enforce\"\n",
    )]);

    // With the permission (the simulator's default): everyone, in their groups.
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateUser, 4);
    assert_eq!(
        w.members(kind, "Hidden class"),
        vec!["ada@contoso.com", "bob@contoso.com"]
    );

    // Consent for Member.Read.Hidden is withdrawn; meanwhile bob leaves the hidden group
    // (unseen) and dan is deleted from the directory.
    tenant.withhold_permission("Member.Read.Hidden");
    tenant.remove_member(&hidden, &bob).expect("removed");
    tenant.hard_delete_user(&dan).expect("deleted");
    let hidden_note = |report: &idsync_runner::RunReport| {
        report
            .notes
            .iter()
            .any(|n| n.contains("\"Hidden class\"") && n.contains("Member.Read.Hidden"))
    };
    // A delta run, a run whose groups delta token expired (a full read of groups that keeps
    // what was known), and `--full-read` (which knows nothing from before): none removes
    // anything but dan.
    for (step, full_read) in [("delta", false), ("expired", false), ("full read", true)] {
        if step == "expired" {
            tenant.expire_delta_tokens();
        }
        let report = w.run_with(&config, "main", false, full_read).await;
        assert_eq!(
            report.status,
            RunStatus::Done,
            "{step}: {}",
            pretty(&report)
        );
        let ops = ops_of(&report, name);
        assert!(
            ops.iter().all(|(k, user, _)| user == "dan@contoso.com"
                && matches!(k, K::DeactivateUser | K::RemoveMembership)),
            "{step}: only dan may go: {}",
            pretty(&report)
        );
        assert_eq!(
            w.members(kind, "Hidden class"),
            vec!["ada@contoso.com", "bob@contoso.com"],
            "{step}"
        );
        for user in ["ada@contoso.com", "bob@contoso.com", "cyd@contoso.com"] {
            assert!(w.is_active(kind, user), "{step}: {user} stays active");
        }
        assert!(!w.is_active(kind, "dan@contoso.com"), "{step}");
        if step != "delta" {
            // Only a full read of groups can tell that the members are not visible.
            assert!(hidden_note(&report), "{step}: {}", pretty(&report.notes));
            assert!(
                warnings(&report, name)
                    .iter()
                    .any(|w| w.contains("Hidden class") && w.contains("Member.Read.Hidden")),
                "{step}: {}",
                pretty(&report)
            );
        }
    }

    // Consent is given again: the hidden group is read as it is, and bob, who really left it
    // (and so the scope), is deactivated (keeping his memberships, as any deactivated account
    // does without strip_groups_on_deprovision).
    tenant.grant_permission("Member.Read.Hidden");
    let report = w.sync_ok(&config, "main").await;
    assert!(!hidden_note(&report), "{}", pretty(&report.notes));
    assert_eq!(
        ops_of(&report, name),
        vec![user_op(K::DeactivateUser, "bob@contoso.com")],
        "{}",
        pretty(&report)
    );
    assert!(!w.is_active(kind, "bob@contoso.com"));
    assert!(w.is_active(kind, "ada@contoso.com"));
    w.assert_converged(&config).await;
}

crate::per_target!(hidden_membership: jira);
