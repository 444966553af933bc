//! `bitbucket-dc` against the simulated Bitbucket DC 8.14 REST API.

use atlassian_sim::{Product, RunningAtlassianSim, SimUser};
use idsync_atlassian::BitbucketDc;
use idsync_config::BitbucketDeprovision;
use idsync_model::{Applied, Deprovisioning, Target, TargetErrorKind, TargetKind};

use crate::common::*;

const BITBUCKET: TargetKind = TargetKind::BitbucketDc;
const LICENSED: &str = "stash-users";

fn bitbucket(sim: &RunningAtlassianSim) -> BitbucketDc {
    BitbucketDc::new(&config(sim, BITBUCKET)).expect("target builds")
}

fn members(sim: &RunningAtlassianSim, group: &str) -> Vec<String> {
    sim.members(Product::Bitbucket, group)
}

/// Every operation Bitbucket supports, asserting the simulator after each; also the traffic
/// the OpenAPI check validates.
pub async fn lifecycle(sim: &RunningAtlassianSim) {
    let bb = bitbucket(sim);
    let t: &dyn Target = &bb;
    assert_eq!(
        t.capabilities().deprovisioning,
        Deprovisioning::RemoveLicensedGroups {
            groups: [LICENSED.to_owned()].into(),
            reactivate_group: LICENSED.into(),
        }
    );

    assert_eq!(ok(t, create_group("devs")).await, Applied::Done);
    assert_eq!(ok(t, create_group("devs")).await, Applied::AlreadyDone);
    assert!(sim.groups(Product::Bitbucket).contains(&"devs".to_owned()));

    // A new account gets its licence through the configured licensed group.
    let key = create_and_key(t, create_user("ada")).await;
    let ada = sim.user(Product::Bitbucket, "ada").expect("created");
    assert_eq!(ada.key, key);
    assert_eq!(
        (ada.email.as_str(), ada.display_name.as_str()),
        ("ada@example.com", "User ada")
    );
    assert_eq!(members(sim, LICENSED), vec!["ada".to_owned()]);

    ok(
        t,
        update_user(&key, "ada", "ada@new.example", "Ada Lovelace"),
    )
    .await;
    ok(t, rename(&key, "ada", "ada.l")).await;
    let ada = sim.user(Product::Bitbucket, "ada.l").expect("renamed");
    assert_eq!(
        (
            ada.key.as_str(),
            ada.email.as_str(),
            ada.display_name.as_str()
        ),
        (key.as_str(), "ada@new.example", "Ada Lovelace")
    );
    assert!(sim.user(Product::Bitbucket, "ada").is_none());

    assert_eq!(ok(t, add("devs", &key, "ada.l")).await, Applied::Done);
    assert_eq!(members(sim, "devs"), vec!["ada.l".to_owned()]);

    // Bulk membership: one request for several users.
    for name in ["bo", "cy"] {
        sim.seed_user(Product::Bitbucket, SimUser::new(name));
    }
    let before = requests(t, "add-users");
    bb.add_members("devs", &["bo".into(), "cy".into()])
        .await
        .expect("bulk add");
    assert_eq!(requests(t, "add-users"), before + 1);
    assert_eq!(members(sim, "devs"), vec!["ada.l", "bo", "cy"]);

    let state = t.read_state(&[]).await.expect("read state");
    let read = state.users.iter().find(|u| u.key == key).expect("listed");
    assert!(read.active, "in a licensed group");
    assert!(
        !state
            .users
            .iter()
            .find(|u| u.username == "bo")
            .expect("bo")
            .active,
        "in no licensed group"
    );
    assert!(state.memberships["devs"].contains(&key));
    let (one, groups) = t
        .read_user("ada.l", &[])
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!(one.key, key);
    assert_eq!(groups, [LICENSED.to_owned(), "devs".to_owned()].into());
    // Given in other case: the same account and groups (asked again by its own spelling);
    // a name nobody has is no account, whatever the groups request answered beside it.
    let (again, same) = t
        .read_user("ADA.L", &[])
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!((again.key.as_str(), &same), (key.as_str(), &groups));
    assert_eq!(t.read_user("nobody", &[]).await.expect("read"), None);

    // Deprovisioning removes the licensed groups only; reactivating gives one back.
    assert_eq!(ok(t, deactivate(&key, "ada.l")).await, Applied::Done);
    // Again: with one licence group it is a single removal, and Bitbucket does not say
    // whether the user still was a member; either way it succeeds and changes nothing.
    assert!(matches!(
        ok(t, deactivate(&key, "ada.l")).await,
        Applied::Done | Applied::AlreadyDone
    ));
    assert!(members(sim, LICENSED).is_empty());
    assert!(members(sim, "devs").contains(&"ada.l".to_owned()));
    let (one, _) = t
        .read_user("ada.l", &[])
        .await
        .expect("read")
        .expect("there");
    assert!(!one.active);
    assert_eq!(ok(t, reactivate(&key, "ada.l")).await, Applied::Done);
    assert_eq!(ok(t, reactivate(&key, "ada.l")).await, Applied::AlreadyDone);
    assert_eq!(members(sim, LICENSED), vec!["ada.l".to_owned()]);

    assert_eq!(ok(t, remove("devs", &key, "ada.l")).await, Applied::Done);
    assert_eq!(members(sim, "devs"), vec!["bo", "cy"]);

    // Custom attributes and leads are not Bitbucket things.
    let e = fails(t, set_attribute(&key, "ada.l", "department", Some("x"))).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported);

    delete_user_and_group(t, sim, Product::Bitbucket, &key, "ada.l", "devs").await;
}

#[tokio::test]
async fn full_lifecycle() {
    let sim = start().await;
    lifecycle(&sim).await;
}

#[tokio::test]
async fn delete_policy_deletes_on_deactivate() {
    let sim = start().await;
    let mut config = config(&sim, BITBUCKET);
    config.deprovision = BitbucketDeprovision::Delete;
    let bb = build(&config);
    let t = bb.as_ref();
    assert_eq!(t.capabilities().deprovisioning, Deprovisioning::Delete);
    let key = create_and_key(t, create_user("del")).await;
    assert_eq!(
        members(&sim, LICENSED),
        vec!["del".to_owned()],
        "Bitbucket's default group"
    );
    ok(t, deactivate(&key, "del")).await;
    assert!(sim.user(Product::Bitbucket, "del").is_none());
    let e = fails(t, reactivate(&key, "del")).await;
    assert_eq!(e.kind, TargetErrorKind::Unsupported);
}

#[tokio::test]
async fn pages_through_users_groups_and_members() {
    let sim = start().await;
    // Pages of 1000: more than three pages of users and of one group's members.
    for i in 0..3300 {
        let name = format!("user{i:05}");
        sim.seed_user(Product::Bitbucket, SimUser::new(&name));
        sim.seed_membership(Product::Bitbucket, "everyone", &name);
    }
    for g in 0..40 {
        sim.seed_group(Product::Bitbucket, &format!("team-{g:02}"));
    }
    let bb = target(&sim, BITBUCKET);
    let state = bb.read_state(&[]).await.expect("read state");
    assert_eq!(state.users.len(), 3300);
    assert_eq!(state.groups.len(), 42);
    assert_eq!(state.memberships["everyone"].len(), 3300);
    // Exactly the pages needed: users 4, groups 1, and (more users than groups, so read per
    // group) "everyone" 4 plus one for each other group.
    let t = bb.as_ref();
    assert_eq!(count(t, "GET /rest/api/1.0/admin/users"), 4);
    assert_eq!(count(t, "GET /rest/api/1.0/admin/groups"), 1);
    assert_eq!(
        count(t, "GET /rest/api/1.0/admin/groups/more-members"),
        4 + 41
    );
    assert_eq!(count(t, "GET /rest/api/1.0/admin/users/more-members"), 0);
    assert_eq!(t.request_counts().values().sum::<u64>(), 4 + 1 + 45);
}

#[tokio::test]
async fn memberships_are_read_per_user_when_users_are_fewer() {
    let sim = start().await;
    for g in 0..30 {
        sim.seed_group(Product::Bitbucket, &format!("team-{g:02}"));
    }
    let mut keys = Vec::new();
    for (i, name) in ["ann", "ben", "cat"].iter().enumerate() {
        keys.push(sim.seed_user(Product::Bitbucket, SimUser::new(name)));
        for g in (i..30).step_by(3) {
            sim.seed_membership(Product::Bitbucket, &format!("team-{g:02}"), name);
        }
    }
    sim.seed_membership(Product::Bitbucket, "stash-users", "ann");
    let bb = target(&sim, BITBUCKET);
    let state = bb.read_state(&[]).await.expect("read state");
    let t = bb.as_ref();
    assert_eq!(count(t, "GET /rest/api/1.0/admin/users/more-members"), 3);
    assert_eq!(count(t, "GET /rest/api/1.0/admin/groups/more-members"), 0);
    assert_eq!(state.groups.len(), 31);
    assert_eq!(state.memberships.len(), 31, "empty groups are listed too");
    for g in 0..30 {
        let members = &state.memberships[&format!("team-{g:02}")];
        assert_eq!(members.iter().collect::<Vec<_>>(), vec![&keys[g % 3]]);
    }
    assert_eq!(state.memberships["stash-users"].len(), 1);
    let active: Vec<bool> = state.users.iter().map(|u| u.active).collect();
    assert_eq!(
        active,
        vec![true, false, false],
        "only ann holds the licensed group"
    );
}

#[tokio::test]
async fn one_failing_member_read_fails_the_whole_read() {
    let sim = start().await;
    for i in 0..40 {
        let name = format!("user{i:02}");
        sim.seed_user(Product::Bitbucket, SimUser::new(&name));
        sim.seed_membership(Product::Bitbucket, &format!("team-{:02}", i % 20), &name);
    }
    fail_for_good(&sim, "more-members?context=team-13&", 503);
    let bb = target(&sim, BITBUCKET);
    let e = bb.read_state(&[]).await.expect_err("no partial state");
    assert_eq!(e.kind, TargetErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn recovers_from_429_with_retry_after() {
    let sim = start().await;
    throttle_once(&sim, "/bitbucket/rest/api/1.0/admin/groups", Some("POST"));
    let bb = target(&sim, BITBUCKET);
    assert_eq!(ok(bb.as_ref(), create_group("late")).await, Applied::Done);
    assert!(sim.groups(Product::Bitbucket).contains(&"late".to_owned()));
    assert_eq!(requests(bb.as_ref(), "POST /rest/api/1.0/admin/groups"), 2);
}

#[tokio::test]
async fn licence_limit_is_a_clear_error() {
    let sim = start().await;
    sim.seed_user(Product::Bitbucket, SimUser::new("one"));
    sim.seed_membership(Product::Bitbucket, LICENSED, "one");
    sim.set_licence_seats(Product::Bitbucket, Some(1));
    let bb = target(&sim, BITBUCKET);
    // The account is made; granting its licence group, when its creation is completed
    // (with the other new accounts, in a batch), is refused for it alone.
    assert_eq!(
        ok(bb.as_ref(), create_user("two")).await,
        Applied::CreatedWithoutKey
    );
    let mut completed = bb
        .complete_creations(&["two".to_owned()])
        .await
        .expect("completed");
    let e = completed
        .remove("two")
        .expect("reported")
        .expect_err("no seat left");
    assert_eq!(e.kind, TargetErrorKind::LicenceLimit, "{e}");
    assert!(e.message.contains("'two'"), "{e}");
    assert_eq!(members(&sim, LICENSED), vec!["one".to_owned()]);

    // Under the delete policy the account is created straight into the default group, and
    // Bitbucket refuses the creation itself.
    let mut config = config(&sim, BITBUCKET);
    config.deprovision = BitbucketDeprovision::Delete;
    let e = fails(build(&config).as_ref(), create_user("three")).await;
    assert_eq!(e.kind, TargetErrorKind::LicenceLimit, "{e}");
    assert!(sim.user(Product::Bitbucket, "three").is_none());
}

#[tokio::test]
async fn existing_user_is_adopted() {
    let sim = start().await;
    let seeded = sim.seed_user(Product::Bitbucket, SimUser::new("bob"));
    let bb = target(&sim, BITBUCKET);
    assert_eq!(
        ok(bb.as_ref(), create_user("bob")).await,
        Applied::Adopted(seeded)
    );
    assert_eq!(
        sim.users(Product::Bitbucket)
            .iter()
            .filter(|u| u.name == "bob")
            .count(),
        1
    );
}

#[tokio::test]
async fn read_only_directory_is_a_clear_error() {
    let sim = start().await;
    let key = sim.seed_user(Product::Bitbucket, SimUser::new("ro"));
    sim.seed_group(Product::Bitbucket, "devs");
    sim.set_read_only(Product::Bitbucket, true);
    let bb = target(&sim, BITBUCKET);
    let e = fails(bb.as_ref(), create_user("new")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    let e = fails(bb.as_ref(), add("devs", &key, "ro")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    assert!(
        e.message.contains("'ro'") && e.message.contains("'devs'"),
        "{e}"
    );
    assert!(members(&sim, "devs").is_empty());
}

#[tokio::test]
async fn wrong_password_is_unauthorized_and_names_both_causes() {
    let sim = start().await;
    let e = wrong_token(&sim, BITBUCKET)
        .apply(&create_group("x"))
        .await
        .expect_err("401");
    assert_eq!(e.kind, TargetErrorKind::Unauthorized);
    assert!(e.message.contains("'bitbucket'"), "{e}");
    assert!(e.message.contains("credentials are wrong"), "{e}");
    assert!(e.message.contains("Admin or System admin"), "{e}");
    assert!(
        !e.message.contains("not-the-password"),
        "never shows it: {e}"
    );
    assert!(!sim.groups(Product::Bitbucket).contains(&"x".to_owned()));
}

/// An account that signs in but lacks the ADMIN permission gets the same 401 from Bitbucket's
/// admin resources; the message quotes the product, which tells the two causes apart.
#[tokio::test]
async fn an_account_without_admin_permission_is_told_so() {
    let sim = start().await;
    let mut plain = config(&sim, BITBUCKET);
    plain.username = Some(sim.config().bitbucket_plain_user.clone());
    plain.password = Some(idsync_config::Secret::new(
        sim.config().bitbucket_plain_password.clone(),
    ));
    let e = build(&plain).read_state(&[]).await.expect_err("401");
    assert_eq!(e.kind, TargetErrorKind::Unauthorized);
    assert_eq!(e.status, Some(401));
    let shown = &e.message;
    assert!(shown.contains("You are not permitted"), "{shown}");
    assert!(shown.contains("Admin or System admin"), "{shown}");
    assert!(
        shown.contains(&format!("'{}'", sim.config().bitbucket_plain_user)),
        "{shown}"
    );
}

/// Bitbucket refuses HTTP access tokens on its admin endpoints, so idsync refuses to build a
/// Bitbucket target from one; the simulator, like the product, would answer every call 401.
#[tokio::test]
async fn a_token_is_refused_before_anything_is_sent() {
    let sim = start().await;
    let mut with_token = config(&sim, BITBUCKET);
    with_token.username = None;
    with_token.password = None;
    with_token.token = Some(idsync_config::Secret::new(
        sim.config().bitbucket_token.clone(),
    ));
    let e = idsync_atlassian::build_target(&with_token)
        .err()
        .expect("refused");
    assert!(e.message.contains("HTTP access tokens"), "{e}");
    assert!(sim.bitbucket_requests().is_empty());
}
