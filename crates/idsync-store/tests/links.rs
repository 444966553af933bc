//! Links between source objects and target accounts, as the planner is handed them.

use idsync_engine::Link;
use idsync_engine::outcome::Bookkeeping;
use idsync_store::Store;

fn link(app: &str, source_id: &str, key: &str, username: &str) -> Link {
    Link {
        app: app.to_owned(),
        source_id: source_id.to_owned(),
        key: key.to_owned(),
        username: username.to_owned(),
    }
}

#[tokio::test]
async fn links_come_back_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens");
    assert_eq!(store.links("jira").await.expect("read"), Vec::new());
    // Names with quotes, backslashes and non-ASCII letters survive the trip.
    let hr = [
        link("hr", "id-2", "K2", "zoë \"the\" admin"),
        link("hr", "id-1", "K1", "back\\slash"),
    ];
    let corp = [link("corp", "id-9", "K9", "ops")];
    for (app, links) in [("hr", &hr[..]), ("corp", &corp[..])] {
        let books = Bookkeeping {
            upsert_links: links.to_vec(),
            ..Bookkeeping::default()
        };
        store
            .apply_bookkeeping(app, "jira", &books)
            .await
            .expect("kept");
    }
    let other = Bookkeeping {
        upsert_links: vec![link("hr", "id-1", "W1", "wiki-user")],
        ..Bookkeeping::default()
    };
    store
        .apply_bookkeeping("hr", "wiki", &other)
        .await
        .expect("kept");

    // By app, then source id; only this target's.
    assert_eq!(
        store.links("jira").await.expect("read"),
        vec![corp[0].clone(), hr[1].clone(), hr[0].clone()]
    );
    assert_eq!(store.links("wiki").await.expect("read"), other.upsert_links);
}
