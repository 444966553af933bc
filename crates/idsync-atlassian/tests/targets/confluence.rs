//! `confluence-dc` against the simulated Confluence DC REST API.

use atlassian_sim::{Product, SimUser};
use idsync_model::{Applied, TargetErrorKind, TargetKind};

use crate::common::*;

const CONFLUENCE: TargetKind = TargetKind::ConfluenceDc;

#[tokio::test]
async fn full_lifecycle() {
    let sim = start().await;
    let confluence = target(&sim, CONFLUENCE);
    let t = confluence.as_ref();
    let caps = t.capabilities();
    assert!(!caps.rename_user && !caps.custom_attributes);

    assert_eq!(ok(t, create_group("writers")).await, Applied::Done);
    assert_eq!(ok(t, create_group("writers")).await, Applied::AlreadyDone);
    assert!(
        sim.groups(Product::Confluence)
            .contains(&"writers".to_owned())
    );

    let key = key_of(ok(t, create_user("ada")).await);
    let ada = sim.user(Product::Confluence, "ada").expect("created");
    assert_eq!(ada.key, key);
    assert_eq!(
        (ada.email.as_str(), ada.display_name.as_str(), ada.active),
        ("ada@example.com", "User ada", true)
    );

    ok(
        t,
        update_user(&key, "ada", "ada@new.example", "Ada Lovelace"),
    )
    .await;
    let ada = sim.user(Product::Confluence, "ada").expect("there");
    assert_eq!(
        (ada.email.as_str(), ada.display_name.as_str()),
        ("ada@new.example", "Ada Lovelace")
    );

    // What Confluence's REST API cannot do is refused, not faked.
    let e = fails(t, rename(&key, "ada", "ada.l")).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported, "{e}");
    let e = fails(t, set_attribute(&key, "ada", "department", Some("x"))).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported, "{e}");
    assert!(sim.user(Product::Confluence, "ada.l").is_none());

    ok(t, add("writers", &key, "ada")).await;
    ok(t, add("writers", &key, "ada")).await;
    assert_eq!(sim.members(Product::Confluence, "writers"), vec!["ada"]);

    let state = t.read_state(&[]).await.expect("read state");
    let read = state.users.iter().find(|u| u.key == key).expect("listed");
    assert_eq!(
        (
            read.username.as_str(),
            read.display_name.as_deref(),
            read.active
        ),
        ("ada", Some("Ada Lovelace"), true)
    );
    assert!(state.memberships["writers"].contains(&key));
    let (one, groups) = t
        .read_user("ada", &[])
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!(one.key, key);
    assert!(groups.contains("writers"));
    // Given in other case: the same account and groups (asked again by its own spelling).
    let (again, same) = t
        .read_user("ADA", &[])
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!((again.key.as_str(), &same), (key.as_str(), &groups));
    assert_eq!(t.read_user("nobody", &[]).await.expect("read"), None);

    ok(t, deactivate(&key, "ada")).await;
    assert!(!sim.user(Product::Confluence, "ada").expect("there").active);
    let (one, _) = t.read_user("ada", &[]).await.expect("read").expect("there");
    assert!(!one.active, "status Deactivated");
    ok(t, reactivate(&key, "ada")).await;
    assert!(sim.user(Product::Confluence, "ada").expect("there").active);

    ok(t, remove("writers", &key, "ada")).await;
    ok(t, remove("writers", &key, "ada")).await;
    assert!(sim.members(Product::Confluence, "writers").is_empty());

    // Deletion is a long task, polled until done.
    sim.set_long_task_polls(3);
    delete_user_and_group(t, &sim, Product::Confluence, &key, "ada", "writers").await;
    assert_eq!(sim.pending_long_tasks(), 0);
    assert!(requests(t, "rest/api/longtask") >= 3);
}

#[tokio::test]
async fn pages_through_users_groups_and_members() {
    let sim = start().await;
    // Pages of 200: more than three of users, groups and one group's members.
    for i in 0..900 {
        let name = format!("user{i:04}");
        sim.seed_user(Product::Confluence, SimUser::new(&name));
        if i < 700 {
            sim.seed_membership(Product::Confluence, "confluence-users", &name);
        }
    }
    for g in 0..700 {
        sim.seed_group(Product::Confluence, &format!("space-{g:03}"));
    }
    let confluence = target(&sim, CONFLUENCE);
    let state = confluence.read_state(&[]).await.expect("read state");
    assert_eq!(state.users.len(), 900);
    assert_eq!(state.groups.len(), 701);
    assert_eq!(state.memberships["confluence-users"].len(), 700);
    // Exactly the pages needed: users 5, groups 4, "confluence-users" 4 and one for each of
    // the 700 empty groups.
    let t = confluence.as_ref();
    assert_eq!(count(t, "GET /rest/api/user/list"), 5);
    assert_eq!(count(t, "GET /rest/api/group"), 4);
    assert_eq!(count(t, "GET /rest/api/group/{}/member"), 4 + 700);
    assert_eq!(t.request_counts().values().sum::<u64>(), 5 + 4 + 704);
}

#[tokio::test]
async fn one_failing_member_read_fails_the_whole_read() {
    let sim = start().await;
    for i in 0..450 {
        let name = format!("user{i:03}");
        sim.seed_user(Product::Confluence, SimUser::new(&name));
        sim.seed_membership(Product::Confluence, "big", &name);
        sim.seed_membership(Product::Confluence, &format!("team-{:02}", i % 20), &name);
    }
    // The last of big's three pages, read at once with the second.
    fail_for_good(&sim, "/group/big/member?expand=status&start=400", 503);
    let confluence = target(&sim, CONFLUENCE);
    let e = confluence
        .read_state(&[])
        .await
        .expect_err("no partial state");
    assert_eq!(e.kind, TargetErrorKind::Unavailable, "{e}");
    sim.kit().clear_faults();
    let state = confluence.read_state(&[]).await.expect("read state");
    assert_eq!(state.memberships["big"].len(), 450);
}

#[tokio::test]
async fn finds_users_through_groups_before_8_4() {
    let sim = start().await;
    // Confluence before 8.4 has no /user/list.
    missing_resource(&sim, "/confluence/rest/api/user/list");
    for i in 0..5 {
        let name = format!("old{i}");
        sim.seed_user(Product::Confluence, SimUser::new(&name));
        sim.seed_membership(Product::Confluence, "confluence-users", &name);
    }
    let confluence = target(&sim, CONFLUENCE);
    let state = confluence.read_state(&[]).await.expect("read state");
    assert_eq!(state.users.len(), 5);
}

#[tokio::test]
async fn recovers_from_429_with_retry_after() {
    let sim = start().await;
    throttle_once(&sim, "/confluence/rest/api/admin/user", Some("POST"));
    let confluence = target(&sim, CONFLUENCE);
    let key = key_of(ok(confluence.as_ref(), create_user("rita")).await);
    assert_eq!(
        sim.user(Product::Confluence, "rita").expect("created").key,
        key
    );
    assert_eq!(
        requests(confluence.as_ref(), "POST /rest/api/admin/user"),
        2
    );
}

#[tokio::test]
async fn licence_limit_is_a_clear_error() {
    let sim = start().await;
    let key = sim.seed_user(Product::Confluence, SimUser::new("one"));
    sim.seed_user(
        Product::Confluence,
        SimUser {
            active: false,
            ..SimUser::new("off")
        },
    );
    sim.set_licence_seats(Product::Confluence, Some(1));
    let confluence = target(&sim, CONFLUENCE);
    let e = fails(confluence.as_ref(), create_user("two")).await;
    assert_eq!(e.kind, TargetErrorKind::LicenceLimit, "{e}");
    assert_eq!(e.status, Some(402));
    assert!(e.message.contains("'two'"), "{e}");
    assert!(sim.user(Product::Confluence, "two").is_none());
    let e = fails(confluence.as_ref(), reactivate(&key, "off")).await;
    assert_eq!(e.kind, TargetErrorKind::LicenceLimit, "{e}");
    assert!(!sim.user(Product::Confluence, "off").expect("there").active);
}

#[tokio::test]
async fn existing_user_is_adopted() {
    let sim = start().await;
    let seeded = sim.seed_user(Product::Confluence, SimUser::new("bob"));
    let confluence = target(&sim, CONFLUENCE);
    assert_eq!(
        ok(confluence.as_ref(), create_user("bob")).await,
        Applied::Adopted(seeded)
    );
    assert_eq!(sim.users(Product::Confluence).len(), 1);
}

#[tokio::test]
async fn read_only_directory_is_a_clear_error() {
    let sim = start().await;
    let key = sim.seed_user(Product::Confluence, SimUser::new("ro"));
    sim.seed_group(Product::Confluence, "writers");
    sim.set_read_only(Product::Confluence, true);
    let confluence = target(&sim, CONFLUENCE);
    let e = fails(confluence.as_ref(), create_user("new")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    let e = fails(confluence.as_ref(), add("writers", &key, "ro")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    assert!(sim.members(Product::Confluence, "writers").is_empty());
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let sim = start().await;
    let e = wrong_token(&sim, CONFLUENCE)
        .read_state(&[])
        .await
        .expect_err("401");
    assert_eq!(e.kind, TargetErrorKind::Unauthorized);
    assert!(e.message.contains("'confluence'"), "{e}");
}

/// A deletion's long task reports `successful: true` while it runs (as Confluence DC does):
/// idsync reports the deletion done only at 100 %, a task that fails half way as failed (the
/// user kept), and one still running after `long_task_wait_seconds` as still running, in
/// doubt, never as done.
#[tokio::test]
async fn deletions_are_done_only_when_their_task_finishes() {
    let sim = start().await;
    for name in ["ada", "bob", "cyd"] {
        sim.seed_user(Product::Confluence, SimUser::new(name));
    }
    let mut config = config(&sim, CONFLUENCE);
    config.long_task_wait_seconds = 1;
    let confluence = build(&config);
    let t = confluence.as_ref();

    sim.set_long_task_polls(3);
    assert_eq!(ok(t, delete_user("k-ada", "ada")).await, Applied::Done);
    assert!(sim.user(Product::Confluence, "ada").is_none());
    assert_eq!(sim.pending_long_tasks(), 0);
    assert_eq!(requests(t, "rest/api/longtask"), 3);

    sim.set_long_tasks_fail(true);
    let e = fails(t, delete_user("k-bob", "bob")).await;
    assert_eq!(e.kind, TargetErrorKind::Rejected, "{e}");
    assert!(e.message.contains("failed at 50%"), "{e}");
    assert!(sim.user(Product::Confluence, "bob").is_some());
    sim.set_long_tasks_fail(false);

    sim.set_long_task_polls(u32::MAX);
    let e = fails(t, delete_user("k-cyd", "cyd")).await;
    assert_eq!(e.kind, TargetErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("still running") && e.message.contains("long_task_wait_seconds"),
        "{e}"
    );
    assert_eq!(sim.pending_long_tasks(), 1);
}

/// The version decides what is planned: read from `/server-information` (9.1+) or, before
/// that, the application-links manifest; what the version lacks is listed with the version it
/// needs. A 404 is "already done" only when the object is confirmed gone.
#[tokio::test]
async fn capabilities_follow_the_version_and_a_404_is_checked() {
    use idsync_model::{OperationKind, Version};

    let sim = start().await;
    let current = target(&sim, CONFLUENCE);
    let info = current.discover().await.expect("discovered");
    assert_eq!(info.to_string(), "Confluence 9.2.0");
    assert!(current.capabilities().unavailable.is_empty());

    sim.set_version(Product::Confluence, "8.3.0");
    let old = target(&sim, CONFLUENCE);
    let info = old.discover().await.expect("discovered");
    assert_eq!(info.version, Some(Version(8, 3, 0)));
    let unavailable = &old.capabilities().unavailable;
    assert!(
        unavailable[&OperationKind::CreateUser].contains("needs Confluence 8.4"),
        "{unavailable:?}"
    );
    assert!(unavailable.contains_key(&OperationKind::AddMembership));
    assert!(!unavailable.contains_key(&OperationKind::DeactivateUser));

    // Before 8.2 there is no deletion resource: the 404 for an existing user is not "done".
    sim.set_version(Product::Confluence, "8.1.0");
    sim.seed_user(Product::Confluence, SimUser::new("ada"));
    let e = fails(old.as_ref(), delete_user("k-ada", "ada")).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported, "{e}");
    assert!(sim.user(Product::Confluence, "ada").is_some());
    // A user who is really gone is.
    assert_eq!(
        ok(old.as_ref(), delete_user("k-bob", "bob")).await,
        Applied::AlreadyDone
    );
    // Removing a membership before 9.0, both user and group there: not "done" either.
    sim.seed_group(Product::Confluence, "writers");
    sim.seed_membership(Product::Confluence, "writers", "ada");
    sim.set_version(Product::Confluence, "8.5.0");
    let e = fails(old.as_ref(), remove("writers", "k-ada", "ada")).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported, "{e}");
    assert_eq!(sim.members(Product::Confluence, "writers"), vec!["ada"]);
}
