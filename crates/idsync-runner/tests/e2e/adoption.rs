//! First-run adoption of existing accounts (by username, then by email) and two apps on one
//! target (first owner wins; the other app gets a warning).

use idsync_model::{OperationKind as K, TargetKind};

use crate::harness::*;

async fn adoption(kind: TargetKind) {
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let _bob = add_user(&tenant, "bob@contoso.com");
    let _cyd = add_user(&tenant, "cyd@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    // Accounts that exist before idsync: one with ada's username (another email), one with
    // bob's email (another username), and one nobody in Entra has.
    let ada_key = w.seed(kind, "ada@contoso.com", "ada.old@contoso.com");
    let bob_key = w.seed(kind, "legacy-bob", "bob@contoso.com");
    w.seed(kind, "zed", "zed@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "")]);

    let report = w.sync_ok(&config, "main").await;
    let target = report
        .targets
        .iter()
        .find(|t| t.target == name)
        .expect("target report");
    let mut adopted: Vec<(String, String, String)> = target
        .adoptions
        .iter()
        .map(|a| (a.user.clone(), a.key.clone(), a.reason.clone()))
        .collect();
    adopted.sort();
    let by_username = (
        "ada@contoso.com".to_owned(),
        ada_key.clone(),
        "existing account adopted (same username)".to_owned(),
    );
    let mut ops = ops_of(&report, name);
    ops.sort();
    if kind == TargetKind::ConfluenceDc {
        // Confluence's REST API never reports e-mail addresses: adoption can only go by
        // username, so bob gets a new account and legacy-bob is left alone.
        assert_eq!(adopted, vec![by_username]);
        assert_eq!(
            ops,
            vec![
                (K::CreateUser, "bob@contoso.com".into(), String::new()),
                (K::CreateUser, "cyd@contoso.com".into(), String::new()),
                (K::UpdateUser, "ada@contoso.com".into(), String::new()),
            ],
            "{}",
            pretty(&report)
        );
        assert_eq!(
            w.usernames(kind),
            vec![
                "ada@contoso.com",
                "bob@contoso.com",
                "cyd@contoso.com",
                "legacy-bob",
                "zed"
            ]
        );
        assert!(w.is_active(kind, "legacy-bob"));
        // Not silently: the plan says that bob's creation could not look for legacy-bob.
        assert!(
            warnings(&report, name).iter().any(|w| w
                .contains("created without adoption by e-mail")
                && w.contains("2 user(s)")),
            "{:?}",
            warnings(&report, name)
        );
    } else {
        assert_eq!(
            adopted,
            vec![
                by_username,
                (
                    "legacy-bob".into(),
                    bob_key.clone(),
                    "existing account adopted (same email)".into()
                ),
            ]
        );
        assert_eq!(
            ops,
            vec![
                (K::CreateUser, "cyd@contoso.com".into(), String::new()),
                (K::RenameUser, "legacy-bob".into(), String::new()),
                (K::UpdateUser, "ada@contoso.com".into(), String::new()),
                (K::UpdateUser, "bob@contoso.com".into(), String::new()),
            ],
            "{}",
            pretty(&report)
        );
        // Same accounts, no duplicates; the unknown account is untouched.
        assert_eq!(
            w.usernames(kind),
            vec![
                "ada@contoso.com",
                "bob@contoso.com",
                "cyd@contoso.com",
                "zed"
            ]
        );
        assert_eq!(
            w.user(kind, "ada@contoso.com").expect("ada").email,
            "ada@contoso.com"
        );
        assert_eq!(w.user(kind, "bob@contoso.com").expect("bob").key, bob_key);
    }
    assert_eq!(w.user(kind, "ada@contoso.com").expect("ada").key, ada_key);
    assert!(w.is_active(kind, "zed"));
    w.assert_converged(&config).await;

    // Adopted accounts are managed: disabling ada at the source deactivates her account.
    tenant.disable_user(&ada).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, "ada@contoso.com".into(), String::new())]
    );
    assert!(w.is_active(kind, "zed"));
    w.assert_converged(&config).await;
}

/// adopt_by = [] adopts nothing: an account with the same username blocks the creation.
async fn no_adoption(kind: TargetKind) {
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    w.seed(kind, "ada@contoso.com", "ada@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "[apps.users]\nadopt_by = []\n")]);
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    assert!(
        warnings(&report, name)
            .iter()
            .any(|w| w.contains("an account with that username exists")),
        "{:?}",
        warnings(&report, name)
    );
    assert_eq!(w.usernames(kind), vec!["ada@contoso.com"]);
}

async fn two_apps(kind: TargetKind) {
    let first = tenant().await;
    let second = tenant().await;
    let ada1 = add_user(&first, "ada@contoso.com");
    let ada2 = add_user(&second, "ada@contoso.com");
    let bea = add_user(&second, "bea@fabrikam.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[
        App::new(&first, "").named("first"),
        App::new(&second, "").named("second"),
    ]);

    let report = w.sync_ok(&config, "first").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::CreateUser, "ada@contoso.com".into(), String::new())]
    );
    let report = w.sync_ok(&config, "second").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::CreateUser, "bea@fabrikam.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(
        warnings(&report, name)
            .iter()
            .any(|w| w.contains("managed by app \"first\" (first owner wins)")),
        "{:?}",
        warnings(&report, name)
    );
    assert_eq!(
        w.usernames(kind),
        vec!["ada@contoso.com", "bea@fabrikam.com"]
    );
    w.assert_converged(&config).await;

    // The second app never deprovisions the first app's account ...
    second.disable_user(&ada2).expect("disabled");
    second.hard_delete_user(&bea).expect("deleted");
    let report = w.sync_ok(&config, "second").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, "bea@fabrikam.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert!(w.is_active(kind, "ada@contoso.com"));
    w.assert_converged(&config).await;
    // ... while the first app does.
    first.disable_user(&ada1).expect("disabled");
    let report = w.sync_ok(&config, "first").await;
    assert_eq!(
        ops_of(&report, name),
        vec![(K::DeactivateUser, "ada@contoso.com".into(), String::new())]
    );
    w.assert_converged(&config).await;
}

crate::per_target!(adoption: jira, confluence, bitbucket, cloud);
crate::per_target!(no_adoption: jira, confluence, bitbucket, cloud);
crate::per_target!(two_apps: jira, confluence, bitbucket, cloud);

/// An account made by hand since idsync last read the target meets idsync's creation of the
/// same username. With `adopt_by = []` it is someone else's: the creation is a per-user
/// conflict, the account is never linked nor overwritten, and what idsync knew of the target
/// is dropped (the next run reads it in full and says why it leaves the account alone).
#[tokio::test]
async fn a_create_that_finds_the_name_taken_adopts_only_under_adopt_by() {
    for kind in ALL_TARGETS {
        let tenant = tenant().await;
        add_user(&tenant, "ada@contoso.com");
        let w = World::new(&[kind]).await;
        let name = target_name(kind);
        let config = w.write_config(&[App::new(&tenant, "[apps.users]\nadopt_by = []\n")]);
        w.sync_ok(&config, "main").await;

        // By hand, after that full read: an account someone else uses.
        w.seed(kind, "bob@contoso.com", "robert@elsewhere.example");
        add_user(&tenant, "bob@contoso.com");
        let report = w.run(&config, "main", false).await;
        assert_eq!(
            report.status,
            idsync_runner::RunStatus::Partial,
            "{kind}: {}",
            pretty(&report)
        );
        let failed = report.targets[0]
            .operations
            .iter()
            .find(|o| o.planned.op.kind() == K::CreateUser)
            .expect("the creation");
        assert!(
            failed
                .error
                .as_deref()
                .is_some_and(|e| e.contains("already exists") && e.contains("adopt_by")),
            "{kind}: {failed:?}"
        );

        // The next run reads the target in full and leaves the account alone, saying why.
        let next = w.run(&config, "main", false).await;
        assert_eq!(
            next.targets[0].state,
            idsync_runner::StateSource::FullRead,
            "{kind}"
        );
        assert!(all_ops(&next).is_empty(), "{kind}: {}", pretty(&next));
        assert!(
            warnings(&next, name)
                .iter()
                .any(|w| w.contains("bob@contoso.com") && w.contains("not adoptable")),
            "{kind}: {}",
            pretty(&next)
        );
        if kind != TargetKind::ConfluenceDc {
            // Confluence's API shows no e-mail; elsewhere it is untouched.
            assert_eq!(
                w.user(kind, "bob@contoso.com").expect("bob").email,
                "robert@elsewhere.example",
                "{kind}"
            );
        }
    }
}

/// With `adopt_by = ["username"]` the same meeting takes the account over, as a first run
/// would have.
#[tokio::test]
async fn a_create_that_finds_the_name_taken_adopts_by_username_when_allowed() {
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users]\nadopt_by = [\"username\"]\n",
    )]);
    w.sync_ok(&config, "main").await;
    w.seed(kind, "bob@contoso.com", "bob.old@contoso.com");
    add_user(&tenant, "bob@contoso.com");
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, "jira", K::CreateUser, 1);
    // Linked: managed from now on (its e-mail follows the source).
    let next = w.sync_full_ok(&config, "main").await;
    assert_eq!(count(&next, "jira", K::UpdateUser), 1, "{}", pretty(&next));
    w.assert_converged(&config).await;
}
