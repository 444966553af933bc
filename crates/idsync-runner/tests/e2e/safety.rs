//! Safety: the mass-change guard (held, nothing applied; approved, then applied), a source
//! read that fails or is cut short (run failed, nothing changed on the targets), and a run
//! that fails or crashes half way (the next run converges, no duplicates).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atlassian_sim::{FaultKind, FaultRule};
use idsync_engine::OpResult;
use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::{Progress, RunStatus, Trigger};
use serde_json::json;

use crate::harness::*;
use graph_sim::sim_kit::{FaultKind as FaultKindG, FaultRule as FaultRuleG};

/// Requests that change something on the Atlassian simulator (anything but GET).
fn writes(w: &World) -> u64 {
    w.atl
        .kit()
        .counters()
        .iter()
        .filter(|(k, _)| k.as_str() != "total" && !k.starts_with("GET "))
        .map(|(_, v)| *v)
        .sum()
}

async fn threshold_hold_and_approve(kind: TargetKind) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..10)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.guard]\nmax_deprovision_percent = 20.0\nmax_deprovision_count = 50\n",
    )]);
    w.sync_ok(&config, "main").await;

    // 3 of 10 (30%) disabled, and a harmless change besides: the whole plan is held.
    for id in &ids[..3] {
        tenant.disable_user(id).expect("disabled");
    }
    tenant
        .update_user(&ids[5], json!({"displayName": "Renamed Five"}))
        .expect("updated");
    let before = writes(&w);
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Held, "{}", pretty(&report));
    let hold = report.hold.as_ref().expect("hold");
    assert_eq!((hold.deprovisions, hold.managed_users), (3, 10));
    assert!(
        hold.reason.contains("max_deprovision_percent"),
        "{}",
        hold.reason
    );
    assert_eq!(count(&report, name, K::DeactivateUser), 3);
    assert_eq!(writes(&w), before, "nothing applied while held");
    for i in 0..3 {
        assert!(w.is_active(kind, &format!("user{i}@contoso.com")));
    }
    assert_ne!(
        w.user(kind, "user5@contoso.com")
            .expect("user")
            .display_name,
        "Renamed Five"
    );
    // Held again on the next run, until approved.
    let again = w.run(&config, "main", false).await;
    assert_eq!(again.status, RunStatus::Held);

    // Approve (as `idsync approve` does), then the sync goes through.
    let store = w.store(&config).await;
    approve(store, again.run_id).await.expect("approved");
    let report = idsync_runner::sync_app(
        &config,
        "main",
        store,
        idsync_runner::RunOptions {
            trigger: Trigger::Approval,
            ..idsync_runner::RunOptions::manual()
        },
        Arc::new(idsync_runner::Quiet),
    )
    .await
    .expect("run");
    assert_eq!(report.status, RunStatus::Done, "{}", pretty(&report));
    assert_eq!(count(&report, name, K::DeactivateUser), 3);
    for i in 0..3 {
        assert!(!w.is_active(kind, &format!("user{i}@contoso.com")));
    }
    assert_eq!(
        w.user(kind, "user5@contoso.com")
            .expect("user")
            .display_name,
        "Renamed Five"
    );
    w.assert_converged(&config).await;

    // The approval is used up: the next mass change is held again.
    for id in &ids[3..6] {
        tenant.disable_user(id).expect("disabled");
    }
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Held, "{}", pretty(&report));

    // The absolute limit holds too, whatever the percentage.
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.guard]\nmax_deprovision_percent = 100.0\nmax_deprovision_count = 2\n",
    )]);
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Held, "{}", pretty(&report));
    let reason = &report.hold.as_ref().expect("hold").reason;
    assert!(reason.contains("max_deprovision_count = 2"), "{reason}");
    for i in 3..6 {
        assert!(w.is_active(kind, &format!("user{i}@contoso.com")));
    }
}

async fn partial_read_changes_nothing(kind: TargetKind) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..6)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let devs = add_group(
        &tenant,
        "Devs",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);
    w.sync_ok(&config, "main").await;
    w.assert_converged(&config).await;
    // Pages of one object, so that a read can break off in the middle.
    tenant.set_page_cap(Some(1));

    // At the source: one user disabled, one deleted, one out of the group, one new.
    tenant.disable_user(&ids[0]).expect("disabled");
    tenant.hard_delete_user(&ids[1]).expect("deleted");
    tenant.remove_member(&devs, &ids[2]).expect("removed");
    add_user(&tenant, "new@contoso.com");
    let graph = tenant.kit();
    let fault = |kind: FaultKindG, path: &str| FaultRuleG::once(kind).on_path(path).times(0);
    let mut faults = vec![
        // Groups answer 503 beyond the retries (Retry-After 0 keeps the test quick).
        fault(
            FaultKindG::Status {
                status: 503,
                retry_after: Some(0),
                body: None,
            },
            "/groups/delta",
        ),
        // The second page of users is not a Graph page at all.
        fault(
            FaultKindG::Status {
                status: 200,
                retry_after: None,
                body: Some(json!({"unexpected": true})),
            },
            "/users/delta",
        )
        .after(1),
    ];
    if kind == TargetKind::JiraDc {
        // Slower (the client backs off between retries), so on one target only: the
        // connection drops on the second page of users on every retry; 500s after one page.
        faults.push(fault(FaultKindG::Drop, "/users/delta").after(1));
        faults.push(
            fault(
                FaultKindG::Status {
                    status: 500,
                    retry_after: None,
                    body: None,
                },
                "/delta",
            )
            .after(1),
        );
    }
    for fault in faults {
        graph.clear_faults();
        graph.inject(fault.clone());
        let before = writes(&w);
        let report = w.run(&config, "main", false).await;
        assert_eq!(
            report.status,
            RunStatus::Failed,
            "{fault:?}: {}",
            pretty(&report)
        );
        let error = report.error.as_deref().unwrap_or_default();
        assert!(error.contains("reading the source"), "{error}");
        assert!(all_ops(&report).is_empty(), "{}", pretty(&report));
        assert_eq!(
            writes(&w),
            before,
            "no change on the target after {fault:?}"
        );
        for i in 0..6 {
            assert!(w.is_active(kind, &format!("user{i}@contoso.com")));
        }
        assert_eq!(w.members(kind, "Devs").len(), 6);
        assert!(w.user(kind, "new@contoso.com").is_none());
    }

    // Faults gone: the same changes are applied in full.
    graph.clear_faults();
    let report = w.sync_ok(&config, "main").await;
    let mut ops = ops_of(&report, name);
    ops.sort();
    assert_eq!(
        ops,
        vec![
            (K::CreateUser, "new@contoso.com".into(), String::new()),
            (
                K::RemoveMembership,
                "user2@contoso.com".into(),
                "Devs".into()
            ),
            (K::DeactivateUser, "user0@contoso.com".into(), String::new()),
            (K::DeactivateUser, "user1@contoso.com".into(), String::new()),
        ],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;
}

/// Some operations fail on the target (the run goes on, and says so); the next run converges.
async fn failed_operations_then_rerun(kind: TargetKind) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..6)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    add_group(
        &tenant,
        "Devs",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);
    let create_path = match kind {
        TargetKind::JiraDc => "/jira/rest/api/2/user",
        TargetKind::ConfluenceDc => "/confluence/rest/api/admin/user",
        TargetKind::BitbucketDc => "/bitbucket/rest/api/1.0/admin/users",
        TargetKind::AtlassianCloud => "/Users",
    };
    // After three creations, every further creation is refused.
    w.atl.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 403,
            retry_after: None,
            body: None,
        })
        .on_method("POST")
        .on_path(create_path)
        .after(3)
        .times(0),
    );
    let report = w.run(&config, "main", false).await;
    assert_eq!(report.status, RunStatus::Partial, "{}", pretty(&report));
    let totals = &report.totals[&K::CreateUser];
    assert_eq!((totals.done, totals.failed), (3, 3), "{}", pretty(&report));
    // Memberships of the accounts that could not be created are skipped, the rest applied.
    assert_eq!(report.totals[&K::AddMembership].skipped, 3);
    assert_eq!(w.members(kind, "Devs").len(), 3);

    w.atl.kit().clear_faults();
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::CreateUser, 3);
    assert_count(&report, name, K::AddMembership, 3);
    let names: Vec<String> = (0..6).map(|i| format!("user{i}@contoso.com")).collect();
    assert_eq!(w.usernames(kind), names);
    assert_eq!(w.members(kind, "Devs"), names);
    w.assert_converged(&config).await;
}

/// A progress display that crashes the run after `after` results, as a killed process would
/// stop it: nothing after that point runs, and the run's bookkeeping is never written.
struct CrashAfter {
    after: usize,
    seen: AtomicUsize,
}

impl Progress for CrashAfter {
    fn applied(&self, _result: &OpResult) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            panic!("simulated crash half way through the run");
        }
    }
}

async fn crash_and_rerun(kind: TargetKind) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..8)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    add_group(
        &tenant,
        "Devs",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut w = World::new(&[kind]).await;
    let name = target_name(kind);
    // One operation at a time, so that the crash point is exact.
    w.target_toml.insert(name, "concurrency = 1".into());
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);
    // Crash after the group and five accounts were created.
    let store = w.store(&config).await.clone();
    let crashing_config = config.clone();
    let crashed = tokio::spawn(async move {
        idsync_runner::sync_app(
            &crashing_config,
            "main",
            &store,
            idsync_runner::RunOptions::manual(),
            Arc::new(CrashAfter {
                after: 6,
                seen: AtomicUsize::new(0),
            }),
        )
        .await
    })
    .await;
    assert!(crashed.is_err(), "the run crashed");
    // Bitbucket's new accounts are reported once their ids are learned, at the end of the
    // creations: there the crash comes after all eight were made.
    let made = if kind == TargetKind::BitbucketDc {
        8
    } else {
        5
    };
    assert_eq!(w.usernames(kind).len(), made, "accounts after the crash");
    assert!(w.members(kind, "Devs").is_empty());

    // The next run finishes the job: the five accounts made before the crash are recognised
    // (their results were never recorded, but the intents to create them were, before the
    // requests went out), no duplicates, every membership.
    let report = w.sync_ok(&config, "main").await;
    // What idsync knew of the target before the crash misses what the crashed run did: the
    // target is read in full.
    assert_eq!(
        report.targets[0].state,
        idsync_runner::StateSource::FullRead,
        "{}",
        pretty(&report)
    );
    // The crashed run is closed in the history, not left "running" for ever.
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("stopped before it finished")),
        "{}",
        pretty(&report)
    );
    assert_eq!(
        count(&report, name, K::CreateUser),
        8 - made,
        "{}",
        pretty(&report)
    );
    assert_count(&report, name, K::AddMembership, 8);
    // Linked as the crashed run went, or claimed by the intents it left: not adopted by name
    // (that works with adoption turned off too).
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("creation(s) of an interrupted run settled")),
        "{}",
        pretty(&report)
    );
    let adopted = report
        .targets
        .iter()
        .find(|t| t.target == name)
        .map_or(0, |t| t.adoptions.len());
    assert_eq!(adopted, 0, "{}", pretty(&report));
    let names: Vec<String> = (0..8).map(|i| format!("user{i}@contoso.com")).collect();
    assert_eq!(w.usernames(kind), names);
    assert_eq!(w.members(kind, "Devs"), names);
    w.assert_converged(&config).await;

    // And the accounts adopted after the crash are managed like the others.
    tenant.disable_user(&ids[0]).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, "user0@contoso.com".into(), String::new())]
    );
}

crate::per_target!(threshold_hold_and_approve: jira, confluence, bitbucket, cloud);
crate::per_target!(partial_read_changes_nothing: jira, confluence, bitbucket, cloud);
crate::per_target!(failed_operations_then_rerun: jira, confluence, bitbucket, cloud);
crate::per_target!(crash_and_rerun: jira, confluence, bitbucket, cloud);
