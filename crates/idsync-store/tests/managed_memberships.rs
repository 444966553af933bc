//! Managed memberships, packed one row per group: what goes in comes out, per app and target.

// Not every test uses every helper.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;

use idsync_model::bookkeeping::Bookkeeping;

use common::{keep, open, pair};

#[tokio::test]
async fn added_removed_and_dropped_with_their_links() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let first = Bookkeeping {
        add_managed: BTreeSet::from([
            pair("devs", "K1"),
            pair("devs", "K2"),
            pair("ops", "K2"),
            pair("qa", "K3"),
        ]),
        ..Bookkeeping::default()
    };
    keep(&store, "main", "jira", &first).await;
    // Another app and another target keep their own.
    keep(&store, "other", "jira", &first).await;
    assert_eq!(
        store
            .managed_memberships("main", "jira")
            .await
            .expect("read"),
        first.add_managed.iter().cloned().collect()
    );

    let second = Bookkeeping {
        remove_links: vec!["K2".to_owned()],
        remove_managed: BTreeSet::from([pair("qa", "K3")]),
        add_managed: BTreeSet::from([pair("devs", "K4")]),
        ..Bookkeeping::default()
    };
    keep(&store, "main", "jira", &second).await;
    assert_eq!(
        store
            .managed_memberships("main", "jira")
            .await
            .expect("read"),
        [pair("devs", "K1"), pair("devs", "K4")]
            .into_iter()
            .collect()
    );
    assert_eq!(
        store
            .managed_memberships("other", "jira")
            .await
            .expect("read"),
        first.add_managed.iter().cloned().collect()
    );
    assert!(
        store
            .managed_memberships("main", "wiki")
            .await
            .expect("read")
            .is_empty()
    );
}
