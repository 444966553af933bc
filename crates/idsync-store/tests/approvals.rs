//! Approvals keep exactly what the held plan named: accounts and membership removals, and read
//! back runs held before membership removals were guarded (migration 0005's rows).

use std::collections::BTreeSet;

use idsync_model::held::Held;
use idsync_store::Store;

async fn held_and_approved(store: &Store, app: &str, held: &Held) -> i64 {
    let lease = store.lock_app(app, false).await.expect("locked");
    let run = store
        .start_run(&lease, app, idsync_model::run::Trigger::Manual, false)
        .await
        .expect("run");
    store
        .hold_run(run, &serde_json::json!([]), held)
        .await
        .expect("held");
    let empty = serde_json::json!({});
    store
        .finish_run(
            run,
            idsync_model::run::RunStatus::Held,
            &empty,
            &empty,
            None,
        )
        .await
        .expect("finished");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    store
        .approve_run(run, 3600, now + 3600)
        .await
        .expect("approved");
    run
}

#[tokio::test]
async fn an_approval_keeps_the_membership_removals_it_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("idsync.db");
    let store = Store::open_file(&path).await.expect("store opens");
    let held = Held {
        accounts: BTreeSet::from([("jira".to_owned(), "k1".to_owned())]),
        empty_source: false,
        memberships: BTreeSet::from([
            ("jira".to_owned(), "staff".to_owned(), "k2".to_owned()),
            ("wiki".to_owned(), "staff".to_owned(), "k3".to_owned()),
        ]),
    };
    let run = held_and_approved(&store, "hr", &held).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let approval = store
        .pending_approval("hr", now)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(approval.run_id, run);
    assert_eq!(approval.held, held);

    // A run held before migration 0006 has no membership removals recorded (NULL): read as
    // none, its accounts as they were.
    let accounts_only = Held {
        memberships: BTreeSet::new(),
        ..held.clone()
    };
    let old = held_and_approved(&store, "ops", &accounts_only).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connects");
    sqlx::query("UPDATE runs SET held_memberships = NULL WHERE id = ?")
        .bind(old)
        .execute(&pool)
        .await
        .expect("updated");
    let approval = store
        .pending_approval("ops", now)
        .await
        .expect("read")
        .expect("pending");
    assert_eq!(approval.held, accounts_only);
}
