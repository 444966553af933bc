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

/// A source object has one account per target: a new account replaces its old link, the last
/// of two links given at once wins, and many links at once are all kept.
#[tokio::test]
async fn a_source_object_keeps_one_link_per_target() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens");
    let many: Vec<Link> = (0..1234)
        .map(|n| {
            link(
                "hr",
                &format!("id-{n:05}"),
                &format!("K{n}"),
                &format!("user{n}"),
            )
        })
        .collect();
    let books = Bookkeeping {
        upsert_links: many.clone(),
        ..Bookkeeping::default()
    };
    store
        .apply_bookkeeping("hr", "jira", &books)
        .await
        .expect("kept");
    assert_eq!(store.links("jira").await.expect("read"), many);

    let books = Bookkeeping {
        upsert_links: vec![
            // id-00001's account was replaced by a new one.
            link("hr", "id-00001", "NEW1", "user1"),
            // id-00002 linked twice in one run: the last one given wins.
            link("hr", "id-00002", "X", "first"),
            link("hr", "id-00002", "NEW2", "second"),
            // A rename keeps the account.
            link("hr", "id-00003", "K3", "renamed"),
        ],
        ..Bookkeeping::default()
    };
    store
        .apply_bookkeeping("hr", "jira", &books)
        .await
        .expect("kept");
    let links = store.links("jira").await.expect("read");
    assert_eq!(links.len(), 1234);
    assert_eq!(links[1], link("hr", "id-00001", "NEW1", "user1"));
    assert_eq!(links[2], link("hr", "id-00002", "NEW2", "second"));
    assert_eq!(links[3], link("hr", "id-00003", "K3", "renamed"));
    assert_eq!(links[4], many[4]);
}
