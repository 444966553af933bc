//! What a sign-in sync reads of one user: their links and managed memberships only, and the
//! app's lock within a bounded wait.

// Not every test uses every helper.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use idsync_model::bookkeeping::Bookkeeping;
use idsync_model::link::Link;
use idsync_store::StoreError;

use common::{keep, open, pair};

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn one_users_links_and_memberships_and_nobody_elses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let books = Bookkeeping {
        upsert_links: vec![
            Link::new("main", "u1", "K1", "Ada"),
            Link::new("main", "u10", "K10", "bob"),
        ],
        // K1 is a prefix of K10: only whole keys count.
        add_managed: BTreeSet::from([
            pair("devs", "K1"),
            pair("devs", "K10"),
            pair("ops", "K10"),
            pair("qa", "K1"),
        ]),
        ..Bookkeeping::default()
    };
    keep(&store, "main", "jira", &books).await;
    store
        .apply_bookkeeping(
            "other",
            "confluence",
            &Bookkeeping {
                upsert_links: vec![Link::new("other", "u1", "C1", "ada")],
                ..Bookkeeping::default()
            },
        )
        .await
        .expect("kept");

    let found = store
        .link_of_source("main", "jira", "u1")
        .await
        .expect("read");
    assert_eq!(found, Some(Link::new("main", "u1", "K1", "Ada")));
    assert_eq!(
        store
            .link_of_source("main", "confluence", "u1")
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .links_of_keys("jira", &["K10", "nope"])
            .await
            .expect("read"),
        [Link::new("main", "u10", "K10", "bob")]
    );
    assert!(
        store
            .links_of_keys("jira", &[])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store
            .sources_of_username("main", "ADA")
            .await
            .expect("read"),
        [("jira".to_owned(), "u1".to_owned())]
    );
    assert_eq!(
        store
            .managed_memberships_of("main", "jira", "K1", &groups(&["devs", "qa", "ops"]))
            .await
            .expect("read"),
        [pair("devs", "K1"), pair("qa", "K1")]
    );
    assert_eq!(
        store
            .managed_memberships_of("main", "jira", "K10", &groups(&["devs", "ops"]))
            .await
            .expect("read"),
        [pair("devs", "K10"), pair("ops", "K10")]
    );
    // Only the groups asked about.
    assert_eq!(
        store
            .managed_memberships_of("main", "jira", "K10", &groups(&["ops"]))
            .await
            .expect("read"),
        [pair("ops", "K10")]
    );
    assert_eq!(store.known_target_stamp("jira").await.expect("read"), None);
}

#[tokio::test]
async fn the_lock_is_waited_for_within_a_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let held = store.lock_app("main", false).await.expect("lock");
    let busy = store
        .lock_app_within("main", Duration::from_millis(100))
        .await;
    assert!(matches!(busy, Err(StoreError::Busy { .. })), "{busy:?}");
    // Released while a sign-in waits: it gets the lock.
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.lock_app_within("main", Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    drop(held);
    let lease = waiting.await.expect("joins");
    assert!(lease.is_ok(), "{lease:?}");
}
