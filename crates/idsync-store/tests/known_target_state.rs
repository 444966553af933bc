//! What the store keeps of a target between runs, and the epochs that keep two runs from
//! saving over each other's changes.

use idsync_store::Store;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens");
    (dir, store)
}

#[tokio::test]
async fn a_full_read_is_kept_until_a_run_writes() {
    let (_dir, store) = store().await;
    assert_eq!(store.known_target_state("jira").await.expect("read"), None);
    let epoch = store.target_epoch("jira").await.expect("epoch");
    assert!(
        store
            .save_target_state("jira", "fp", 100, epoch, "{\"users\":[]}")
            .await
            .expect("saved")
    );
    let known = store
        .known_target_state("jira")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((known.fingerprint.as_str(), known.read_at), ("fp", 100));
    assert_eq!(known.state, "{\"users\":[]}");
    // Another target is not affected.
    assert_eq!(store.known_target_state("wiki").await.expect("read"), None);

    // A run starts writing: what was known no longer holds until the run saves its own.
    let writing = store.begin_target_writes("jira").await.expect("begun");
    assert_eq!(store.known_target_state("jira").await.expect("read"), None);
    assert!(
        store
            .save_target_state("jira", "fp", 100, writing, "{\"after\":1}")
            .await
            .expect("saved")
    );
    assert_eq!(
        store
            .known_target_state("jira")
            .await
            .expect("read")
            .map(|k| k.state),
        Some("{\"after\":1}".to_owned())
    );
    store.forget_target_state("jira").await.expect("forgotten");
    assert_eq!(store.known_target_state("jira").await.expect("read"), None);
}

#[tokio::test]
async fn a_state_that_misses_another_runs_writes_is_not_saved() {
    let (_dir, store) = store().await;
    // Run A reads the target in full while run B starts writing to it.
    let read_at = store.target_epoch("jira").await.expect("epoch");
    let b = store.begin_target_writes("jira").await.expect("begun");
    assert!(
        !store
            .save_target_state("jira", "fp", 1, read_at, "{\"a\":1}")
            .await
            .expect("refused"),
        "A's read may miss B's changes"
    );
    // Run C begins writing before B finishes: B's state misses C's changes.
    let c = store.begin_target_writes("jira").await.expect("begun");
    assert!(
        !store
            .save_target_state("jira", "fp", 1, b, "{\"b\":1}")
            .await
            .expect("refused")
    );
    assert!(
        store
            .save_target_state("jira", "fp", 1, c, "{\"c\":1}")
            .await
            .expect("saved")
    );
    assert_eq!(
        store
            .known_target_state("jira")
            .await
            .expect("read")
            .map(|k| k.state),
        Some("{\"c\":1}".to_owned())
    );
}
