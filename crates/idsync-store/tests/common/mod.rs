//! What the store tests share: a store in a fresh folder, bookkeeping kept in it, and the
//! managed memberships they keep.

use idsync_model::bookkeeping::Bookkeeping;
use idsync_store::Store;

/// The store of a fresh folder `dir`.
pub async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens")
}

/// Keeps `books` of `app` on `target`, as a run does when it ends.
pub async fn keep(store: &Store, app: &str, target: &str, books: &Bookkeeping) {
    store
        .apply_bookkeeping(app, target, books)
        .await
        .expect("kept");
}

/// A managed membership: (group, account key).
pub fn pair(group: &str, key: &str) -> (String, String) {
    (group.to_owned(), key.to_owned())
}
