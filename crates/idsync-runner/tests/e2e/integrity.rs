//! Crash safety and guard integrity: what a killed run created is found and managed by the
//! next one; approvals cover exactly what they named, once, for a while; a read the guard held
//! never becomes the baseline; two runs of an app never overlap.

use std::sync::Arc;

use idsync_engine::outcome::{CreateIntent, Intentions};
use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::{RunError, RunOptions, RunStatus, Trigger};
use idsync_store::Store;

use crate::harness::*;

const GUARD_20: &str = "[apps.guard]\nmax_deprovision_percent = 20.0\nmax_deprovision_count = 50\n";

fn approval_run() -> RunOptions {
    RunOptions {
        trigger: Trigger::Approval,
        ..RunOptions::manual()
    }
}

async fn run_opts(
    w: &World,
    config: &idsync_config::Config,
    options: RunOptions,
) -> idsync_runner::RunReport {
    let store = w.store(config).await;
    idsync_runner::sync_app(
        config,
        "main",
        store,
        options,
        Arc::new(idsync_runner::Quiet),
    )
    .await
    .expect("the run itself works")
}

/// Ten users synced to Jira under a 20% guard, then three disabled: the run that follows is
/// held. Returns the tenant, the users' ids, the world, the config and the held run.
async fn three_of_ten_held() -> (
    graph_sim::RunningGraphSim,
    Vec<String>,
    World,
    idsync_config::Config,
    idsync_runner::RunReport,
) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..10)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, GUARD_20)]);
    w.sync_ok(&config, "main").await;
    for id in &ids[..3] {
        tenant.disable_user(id).expect("disabled");
    }
    let held = w.run(&config, "main", false).await;
    assert_eq!(held.status, RunStatus::Held, "{}", pretty(&held));
    (tenant, ids, w, config, held)
}

/// A run killed after creating an account and before recording it: the next run finds the
/// account by the intent recorded before the request was sent, links it, and so deprovisions it
/// when its user is gone, even with adoption turned off.
#[tokio::test]
async fn an_account_a_killed_run_created_is_claimed_and_deprovisioned() {
    for kind in ALL_TARGETS {
        let tenant = tenant().await;
        add_user(&tenant, "ada@contoso.com");
        let w = World::new(&[kind]).await;
        let config = w.write_config(&[App::new(&tenant, "[apps.users]\nadopt_by = []\n")]);
        w.sync_ok(&config, "main").await;

        // The killed run: it recorded its intent, the account was created, and then it died.
        let bob = add_user(&tenant, "bob@contoso.com");
        let store = w.store(&config).await;
        let intentions = Intentions {
            creates: vec![CreateIntent {
                app: "main".into(),
                source_id: bob.clone(),
                username: "bob@contoso.com".into(),
                email: Some("bob@contoso.com".into()),
            }],
            ..Intentions::default()
        };
        store
            .record_intentions(999, target_name(kind), "main", &intentions)
            .await
            .expect("intent recorded");
        w.seed(kind, "bob@contoso.com", "bob@contoso.com");
        // Then the user leaves before the next run.
        tenant.hard_delete_user(&bob).expect("deleted");

        let report = w.sync_ok(&config, "main").await;
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("interrupted run settled")),
            "{}",
            pretty(&report)
        );
        assert_eq!(
            count(&report, target_name(kind), K::DeactivateUser)
                + count(&report, target_name(kind), K::DeleteUser),
            1,
            "{kind}: {}",
            pretty(&report)
        );
        assert!(!w.is_active(kind, "bob@contoso.com"), "{kind}");
        assert!(
            store
                .create_intents("main", target_name(kind))
                .await
                .expect("intents")
                .is_empty(),
            "settled"
        );
        w.assert_converged(&config).await;
    }
}

/// An intent whose account holds another e-mail is someone else's: never claimed.
#[tokio::test]
async fn an_intent_never_claims_someone_elses_account() {
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(&tenant, "[apps.users]\nadopt_by = []\n")]);
    w.sync_ok(&config, "main").await;
    let store = w.store(&config).await;
    let intentions = Intentions {
        creates: vec![CreateIntent {
            app: "main".into(),
            source_id: "00000000-0000-0000-0000-0000000000bb".into(),
            username: "bob@contoso.com".into(),
            email: Some("bob@contoso.com".into()),
        }],
        ..Intentions::default()
    };
    store
        .record_intentions(999, "jira", "main", &intentions)
        .await
        .expect("intent recorded");
    w.seed(kind, "bob@contoso.com", "robert@elsewhere.example");
    let report = w.sync_ok(&config, "main").await;
    assert!(
        report.notes.iter().any(|n| n.contains("not claimed")),
        "{}",
        pretty(&report)
    );
    assert!(w.is_active(kind, "bob@contoso.com"), "left alone");
    assert!(
        store
            .create_intents("main", "jira")
            .await
            .expect("intents")
            .is_empty()
    );
}

/// The experiment of the issue: a run held for mass deprovisioning, the users restored, the
/// held run approved (it deprovisions nothing) — the approval is used up, and a later,
/// unrelated incident is held again rather than let through.
#[tokio::test]
async fn an_approval_is_used_up_by_the_approving_run_whatever_it_does() {
    let kind = TargetKind::JiraDc;
    let (tenant, ids, w, config, held) = three_of_ten_held().await;
    // Restored before anyone approves.
    for id in &ids[..3] {
        tenant.enable_user(id).expect("enabled");
    }
    let store = w.store(&config).await;
    approve(store, held.run_id).await.expect("approved");
    let approving = run_opts(&w, &config, approval_run()).await;
    assert_eq!(approving.status, RunStatus::Done, "{}", pretty(&approving));
    assert_eq!(count(&approving, "jira", K::DeactivateUser), 0);
    let record = store.run(held.run_id).await.expect("run").expect("exists");
    assert_eq!(record.status, "approval-used", "{record:?}");

    // Later, an unrelated incident: held, nothing deactivated.
    for id in &ids[4..7] {
        tenant.disable_user(id).expect("disabled");
    }
    let later = w.run(&config, "main", false).await;
    assert_eq!(later.status, RunStatus::Held, "{}", pretty(&later));
    for i in 4..7 {
        assert!(w.is_active(kind, &format!("user{i}@contoso.com")));
    }
}

/// An approval names accounts, not a number: other accounts to deprovision are judged on
/// their own (and hold the run), and the approval is used up all the same.
#[tokio::test]
async fn an_approval_covers_only_the_accounts_its_plan_named() {
    let kind = TargetKind::JiraDc;
    let (tenant, ids, w, config, held) = three_of_ten_held().await;
    let store = w.store(&config).await;
    approve(store, held.run_id).await.expect("approved");
    // Before the approving run, three other users go: 3 of them approved, 3 not (30%).
    for id in &ids[3..6] {
        tenant.disable_user(id).expect("disabled");
    }
    let approving = run_opts(&w, &config, approval_run()).await;
    assert_eq!(approving.status, RunStatus::Held, "{}", pretty(&approving));
    let hold = approving.hold.as_ref().expect("hold");
    assert_eq!(
        hold.deprovisions, 3,
        "only the unapproved ones count: {hold:?}"
    );
    for i in 0..6 {
        assert!(
            w.is_active(kind, &format!("user{i}@contoso.com")),
            "user{i}"
        );
    }
    assert_eq!(
        store
            .run(held.run_id)
            .await
            .expect("run")
            .expect("exists")
            .status,
        "approval-used"
    );

    // Approving the new hold lets exactly its accounts go.
    approve(store, approving.run_id).await.expect("approved");
    let done = run_opts(&w, &config, approval_run()).await;
    assert_eq!(done.status, RunStatus::Done, "{}", pretty(&done));
    assert_eq!(count(&done, "jira", K::DeactivateUser), 6);
}

/// Only the latest held run of an app can be approved, and only for a while; an approval not
/// used in time lapses.
#[tokio::test]
async fn stale_superseded_and_expired_approvals_are_refused() {
    let (_tenant, _ids, w, config, first) = three_of_ten_held().await;
    let second = w.run(&config, "main", false).await;
    assert_eq!(second.status, RunStatus::Held);
    let store = w.store(&config).await;

    let superseded = approve(store, first.run_id).await.expect_err("superseded");
    assert!(
        superseded.to_string().contains("came after it"),
        "{superseded}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stale = store
        .approve_run(second.run_id, -1, now + 60)
        .await
        .expect_err("too old");
    assert!(
        stale.to_string().contains("approval_expires_minutes"),
        "{stale}"
    );
    let not_held = approve(store, 1).await.expect_err("not held");
    assert!(not_held.to_string().contains("not held"), "{not_held}");

    // Approved, but the approval has lapsed by the time the next run comes.
    store
        .approve_run(second.run_id, 3600, now - 1)
        .await
        .expect("approved");
    let after = w.run(&config, "main", false).await;
    assert_eq!(after.status, RunStatus::Held, "{}", pretty(&after));
    assert_eq!(
        store
            .run(second.run_id)
            .await
            .expect("run")
            .expect("exists")
            .status,
        "approval-expired"
    );
}

/// A well-formed read that finds nobody in scope is held, and is not kept: the next read
/// starts from the last good one, and finds everybody again without any approval.
#[tokio::test]
async fn an_empty_source_read_is_held_and_does_not_stick() {
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    let ids: Vec<String> = (0..10)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let staff = add_group(
        &tenant,
        "Staff",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.scope]\nkind = \"groups\"\ngroups = [\"Staff\"]\n[apps.users]\non_leave = \"keep\"\n",
    )]);
    w.sync_ok(&config, "main").await;

    // Somebody empties the scoping group by mistake.
    for id in &ids {
        tenant.remove_member(&staff, id).expect("removed");
    }
    let empty = w.run(&config, "main", false).await;
    assert_eq!(empty.status, RunStatus::Held, "{}", pretty(&empty));
    let reason = &empty.hold.as_ref().expect("hold").reason;
    assert!(reason.contains("no users in scope"), "{reason}");
    // Still held on the next run, and with --full-read.
    assert_eq!(w.run(&config, "main", false).await.status, RunStatus::Held);
    let full = w.run_with(&config, "main", false, true).await;
    assert_eq!(full.status, RunStatus::Held);
    assert_eq!(
        full.source["mode"], "full",
        "--full-read reads the source afresh"
    );

    // Put back: the next run sees everybody, with nothing to approve.
    for id in &ids {
        tenant.add_member(&staff, id).expect("added");
    }
    let back = w.sync_ok(&config, "main").await;
    assert!(all_ops(&back).is_empty(), "{}", pretty(&back));
    w.assert_converged(&config).await;
}

/// `--full-read` reads the source in full, not only the targets.
#[tokio::test]
async fn full_read_reads_the_source_afresh() {
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    w.sync_ok(&config, "main").await;
    let delta = w.sync_ok(&config, "main").await;
    assert_eq!(delta.source["mode"], "delta");
    let full = w.sync_full_ok(&config, "main").await;
    assert_eq!(full.source["mode"], "full", "{}", pretty(&full.source));
}

/// A second run of an app while one is in progress gives up at once (or waits, if asked),
/// whichever store handle or process it comes through; nothing marks the live run interrupted.
#[tokio::test]
async fn two_runs_of_an_app_never_overlap() {
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    w.sync_ok(&config, "main").await;
    let db = config.data_dir.join("idsync.db");

    // Another process's run, as far as the lock can tell: a second handle on the same file.
    let other = Store::open_file(&db).await.expect("second handle");
    let lease = other.lock_app("main", false).await.expect("locked");
    let running = other
        .start_run(&lease, "main", idsync_model::run::Trigger::Manual, false)
        .await
        .expect("run");

    let store = w.store(&config).await;
    let busy = idsync_runner::sync_app(
        &config,
        "main",
        store,
        RunOptions::manual(),
        Arc::new(idsync_runner::Quiet),
    )
    .await
    .expect_err("busy");
    assert!(matches!(busy, RunError::Busy(_)), "{busy}");
    let message = busy.to_string();
    assert!(
        message.contains(&format!("run {running}")) && message.contains("--wait"),
        "{message}"
    );
    assert_eq!(
        store
            .run(running)
            .await
            .expect("run")
            .expect("exists")
            .status,
        "running",
        "the live run is not marked interrupted"
    );
    // Another app is not held up.
    assert!(other.lock_app("other", false).await.is_ok());

    // One that waits goes on once the first is over.
    let waiting = {
        let config = config.clone();
        let store = store.clone();
        tokio::spawn(async move {
            idsync_runner::sync_app(
                &config,
                "main",
                &store,
                RunOptions {
                    wait: true,
                    ..RunOptions::manual()
                },
                Arc::new(idsync_runner::Quiet),
            )
            .await
        })
    };
    tokio::task::yield_now().await;
    other
        .finish_run(
            running,
            idsync_model::run::RunStatus::Done,
            &serde_json::json!({}),
            &serde_json::json!({}),
            None,
        )
        .await
        .expect("finished");
    drop(lease);
    let report = waiting.await.expect("joined").expect("ran");
    assert_eq!(report.status, RunStatus::Done, "{}", pretty(&report));
    assert!(report.notes.iter().all(|n| !n.contains("interrupted")));
}

/// A run whose process died leaves its run marked running and its lock free: the next run
/// knows it stopped (its lock is free), says so, and takes over.
#[tokio::test]
async fn a_run_whose_process_died_is_detected_by_its_free_lock() {
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    let store = w.store(&config).await;
    let dead = {
        let lease = store.lock_app("main", false).await.expect("locked");
        store
            .start_run(&lease, "main", idsync_model::run::Trigger::Manual, false)
            .await
            .expect("run")
        // The lease goes with the "process".
    };
    let report = w.sync_ok(&config, "main").await;
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains(&format!("run {dead}")) && n.contains("interrupted")),
        "{}",
        pretty(&report)
    );
    assert_eq!(
        store.run(dead).await.expect("run").expect("exists").status,
        "interrupted"
    );
}

/// Taking a group out of `default_groups_all_users` removes the memberships idsync added
/// there: a mass of them is held like a mass of deprovisions, and the approval releases
/// exactly those removals.
#[tokio::test]
async fn a_mass_membership_removal_is_held_until_approved() {
    let tenant = tenant().await;
    for i in 0..10 {
        add_user(&tenant, &format!("user{i}@contoso.com"));
    }
    let w = World::new(&[TargetKind::JiraDc]).await;
    let guard =
        "[apps.guard]\nmax_membership_removal_percent = 10.0\nmax_membership_removal_count = 500\n";
    let config = w.write_config(&[App::new(
        &tenant,
        format!("[apps.groups]\ndefault_groups_all_users = [\"everyone\", \"staff\"]\n\n{guard}"),
    )]);
    w.sync_ok(&config, "main").await;
    assert_eq!(w.members(TargetKind::JiraDc, "staff").len(), 10);

    // "staff" dropped from the defaults: 10 of the 20 managed memberships (50%) to remove.
    let config = w.write_config(&[App::new(
        &tenant,
        format!("[apps.groups]\ndefault_groups_all_users = [\"everyone\"]\n\n{guard}"),
    )]);
    let held = w.run(&config, "main", false).await;
    assert_eq!(held.status, RunStatus::Held, "{}", pretty(&held));
    assert_eq!(count(&held, "jira", K::RemoveMembership), 10);
    let hold = held.hold.as_ref().expect("hold");
    assert_eq!(
        (hold.membership_removals, hold.managed_memberships),
        (10, 20)
    );
    assert!(
        hold.reason.contains("max_membership_removal_percent"),
        "{}",
        hold.reason
    );
    assert_eq!(
        w.members(TargetKind::JiraDc, "staff").len(),
        10,
        "nothing removed"
    );
    // `idsync approve` syncs the app itself: the note must not send the admin to sync again.
    let note = held
        .notes
        .iter()
        .find(|n| n.starts_with("held: "))
        .expect("the held note");
    assert!(
        note.contains(&format!("idsync approve --config FILE {}", held.run_id)),
        "{note}"
    );
    assert!(note.contains("applies it at once"), "{note}");
    assert!(!note.contains("sync again"), "{note}");

    let store = w.store(&config).await;
    approve(store, held.run_id).await.expect("approved");
    let report = run_opts(&w, &config, approval_run()).await;
    assert_eq!(report.status, RunStatus::Done, "{}", pretty(&report));
    assert_eq!(count(&report, "jira", K::RemoveMembership), 10);
    assert!(w.members(TargetKind::JiraDc, "staff").is_empty());
    assert_eq!(w.members(TargetKind::JiraDc, "everyone").len(), 10);
    w.assert_converged(&config).await;

    // The count holds too, whatever the percentage; and the approval was used up.
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\ndefault_groups_all_users = []\n\n[apps.guard]\nmax_membership_removal_percent = 100.0\nmax_membership_removal_count = 5\n",
    )]);
    let held = w.run(&config, "main", false).await;
    assert_eq!(held.status, RunStatus::Held, "{}", pretty(&held));
    let reason = &held.hold.as_ref().expect("hold").reason;
    assert!(
        reason.contains("max_membership_removal_count = 5"),
        "{reason}"
    );
    assert_eq!(w.members(TargetKind::JiraDc, "everyone").len(), 10);
}

/// An approval covers the removals its plan named, by (target, group, account), and no
/// others: other removals are judged by the limits on their own.
#[tokio::test]
async fn a_membership_approval_covers_only_the_removals_it_named() {
    let tenant = tenant().await;
    for i in 0..10 {
        add_user(&tenant, &format!("user{i}@contoso.com"));
    }
    let w = World::new(&[TargetKind::JiraDc]).await;
    let guard = "[apps.guard]\nmax_membership_removal_percent = 10.0\n";
    let groups =
        |list: &str| format!("[apps.groups]\ndefault_groups_all_users = [{list}]\n\n{guard}");
    let config = w.write_config(&[App::new(&tenant, groups("\"a\", \"b\", \"c\""))]);
    w.sync_ok(&config, "main").await;
    let config_a = w.write_config(&[App::new(&tenant, groups("\"b\", \"c\""))]);
    let held = w.run(&config_a, "main", false).await;
    assert_eq!(held.status, RunStatus::Held, "{}", pretty(&held));
    let store = w.store(&config_a).await;
    approve(store, held.run_id).await.expect("approved");
    // Meanwhile "b" is dropped instead: its removals were not approved.
    let config_b = w.write_config(&[App::new(&tenant, groups("\"a\", \"c\""))]);
    let report = run_opts(&w, &config_b, approval_run()).await;
    assert_eq!(report.status, RunStatus::Held, "{}", pretty(&report));
    assert_eq!(w.members(TargetKind::JiraDc, "b").len(), 10);
}

/// The guard counts people, not accounts: three people leaving, each with an account on four
/// targets, are three deprovisions (not twelve) for `max_deprovision_count`.
#[tokio::test]
async fn the_guard_counts_people_not_accounts() {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..20)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let w = World::new(&ALL_TARGETS).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.guard]\nmax_deprovision_percent = 100.0\nmax_deprovision_count = 10\n",
    )]);
    w.sync_ok(&config, "main").await;
    for id in &ids[..3] {
        tenant.disable_user(id).expect("disabled");
    }
    let report = w.sync_ok(&config, "main").await;
    for kind in ALL_TARGETS {
        assert!(!w.is_active(kind, "user0@contoso.com"), "{kind}");
        assert_eq!(
            count(&report, target_name(kind), K::DeactivateUser),
            3,
            "{kind}"
        );
    }

    // The percentage is of people too: 3 of the 20 people idsync manages accounts of (15%),
    // not 12 accounts of 80.
    for id in &ids[3..6] {
        tenant.disable_user(id).expect("disabled");
    }
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.guard]\nmax_deprovision_percent = 14.0\nmax_deprovision_count = 10\n",
    )]);
    let held = w.run(&config, "main", false).await;
    assert_eq!(held.status, RunStatus::Held, "{}", pretty(&held));
    let hold = held.hold.as_ref().expect("hold");
    assert_eq!(
        (hold.deprovisions, hold.managed_users),
        (3, 20),
        "{}",
        hold.reason
    );
    assert!(hold.reason.contains("people"), "{}", hold.reason);
}
