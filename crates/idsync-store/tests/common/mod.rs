//! What the store tests share: a store in a fresh folder, bookkeeping kept in it, and the
//! links and memberships they keep.

use idsync_model::bookkeeping::Bookkeeping;
use idsync_model::link::Link;
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

/// The link of `app`'s source object `source_id` to account `key`, named `username`.
pub fn link(app: &str, source_id: &str, key: &str, username: &str) -> Link {
    Link {
        app: app.to_owned(),
        source_id: source_id.to_owned(),
        key: key.to_owned(),
        username: username.to_owned(),
        kept_username: None,
        rename_reported: None,
    }
}
