//! What the store keeps of a target between runs, and the epochs that keep two runs from
//! saving over each other's changes.

use idsync_store::{KnownTargetState, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens");
    (dir, store)
}

/// What the store knows of the target `jira`.
async fn known(store: &Store) -> Option<KnownTargetState> {
    store.known_target_state("jira").await.expect("read")
}

/// What the store knows of `jira`, which it must know.
async fn kept(store: &Store) -> KnownTargetState {
    known(store).await.expect("kept")
}

/// Saves a state of `jira` read with fingerprint `fp`; whether it was saved.
async fn save(store: &Store, read_at: i64, epoch: i64, state: &[u8]) -> bool {
    store
        .save_target_state("jira", "fp", read_at, epoch, state)
        .await
        .expect("store answers")
}

/// Adds a sign-in's patch to what the store knows of `jira`: the patches now kept, if saved.
async fn patch(
    store: &Store,
    fingerprint: &str,
    from_epoch: i64,
    epoch: i64,
    bytes: &[u8],
) -> Option<u64> {
    store
        .save_target_patch("jira", fingerprint, from_epoch, epoch, bytes)
        .await
        .expect("store answers")
}

#[tokio::test]
async fn a_full_read_is_kept_until_a_run_writes() {
    let (_dir, store) = store().await;
    assert_eq!(known(&store).await, None);
    let epoch = store.target_epoch("jira").await.expect("epoch");
    assert!(save(&store, 100, epoch, b"{\"users\":[]}").await);
    let kept_state = kept(&store).await;
    assert_eq!(
        (kept_state.fingerprint.as_str(), kept_state.read_at),
        ("fp", 100)
    );
    assert_eq!(kept_state.state, b"{\"users\":[]}");
    // Another target is not affected.
    assert_eq!(store.known_target_state("wiki").await.expect("read"), None);

    // A run starts writing: what was known no longer holds until the run saves its own.
    let writing = store.begin_target_writes("jira").await.expect("begun");
    assert_eq!(known(&store).await, None);
    assert!(save(&store, 100, writing, b"{\"after\":1}").await);
    assert_eq!(
        known(&store).await.map(|k| k.state),
        Some(b"{\"after\":1}".to_vec())
    );
    store.forget_target_state("jira").await.expect("forgotten");
    assert_eq!(known(&store).await, None);
}

#[tokio::test]
async fn a_state_that_misses_another_runs_writes_is_not_saved() {
    let (_dir, store) = store().await;
    // Run A reads the target in full while run B starts writing to it.
    let read_at = store.target_epoch("jira").await.expect("epoch");
    let b = store.begin_target_writes("jira").await.expect("begun");
    assert!(
        !save(&store, 1, read_at, b"{\"a\":1}").await,
        "A's read may miss B's changes"
    );
    // Run C begins writing before B finishes: B's state misses C's changes.
    let c = store.begin_target_writes("jira").await.expect("begun");
    assert!(!save(&store, 1, b, b"{\"b\":1}").await);
    assert!(save(&store, 1, c, b"{\"c\":1}").await);
    assert_eq!(
        known(&store).await.map(|k| k.state),
        Some(b"{\"c\":1}".to_vec())
    );
}

/// A sign-in sync keeps the known state: it bumps the epoch (so that nobody plans from the
/// state while it writes), then adds a patch and makes the state valid at its epoch, unless the
/// state was replaced or another run began writing meanwhile.
#[tokio::test]
async fn a_sign_in_patches_the_known_state_instead_of_dropping_it() {
    let (_dir, store) = store().await;
    let read = store.target_epoch("jira").await.expect("epoch");
    assert!(save(&store, 100, read, b"base").await);
    let writing = store.begin_target_patch("jira").await.expect("begun");
    assert_eq!(
        known(&store).await,
        None,
        "not planned from while the sign-in writes"
    );
    // Read with another fingerprint (other attributes): not the state the sign-in planned with.
    assert_eq!(patch(&store, "other", read, writing, b"p1").await, None);
    assert_eq!(patch(&store, "fp", read, writing, b"p1").await, Some(1));
    let kept_state = kept(&store).await;
    assert_eq!(
        (
            kept_state.state.as_slice(),
            kept_state.epoch,
            kept_state.read_at
        ),
        (&b"base"[..], writing, 100)
    );
    assert_eq!(kept_state.patches, vec![b"p1".to_vec()]);

    // Two sign-ins: the second's patch comes after the first's.
    let second = store.begin_target_patch("jira").await.expect("begun");
    assert_eq!(patch(&store, "fp", writing, second, b"p2").await, Some(2));
    // A full run begins writing while a third sign-in writes: the sign-in's patch would sit on
    // a state that misses the run's changes, so neither is kept.
    let third = store.begin_target_patch("jira").await.expect("begun");
    let run = store.begin_target_writes("jira").await.expect("begun");
    assert_eq!(patch(&store, "fp", second, third, b"p3").await, None);
    assert_eq!(known(&store).await, None);
    // The run's own state starts with no patches.
    assert!(save(&store, 200, run, b"after the run").await);
    let kept_state = kept(&store).await;
    assert_eq!(kept_state.state, b"after the run");
    assert!(kept_state.patches.is_empty());

    // A state saved over patches (folded, or read again) drops them.
    let fourth = store.begin_target_patch("jira").await.expect("begun");
    patch(&store, "fp", run, fourth, b"p4").await;
    assert!(save(&store, 200, fourth, b"folded").await);
    let kept_state = kept(&store).await;
    assert_eq!(
        (kept_state.state.as_slice(), kept_state.patches.len()),
        (&b"folded"[..], 0)
    );
}

/// Stores made before migration 0004 kept both states as JSON text; the migration keeps them,
/// as bytes the packed readers still understand.
#[tokio::test]
async fn states_kept_as_json_survive_the_move_to_packed_states() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("idsync.db");
    drop(Store::open_file(&path).await.expect("store opens"));
    // Put the tables back as migration 0003 left them, with JSON in them, and forget what came
    // after.
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connects");
    for statement in [
        "DROP TABLE source_state",
        "CREATE TABLE source_state (app TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL)",
        r#"INSERT INTO source_state VALUES ('hr', '{"select":[]}', '2026-01-01T00:00:00Z')"#,
        "DROP TABLE target_state",
        "CREATE TABLE target_state (target TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, read_at INTEGER NOT NULL, epoch INTEGER NOT NULL, state TEXT NOT NULL)",
        r#"INSERT INTO target_state VALUES ('jira', 'fp', 100, 0, '{"users":[]}')"#,
        "INSERT OR IGNORE INTO target_epochs VALUES ('jira', 0)",
        // And what 0005 to 0010 added, so that they run again after 0004.
        "DROP TABLE sent_emails",
        "ALTER TABLE links DROP COLUMN kept_username",
        "ALTER TABLE links DROP COLUMN rename_reported",
        "ALTER TABLE runs DROP COLUMN held_memberships",
        "DROP TABLE create_intents",
        "ALTER TABLE runs DROP COLUMN held_deprovisions",
        "ALTER TABLE runs DROP COLUMN held_empty_source",
        "ALTER TABLE runs DROP COLUMN approval_expires_at",
        "ALTER TABLE runs DROP COLUMN approval_used_by",
        "ALTER TABLE runs DROP COLUMN pid",
        "DROP TABLE admin_token",
        "DROP INDEX operations_by_subject",
        "DROP TABLE api_entries",
        "DROP TABLE target_state_patches",
        "DELETE FROM _sqlx_migrations WHERE version >= 4",
    ] {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .expect(statement);
    }
    db.close().await.expect("closes");

    let store = Store::open_file(&path).await.expect("store migrates");
    assert_eq!(
        store.source_state("hr").await.expect("read"),
        Some(b"{\"select\":[]}".to_vec())
    );
    let kept_state = kept(&store).await;
    assert_eq!(kept_state.state, b"{\"users\":[]}");
    // And new states are kept as bytes.
    store
        .save_source_state("hr", &[0, 159, 146, 150], 0)
        .await
        .expect("saved");
    assert_eq!(
        store.source_state("hr").await.expect("read"),
        Some(vec![0, 159, 146, 150])
    );
}
