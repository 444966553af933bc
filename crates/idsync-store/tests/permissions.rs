//! The store's folder and files are private to the account idsync runs as: they hold names,
//! e-mail addresses and memberships.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use idsync_store::Store;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_folder_and_database_files_are_owner_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").join("idsync");
    let db = data.join("idsync.db");
    let store = Store::open_file(&db).await.expect("store opens");
    // A write, so that the write-ahead log and its index exist while the store is open.
    let lease = store.lock_app("hr", false).await.expect("locked");
    store
        .start_run(&lease, "hr", idsync_model::run::Trigger::Manual, false)
        .await
        .expect("run");

    assert_eq!(mode(&data), 0o700, "data folder");
    assert_eq!(
        mode(&dir.path().join("data")),
        0o700,
        "its parent, created too"
    );
    assert_eq!(mode(&db), 0o600, "database");
    for suffix in ["-wal", "-shm"] {
        let file = data.join(format!("idsync.db{suffix}"));
        assert!(
            file.exists(),
            "{} exists while the store is open",
            file.display()
        );
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn existing_folders_and_databases_keep_their_modes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("shared");
    std::fs::create_dir(&data).expect("folder");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let db = data.join("idsync.db");
    drop(Store::open_file(&db).await.expect("store opens"));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    let store = Store::open_file(&db).await.expect("store opens again");
    let lease = store.lock_app("hr", false).await.expect("locked");
    store
        .start_run(&lease, "hr", idsync_model::run::Trigger::Manual, false)
        .await
        .expect("run");
    assert_eq!(mode(&data), 0o750);
    assert_eq!(mode(&db), 0o640);
}
