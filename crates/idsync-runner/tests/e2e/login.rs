//! Sign-in sync of one user (`idsync_runner::sync_user`): created or brought up to date on every
//! target with the rules of a full run, found by object id, UPN or username, and nobody else
//! touched — even users the source and the targets disagree about.

use std::time::Duration;

use idsync_config::Config;
use idsync_model::{OperationKind as K, TargetKind};
use idsync_runner::{
    ResolvedBy, RunError, RunStatus, Trigger, UserOutcome, UserSyncOptions, UserSyncReport,
};
use serde_json::json;

use crate::harness::*;

const RULES: &str = r#"
[apps.users]
on_leave = "deactivate"

[apps.groups]
mapping = "on_the_fly"
default_groups_new_users = ["newcomers"]

[apps.groups.on_the_fly]
include = ["^ATL-"]

[[apps.groups.on_the_fly.rename]]
pattern = "^ATL-(.*)$"
with = "$1"
"#;

fn options() -> UserSyncOptions {
    UserSyncOptions {
        wait: Duration::from_secs(5),
        dry_run: false,
    }
}

async fn login(w: &World, config: &Config, user: &str) -> Result<UserSyncReport, RunError> {
    let store = w.store(config).await;
    idsync_runner::sync_user(config, "main", user, store, options()).await
}

async fn login_ok(w: &World, config: &Config, user: &str) -> UserSyncReport {
    let report = login(w, config, user)
        .await
        .unwrap_or_else(|e| panic!("sign-in sync of {user} works: {e}"));
    if let Some(run) = &report.run {
        assert_eq!(run.status, RunStatus::Done, "{}", pretty(&report));
        assert_eq!(run.trigger, Trigger::Login);
    }
    report
}

fn run_ops(report: &UserSyncReport, target: &str) -> Vec<(K, String, String)> {
    report
        .run
        .as_ref()
        .map_or_else(Vec::new, |r| ops_of(r, target))
}

/// Alice and Bob synced by a full run; Bob then differs from the targets in every way a full
/// run would act on, and Dave (synced too) is disabled at the source.
struct Scene {
    tenant: graph_sim::RunningGraphSim,
    w: World,
    config: Config,
    alice: String,
    devs: String,
}

async fn scene(targets: &[TargetKind]) -> Scene {
    let tenant = tenant().await;
    let alice = add_user(&tenant, "alice@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let dave = add_user(&tenant, "dave@contoso.com");
    let devs = add_group(&tenant, "ATL-devs", &[&alice, &bob]);
    add_group(&tenant, "ATL-ops", &[&bob]);
    let w = World::new(targets).await;
    let config = w.write_config(&[App::new(&tenant, RULES)]);
    w.sync_ok(&config, "main").await;
    // What a full run would change for others: Bob's name and groups at the source, Dave
    // disabled, and a membership added by hand on the targets.
    tenant
        .update_user(&bob, json!({"displayName": "Robert Changed"}))
        .expect("updated");
    tenant.remove_member(&devs, &bob).expect("removed");
    tenant.disable_user(&dave).expect("disabled");
    for kind in targets {
        w.atl.seed_group(product(*kind), "ops");
        w.atl
            .seed_membership(product(*kind), "ops", "dave@contoso.com");
    }
    Scene {
        tenant,
        w,
        config,
        alice,
        devs,
    }
}

/// Nobody but the user signing in was touched.
fn others_untouched(s: &Scene, kind: TargetKind) {
    let w = &s.w;
    let bob = w.user(kind, "bob@contoso.com").expect("bob");
    assert_eq!(bob.display_name, "Bob", "{kind}");
    assert!(
        w.members(kind, "devs")
            .iter()
            .any(|m| m.eq_ignore_ascii_case("bob@contoso.com")),
        "{kind}: bob keeps devs"
    );
    assert!(w.is_active(kind, "dave@contoso.com"), "{kind}: dave active");
    assert!(
        w.members(kind, "ops")
            .iter()
            .any(|m| m.eq_ignore_ascii_case("dave@contoso.com")),
        "{kind}: dave keeps ops"
    );
}

#[tokio::test]
async fn a_new_user_signing_in_is_created_on_every_target_with_groups() {
    let s = scene(&DC_TARGETS).await;
    let carol = add_user(&s.tenant, "carol@contoso.com");
    s.tenant.add_member(&s.devs, &carol).expect("member");

    let report = login_ok(&s.w, &s.config, &carol).await;
    assert_eq!(report.resolved_by, ResolvedBy::ObjectId);
    assert_eq!(report.outcome, UserOutcome::Synced);
    assert_eq!(report.source_id, carol);
    for kind in DC_TARGETS {
        let name = target_name(kind);
        let expected = [
            (K::CreateUser, "carol@contoso.com".to_owned(), String::new()),
            (K::AddMembership, "carol@contoso.com".into(), "devs".into()),
            (
                K::AddMembership,
                "carol@contoso.com".into(),
                "newcomers".into(),
            ),
        ];
        let ops = run_ops(&report, name);
        assert!(
            expected.iter().all(|e| ops.contains(e)),
            "{name}: {}",
            pretty(&report)
        );
        assert!(
            ops.iter().all(|(_, user, _)| user == "carol@contoso.com"),
            "{name}: only carol: {ops:?}"
        );
        let user = s.w.user(kind, "carol@contoso.com").expect("created");
        assert_eq!(user.display_name, "Carol");
        assert!(s.w.is_active(kind, "carol@contoso.com"));
        assert!(
            s.w.members(kind, "devs")
                .iter()
                .any(|m| m.eq_ignore_ascii_case("carol@contoso.com"))
        );
        others_untouched(&s, kind);
    }
    // A handful of Graph requests, no delta round: the token, the user, their groups.
    for (kind, n) in [
        ("graph token", 1),
        ("graph users/{id}", 1),
        ("graph users/{id}/transitiveMemberOf", 1),
    ] {
        assert_eq!(report.requests.get(kind), Some(&n), "{:?}", report.requests);
    }
    assert!(
        !report.requests.keys().any(|k| k.contains("delta")),
        "{:?}",
        report.requests
    );
    // The history has the run, trigger login, with its operations.
    let store = s.w.store(&s.config).await;
    let run = report.run.as_ref().expect("a run");
    let recorded = store.run(run.run_id).await.expect("store").expect("run");
    assert_eq!(recorded.trigger, "login");
    assert_eq!(recorded.status, "done");
    let operations = store.operations(run.run_id).await.expect("operations");
    assert_eq!(
        operations.len(),
        run.targets
            .iter()
            .map(|t| t.operations.len())
            .sum::<usize>()
    );
    // What idsync knows of the targets includes Carol: the next run plans from it, and only
    // the others' changes, which a full run makes.
    let next = s.w.run(&s.config, "main", true).await;
    for kind in DC_TARGETS {
        let name = target_name(kind);
        let state = next
            .targets
            .iter()
            .find(|t| t.target == name)
            .map(|t| t.state);
        assert!(
            matches!(state, Some(idsync_runner::StateSource::Known { .. })),
            "{name}: {state:?}"
        );
        assert!(
            ops_of(&next, name)
                .iter()
                .all(|(_, user, _)| user != "carol@contoso.com"),
            "{name}: {}",
            pretty(&next)
        );
    }
    s.w.sync_full_ok(&s.config, "main").await;
    s.w.assert_converged(&s.config).await;
}

#[tokio::test]
async fn a_changed_user_is_brought_up_to_date_by_upn() {
    let s = scene(&[TargetKind::JiraDc, TargetKind::ConfluenceDc]).await;
    s.tenant
        .update_user(&s.alice, json!({"displayName": "Alice Changed"}))
        .expect("updated");
    let qa = add_group(&s.tenant, "ATL-qa", &[&s.alice]);

    let report = login_ok(&s.w, &s.config, "alice@contoso.com").await;
    assert_eq!(report.resolved_by, ResolvedBy::UserPrincipalName);
    for kind in [TargetKind::JiraDc, TargetKind::ConfluenceDc] {
        let name = target_name(kind);
        let ops = run_ops(&report, name);
        assert!(
            ops.contains(&(K::UpdateUser, "alice@contoso.com".into(), String::new())),
            "{name}: {ops:?}"
        );
        assert!(
            ops.contains(&(K::CreateGroup, String::new(), "qa".into())),
            "{name}: {ops:?}"
        );
        assert!(
            ops.contains(&(K::AddMembership, "alice@contoso.com".into(), "qa".into())),
            "{name}: {ops:?}"
        );
        // Not a new account: no default group for new users.
        assert!(!ops.iter().any(|(_, _, g)| g == "newcomers"), "{ops:?}");
        assert_eq!(
            s.w.user(kind, "alice@contoso.com")
                .expect("alice")
                .display_name,
            "Alice Changed"
        );
        others_untouched(&s, kind);
    }

    // She leaves the group: the membership idsync added goes (a UPN in other case is the same
    // user).
    s.tenant.remove_member(&qa, &s.alice).expect("removed");
    let report = login_ok(&s.w, &s.config, "ALICE@contoso.com").await;
    for kind in [TargetKind::JiraDc, TargetKind::ConfluenceDc] {
        assert_eq!(
            run_ops(&report, target_name(kind)),
            vec![(K::RemoveMembership, "alice@contoso.com".into(), "qa".into())]
        );
        others_untouched(&s, kind);
    }
    // Nothing left to do: a sign-in plans nothing, and records a run that did nothing.
    let again = login_ok(&s.w, &s.config, &s.alice).await;
    let run = again.run.as_ref().expect("a run");
    assert!(all_ops(run).is_empty(), "{}", pretty(&again));
}

#[tokio::test]
async fn found_by_username_through_the_links() {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada.lovelace@contoso.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users.username]\nattribute = \"userPrincipalName\"\nstrip_domain = true\n",
    )]);
    w.sync_ok(&config, "main").await;
    tenant
        .update_user(&ada, json!({"displayName": "Ada King"}))
        .expect("updated");
    let report = login_ok(&w, &config, "ada.lovelace").await;
    assert_eq!(report.resolved_by, ResolvedBy::Username);
    assert_eq!(report.source_id, ada);
    assert_eq!(
        run_ops(&report, "jira"),
        vec![(K::UpdateUser, "ada.lovelace".into(), String::new())]
    );
    assert_eq!(
        w.user(TargetKind::JiraDc, "ada.lovelace")
            .expect("ada")
            .display_name,
        "Ada King"
    );
    // Graph is asked by object id once the links named the user.
    assert_eq!(report.requests.get("graph users/{id}"), Some(&1));
}

#[tokio::test]
async fn out_of_scope_disabled_and_unknown_users_change_nothing() {
    let tenant = tenant().await;
    let inside = add_user(&tenant, "in@contoso.com");
    let outside = add_user(&tenant, "out@contoso.com");
    let gone = add_user(&tenant, "gone@contoso.com");
    add_group(&tenant, "Jira Users", &[&inside, &gone]);
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.scope]\nkind = \"groups\"\ngroups = [\"Jira Users\"]\n",
    )]);
    w.sync_ok(&config, "main").await;
    let store = w.store(&config).await;
    let runs_before = store.runs(Some("main"), 100).await.expect("runs").len();

    let report = login_ok(&w, &config, &outside).await;
    assert_eq!(report.outcome, UserOutcome::OutOfScope);
    assert!(report.run.is_none());
    assert!(
        report.scope.why.contains("Jira Users"),
        "{}",
        report.scope.why
    );
    assert!(w.user(TargetKind::JiraDc, "out@contoso.com").is_none());

    // Disabled at the source: not deactivated here (a full run does that, under its guard).
    tenant.disable_user(&gone).expect("disabled");
    let report = login_ok(&w, &config, "gone@contoso.com").await;
    assert_eq!(report.outcome, UserOutcome::DisabledAtSource);
    assert!(report.run.is_none());
    assert!(w.is_active(TargetKind::JiraDc, "gone@contoso.com"));

    for unknown in [
        "nobody@contoso.com",
        "0a0a0a0a-1111-2222-3333-444444444444",
        "nobody",
    ] {
        match login(&w, &config, unknown).await {
            Err(RunError::UnknownUser { user, why, .. }) => {
                assert_eq!(user, unknown);
                assert!(!why.is_empty());
            }
            other => panic!("{unknown}: expected an unknown user, got {other:?}"),
        }
    }
    assert_eq!(
        store.runs(Some("main"), 100).await.expect("runs").len(),
        runs_before,
        "nothing was recorded"
    );
}

#[tokio::test]
async fn a_run_in_progress_makes_a_sign_in_busy_after_a_bounded_wait() {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    let store = w.store(&config).await;
    let lease = store.lock_app("main", false).await.expect("lock");
    let busy = idsync_runner::sync_user(
        &config,
        "main",
        &ada,
        store,
        UserSyncOptions {
            wait: Duration::from_millis(100),
            dry_run: false,
        },
    )
    .await;
    assert!(matches!(busy, Err(RunError::Busy(_))), "{busy:?}");
    assert!(w.user(TargetKind::JiraDc, "ada@contoso.com").is_none());
    drop(lease);
    let report = login_ok(&w, &config, &ada).await;
    assert_eq!(run_ops(&report, "jira").len(), 1, "{}", pretty(&report));
}

/// Sign-ins keep what idsync knows of a target as patches beside it (rewriting a large state for
/// every sign-in was most of a sign-in's time); the next run plans from the state with the
/// patches folded in, and once enough have gathered they are folded into the state itself.
#[tokio::test]
async fn sign_ins_patch_what_idsync_knows_and_the_patches_are_folded_in() {
    let tenant = tenant().await;
    let devs = add_group(&tenant, "ATL-devs", &[]);
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, RULES)]);
    w.sync_ok(&config, "main").await;
    let store = w.store(&config).await;
    let syncer = idsync_runner::UserSyncer::new(&config, "main").expect("syncer");
    let patches = || async {
        store
            .known_target_state("jira")
            .await
            .expect("store")
            .map(|k| k.patches.len())
    };
    let plans_nothing_from_known = || async {
        let next = w.run(&config, "main", true).await;
        let jira = next.targets.iter().find(|t| t.target == "jira");
        assert!(
            matches!(
                jira.map(|t| t.state),
                Some(idsync_runner::StateSource::Known { .. })
            ),
            "{}",
            pretty(&next)
        );
        assert!(ops_of(&next, "jira").is_empty(), "{}", pretty(&next));
    };

    for n in 0..3 {
        let id = add_user(&tenant, &format!("new{n}@contoso.com"));
        tenant.add_member(&devs, &id).expect("member");
        let report = syncer.sync(store, &id, options()).await.expect("synced");
        let run = report.run.as_ref().expect("a run");
        assert_eq!(run.status, RunStatus::Done, "{}", pretty(&report));
        assert!(!all_ops(run).is_empty(), "{}", pretty(&report));
    }
    assert_eq!(patches().await, Some(3), "one patch per sign-in that wrote");
    // The state with its patches holds the three accounts and their groups: nothing to do.
    plans_nothing_from_known().await;

    // Up to the fold: the 256th patch has them folded into the state, off the sign-in's time.
    for n in 3..256 {
        let id = add_user(&tenant, &format!("new{n}@contoso.com"));
        syncer.sync(store, &id, options()).await.expect("synced");
    }
    let mut folded = false;
    for _ in 0..500 {
        if patches().await.is_some_and(|n| n < 256) {
            folded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(folded, "patches still pending: {:?}", patches().await);
    plans_nothing_from_known().await;
    w.sync_full_ok(&config, "main").await;
    w.assert_converged(&config).await;
}
