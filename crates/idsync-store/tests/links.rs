//! Links between source objects and target accounts, as the planner is handed them.

// Not every test uses every helper.
#[allow(dead_code)]
mod common;

use idsync_model::bookkeeping::Bookkeeping;
use idsync_model::link::Link;
use idsync_store::Store;

use common::{keep, open};

#[tokio::test]
async fn links_come_back_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    assert_eq!(store.links("jira").await.expect("read"), Vec::new());
    // Names with quotes, backslashes and non-ASCII letters survive the trip.
    let hr = [
        Link::new("hr", "id-2", "K2", "zoë \"the\" admin"),
        Link::new("hr", "id-1", "K1", "back\\slash"),
    ];
    let corp = [Link::new("corp", "id-9", "K9", "ops")];
    for (app, links) in [("hr", &hr[..]), ("corp", &corp[..])] {
        let books = Bookkeeping {
            upsert_links: links.to_vec(),
            ..Bookkeeping::default()
        };
        keep(&store, app, "jira", &books).await;
    }
    let other = Bookkeeping {
        upsert_links: vec![Link::new("hr", "id-1", "W1", "wiki-user")],
        ..Bookkeeping::default()
    };
    keep(&store, "hr", "wiki", &other).await;

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
    let store = open(&dir).await;
    let many: Vec<Link> = (0..1234)
        .map(|n| {
            Link::new(
                "hr",
                format!("id-{n:05}"),
                format!("K{n}"),
                format!("user{n}"),
            )
        })
        .collect();
    let books = Bookkeeping {
        upsert_links: many.clone(),
        ..Bookkeeping::default()
    };
    keep(&store, "hr", "jira", &books).await;
    assert_eq!(store.links("jira").await.expect("read"), many);

    let books = Bookkeeping {
        upsert_links: vec![
            // id-00001's account was replaced by a new one.
            Link::new("hr", "id-00001", "NEW1", "user1"),
            // id-00002 linked twice in one run: the last one given wins.
            Link::new("hr", "id-00002", "X", "first"),
            Link::new("hr", "id-00002", "NEW2", "second"),
            // A rename keeps the account.
            Link::new("hr", "id-00003", "K3", "renamed"),
        ],
        ..Bookkeeping::default()
    };
    keep(&store, "hr", "jira", &books).await;
    let links = store.links("jira").await.expect("read");
    assert_eq!(links.len(), 1234);
    assert_eq!(links[1], Link::new("hr", "id-00001", "NEW1", "user1"));
    assert_eq!(links[2], Link::new("hr", "id-00002", "NEW2", "second"));
    assert_eq!(links[3], Link::new("hr", "id-00003", "K3", "renamed"));
    assert_eq!(links[4], many[4]);
}

/// What idsync remembers on a link (a kept username, a rename reported) and the e-mails it
/// sent come back as written, and go with the link.
#[tokio::test]
async fn remembered_details_come_back_and_leave_with_the_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let mut kept = Link::new("hr", "id-1", "K1", "legacy-bob");
    kept.kept_username = Some("bob".into());
    let mut reported = Link::new("hr", "id-2", "K2", "ada");
    reported.rename_reported = Some("ada.byron".into());
    let books = Bookkeeping {
        upsert_links: vec![kept.clone(), reported.clone()],
        sent_emails: vec![
            ("K1".into(), "bob@contoso.com".into()),
            ("K2".into(), "ada@contoso.com".into()),
            ("K2".into(), "ada.byron@contoso.com".into()),
        ],
        ..Bookkeeping::default()
    };
    keep(&store, "hr", "confluence", &books).await;
    assert_eq!(
        store.links("confluence").await.expect("read"),
        vec![kept, reported]
    );
    let sent = store.sent_emails("confluence").await.expect("read");
    assert_eq!(sent.get("K1").map(String::as_str), Some("bob@contoso.com"));
    assert_eq!(
        sent.get("K2").map(String::as_str),
        Some("ada.byron@contoso.com")
    );
    assert!(store.sent_emails("jira").await.expect("read").is_empty());

    let gone = Bookkeeping {
        remove_links: vec!["K1".into()],
        ..Bookkeeping::default()
    };
    keep(&store, "hr", "confluence", &gone).await;
    let sent = store.sent_emails("confluence").await.expect("read");
    assert_eq!(sent.len(), 1);
    assert!(sent.contains_key("K2"));
}

/// A store from before idsync remembered e-mails learns them from the history: the newest
/// creation or e-mail update done for each linked account of a Confluence target.
#[tokio::test]
async fn the_upgrade_remembers_emails_sent_before_from_the_history() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("idsync.db");
    drop(Store::open_file(&path).await.expect("store opens"));
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connects");
    for statement in [
        // Back to how migration 0006 left the store.
        "DROP TABLE sent_emails",
        "ALTER TABLE links DROP COLUMN kept_username",
        "ALTER TABLE links DROP COLUMN rename_reported",
        // And what 0008 to 0010 added, so that they run again after 0007.
        "DROP TABLE admin_token",
        "DROP INDEX operations_by_subject",
        "DROP TABLE api_entries",
        "DROP TABLE target_state_patches",
        "DELETE FROM _sqlx_migrations WHERE version >= 7",
        "INSERT INTO target_state VALUES ('wiki', 'confluence-dc http://wiki/ ', 1, 0, x'00')",
        "INSERT INTO target_state VALUES ('jira', 'jira-dc http://jira/ ', 1, 0, x'00')",
        "INSERT INTO links VALUES ('wiki', 'KA', 'hr', 'id-a', 'Ada', '2026-01-01')",
        "INSERT INTO links VALUES ('wiki', 'KB', 'hr', 'id-b', 'bob', '2026-01-01')",
        "INSERT INTO links VALUES ('wiki', 'KC', 'hr', 'id-c', 'cyd', '2026-01-01')",
        "INSERT INTO links VALUES ('jira', 'JA', 'hr', 'id-a', 'ada', '2026-01-01')",
        "INSERT INTO runs (id, app, trigger, dry_run, status, started_at) VALUES (1, 'hr', 'manual', 0, 'done', '2026-01-01'), (2, 'hr', 'manual', 0, 'done', '2026-01-02')",
        // Ada: created (name in another case), then her e-mail changed; bob: created, then an
        // update that failed; cyd: adopted, never sent one; jira: not a Confluence target.
        r#"INSERT INTO operations VALUES (1, 1, 'wiki', 'create_user', 'ada', '{"target":"wiki","op":"create_user","user":"ada","email":"ada@old","display_name":"Ada","reason":"r"}', 'done', NULL, 1)"#,
        r#"INSERT INTO operations VALUES (1, 2, 'wiki', 'create_user', 'bob', '{"target":"wiki","op":"create_user","user":"bob","email":"bob@x","display_name":"Bob","reason":"r"}', 'done', NULL, 1)"#,
        r#"INSERT INTO operations VALUES (1, 3, 'jira', 'create_user', 'ada', '{"target":"jira","op":"create_user","user":"ada","email":"ada@old","display_name":"Ada","reason":"r"}', 'done', NULL, 1)"#,
        r#"INSERT INTO operations VALUES (2, 1, 'wiki', 'update_user', 'Ada', '{"target":"wiki","op":"update_user","key":"KA","user":"Ada","changes":{"email":"ada@new"},"reason":"r"}', 'done', NULL, 1)"#,
        r#"INSERT INTO operations VALUES (2, 2, 'wiki', 'update_user', 'bob', '{"target":"wiki","op":"update_user","key":"KB","user":"bob","changes":{"email":"bob@failed"},"reason":"r"}', 'failed', 'refused', 1)"#,
    ] {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .expect(statement);
    }
    db.close().await.expect("closes");

    let store = Store::open_file(&path).await.expect("store migrates");
    let sent = store.sent_emails("wiki").await.expect("read");
    let mut sent: Vec<(String, String)> = sent.into_iter().collect();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            ("KA".to_owned(), "ada@new".to_owned()),
            ("KB".to_owned(), "bob@x".to_owned()),
        ]
    );
    assert!(store.sent_emails("jira").await.expect("read").is_empty());
    assert!(
        store
            .links("wiki")
            .await
            .expect("read")
            .iter()
            .all(|l| l.kept_username.is_none() && l.rename_reported.is_none())
    );
}
