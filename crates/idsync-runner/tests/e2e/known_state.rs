//! What idsync knows of a target between full reads: incremental runs plan from it and send
//! the target only the writes; it follows every change idsync makes (checked by
//! `assert_converged`, which plans from it and from a full read); and it is given up for a full
//! read whenever it may be wrong.

use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::StateSource;
use serde_json::json;

use crate::harness::*;

fn state_of(report: &idsync_runner::RunReport, target: &str) -> StateSource {
    report
        .targets
        .iter()
        .find(|t| t.target == target)
        .map(|t| t.state)
        .unwrap_or(StateSource::None)
}

fn known(source: StateSource) -> bool {
    matches!(source, StateSource::Known { .. })
}

const ON_THE_FLY_ENFORCE: &str =
    "[apps.groups]\nmapping = \"on_the_fly\"\nmemberships = \"enforce\"\n";

async fn incremental_runs_send_only_writes(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let devs = add_group(&tenant, "devs", &[&ada, &bob]);
    add_group(&tenant, "ops", &[&bob]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(&tenant, ON_THE_FLY_ENFORCE)]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    w.assert_converged(&config).await;

    // Details, a membership gone, a membership new, a new group: all planned from what idsync
    // knows, so the target sees writes and not one read.
    tenant
        .update_user(&bob, json!({"displayName": "Robert"}))
        .expect("updated");
    tenant.remove_member(&devs, &bob).expect("removed");
    add_group(&tenant, "qa", &[&ada]);
    w.atl.kit().reset_counters();
    let report = w.sync_ok(&config, "main").await;
    assert!(known(state_of(&report, name)), "{}", pretty(&report));
    assert_eq!(
        ops_of(&report, name),
        vec![
            (K::CreateGroup, String::new(), "qa".into()),
            (K::UpdateUser, "bob@contoso.com".into(), String::new()),
            (K::AddMembership, "ada@contoso.com".into(), "qa".into()),
            (K::RemoveMembership, "bob@contoso.com".into(), "devs".into()),
        ],
        "{}",
        pretty(&report)
    );
    let counts = w.atl.kit().counters();
    // One read each: SCIM addresses groups by id, which idsync looks up (once) for a group
    // it did not create in this run; the Data Center products address groups by name, and are
    // asked their version, once per run (the cloud has none to ask).
    let lookups = 1;
    assert_eq!(
        w.atl.kit().count_matching("GET "),
        lookups,
        "an incremental run reads nothing from the target but its version: {counts:?}"
    );
    assert_eq!(w.members(kind, "qa"), vec!["ada@contoso.com"]);
    assert_eq!(w.members(kind, "devs"), vec!["ada@contoso.com"]);
    w.assert_converged(&config).await;
}

async fn hand_changes_wait_for_a_full_read(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_user(&tenant, "bob@contoso.com");
    add_group(&tenant, "devs", &[&ada]);
    let mut w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(&tenant, ON_THE_FLY_ENFORCE)]);
    w.sync_ok(&config, "main").await;

    // By hand, on the target: bob into a group whose members the source decides.
    assert!(
        w.atl
            .seed_membership(product(kind), "devs", "bob@contoso.com")
    );
    let report = w.sync_ok(&config, "main").await;
    assert!(known(state_of(&report, name)), "{}", pretty(&report));
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));

    // `idsync sync --full-read` sees it.
    let report = w.run_with(&config, "main", true, true).await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    assert_eq!(
        ops_of(&report, name),
        vec![(K::RemoveMembership, "bob@contoso.com".into(), "devs".into())],
        "{}",
        pretty(&report)
    );

    // So does every run with `full_read_every_minutes = 0`.
    w.target_toml
        .insert(name, "full_read_every_minutes = 0".into());
    let config = w.write_config(&[App::new(&tenant, ON_THE_FLY_ENFORCE)]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    assert_eq!(
        ops_of(&report, name),
        vec![(K::RemoveMembership, "bob@contoso.com".into(), "devs".into())],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.members(kind, "devs"), vec!["ada@contoso.com"]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    w.assert_converged(&config).await;
}

async fn surprises_lead_to_a_full_read(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let devs = add_group(&tenant, "devs", &[&ada]);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(&tenant, ON_THE_FLY_ENFORCE)]);
    w.sync_ok(&config, "main").await;

    // Someone was quicker by hand: the account idsync is about to create is there already.
    w.atl.seed_user(
        product(kind),
        atlassian_sim::SimUser::new("cyd@contoso.com"),
    );
    let cyd = add_user(&tenant, "cyd@contoso.com");
    tenant.add_member(&devs, &cyd).expect("member");
    let report = w.sync_ok(&config, "main").await;
    assert!(known(state_of(&report, name)), "{}", pretty(&report));
    let created: Vec<_> = report.targets[0]
        .operations
        .iter()
        .filter(|o| o.planned.op.kind() == K::CreateUser)
        .map(|o| o.status)
        .collect();
    assert_eq!(created, vec![idsync_engine::OpStatus::AlreadyDone]);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with(&format!("{name}: ")) && n.contains("reads the target in full")),
        "{}",
        pretty(&report)
    );
    assert_eq!(w.usernames(kind).len(), 2, "no second account");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    let report = w.sync_ok(&config, "main").await;
    assert!(known(state_of(&report, name)), "{}", pretty(&report));
    w.assert_converged(&config).await;
}

crate::per_target!(incremental_runs_send_only_writes: jira, confluence, bitbucket, cloud);
crate::per_target!(hand_changes_wait_for_a_full_read: jira, confluence, bitbucket, cloud);
crate::per_target!(surprises_lead_to_a_full_read: jira, confluence, bitbucket, cloud);

/// A rename refused because the new name is taken (by an account made by hand since the last
/// full read) is a target other than idsync knew: the run names both accounts, and the next run
/// reads the target in full, sees the name taken and says so instead of failing again.
async fn a_rename_to_a_taken_name_leads_to_a_full_read(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_user(&tenant, "bob@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(&tenant, "")]);
    w.sync_ok(&config, "main").await;
    // Made by hand in the product: idsync does not know it until a full read.
    w.seed(kind, "ada.byron@contoso.com", "someone@contoso.com");
    tenant
        .update_user(&ada, json!({"userPrincipalName": "ada.byron@contoso.com"}))
        .expect("renamed at the source");

    let report = w.run(&config, "main", false).await;
    assert!(known(state_of(&report, name)), "{}", pretty(&report));
    assert_eq!(
        report.status,
        idsync_runner::RunStatus::Partial,
        "{}",
        pretty(&report)
    );
    let failed = report
        .targets
        .iter()
        .flat_map(|t| t.operations.iter())
        .find(|o| o.planned.op.kind() == K::RenameUser)
        .expect("the rename");
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("'ada@contoso.com'") && error.contains("'ada.byron@contoso.com'"),
        "names both accounts: {error}"
    );
    assert!(error.contains("another account"), "{error}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with(&format!("{name}: ")) && n.contains("reads the target in full")),
        "{}",
        pretty(&report)
    );

    // The next run reads the target, sees the name taken and plans no rename: a warning that
    // names both accounts, not the same failure again.
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(state_of(&report, name), StateSource::FullRead);
    assert_count(&report, name, K::RenameUser, 0);
    assert!(
        warnings(&report, name)
            .iter()
            .any(|w| w.contains("ada@contoso.com")
                && w.contains("ada.byron@contoso.com")
                && w.contains("another account")),
        "{}",
        pretty(&report)
    );
}

crate::per_target!(a_rename_to_a_taken_name_leads_to_a_full_read: jira, bitbucket, cloud);
