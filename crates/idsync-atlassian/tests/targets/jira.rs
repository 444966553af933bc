//! `jira-dc` against the simulated Jira DC REST v2.

use atlassian_sim::{Product, RateLimit, RunningAtlassianSim, SimUser};
use idsync_config::Secret;
use idsync_model::{Applied, LeadKind, Operation, Target, TargetErrorKind, TargetKind};

use crate::common::*;

const JIRA: TargetKind = TargetKind::JiraDc;

/// Checks what read_state and read_user see of ada (as `ada.l`, with her cost center and in
/// `devs`), and that read_user finds nobody who is not there.
async fn assert_ada_read_back(t: &dyn Target, key: &str) {
    let state = t
        .read_state(&["costCenter".to_owned()])
        .await
        .expect("read state");
    let read = state
        .users
        .iter()
        .find(|u| u.key == key)
        .expect("ada in state");
    assert_eq!(read.username, "ada.l");
    assert_eq!(read.email.as_deref(), Some("ada@new.example"));
    assert_eq!(read.attributes["costCenter"], "4711");
    assert!(state.memberships["devs"].contains(key));
    let (one, groups) = t
        .read_user("ada.l", &["costCenter".to_owned()])
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!(one.key, key);
    assert!(groups.contains("devs"));
    assert_eq!(t.read_user("nobody", &[]).await.expect("read"), None);
}

/// Makes `ada.l` lead a project and a component, checks that read_state lists both and that
/// her deactivation is refused, then hands both over to `boss`.
async fn hand_over_the_leads_of_ada(t: &dyn Target, sim: &RunningAtlassianSim, key: &str) {
    sim.add_project("PRJ", "Project", "ada.l");
    let component = sim.add_component("PRJ", "Backend", Some("ada.l"));
    let state = t.read_state(&[]).await.expect("read state");
    assert!(
        state
            .leads
            .iter()
            .any(|l| l.kind == LeadKind::Project && l.id == "PRJ" && l.lead == "ada.l")
    );
    assert!(state.leads.iter().any(|l| l.kind == LeadKind::Component
        && l.id == component.to_string()
        && l.lead == "ada.l"));
    let refused = fails(t, deactivate(key, "ada.l")).await;
    assert_eq!(refused.kind, TargetErrorKind::Rejected, "{refused}");
    for (kind, id) in [
        (LeadKind::Project, "PRJ".to_owned()),
        (LeadKind::Component, component.to_string()),
    ] {
        ok(
            t,
            Operation::HandOverLead {
                kind,
                id,
                user: "ada.l".into(),
                new_lead: "boss".into(),
            },
        )
        .await;
    }
    assert_eq!(sim.project_lead("PRJ"), "boss");
    assert_eq!(sim.component_lead(component).as_deref(), Some("boss"));
}

#[tokio::test]
async fn full_lifecycle() {
    let sim = start().await;
    let jira = target(&sim, JIRA);
    let t = jira.as_ref();
    sim.seed_user(Product::Jira, SimUser::new("boss"));

    // Groups.
    assert_eq!(ok(t, create_group("devs")).await, Applied::Done);
    assert_eq!(ok(t, create_group("devs")).await, Applied::AlreadyDone);
    assert!(sim.groups(Product::Jira).contains(&"devs".to_owned()));

    // Create with a custom attribute (a user property).
    let key = key_of(ok(t, create_user_with("ada", &[("department", "R&D")])).await);
    let ada = sim.user(Product::Jira, "ada").expect("created in Jira");
    assert_eq!(ada.key, key);
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.display_name, "User ada");
    assert!(ada.active);
    assert_eq!(sim.user_properties("ada")["department"], "R&D");

    // Update and rename; the key stays.
    ok(
        t,
        update_user(&key, "ada", "ada@new.example", "Ada Lovelace"),
    )
    .await;
    ok(t, rename(&key, "ada", "ada.l")).await;
    assert!(sim.user(Product::Jira, "ada").is_none());
    let ada = sim.user(Product::Jira, "ada.l").expect("renamed");
    assert_eq!(
        (
            ada.key.as_str(),
            ada.email.as_str(),
            ada.display_name.as_str()
        ),
        (key.as_str(), "ada@new.example", "Ada Lovelace")
    );

    // Attributes: change, remove, remove again.
    ok(t, set_attribute(&key, "ada.l", "department", Some("Ops"))).await;
    assert_eq!(sim.user_properties("ada.l")["department"], "Ops");
    ok(t, set_attribute(&key, "ada.l", "department", None)).await;
    assert!(!sim.user_properties("ada.l").contains_key("department"));
    assert_eq!(
        ok(t, set_attribute(&key, "ada.l", "department", None)).await,
        Applied::AlreadyDone
    );
    ok(t, set_attribute(&key, "ada.l", "costCenter", Some("4711"))).await;

    // Memberships.
    assert_eq!(ok(t, add("devs", &key, "ada.l")).await, Applied::Done);
    assert_eq!(
        ok(t, add("devs", &key, "ada.l")).await,
        Applied::AlreadyDone
    );
    assert_eq!(sim.members(Product::Jira, "devs"), vec!["ada.l".to_owned()]);

    // What read_state and read_user see.
    assert_ada_read_back(t, &key).await;

    // Leads: Jira refuses to deactivate a project lead, so the lead is handed over first.
    hand_over_the_leads_of_ada(t, &sim, &key).await;

    // Deactivate and reactivate.
    ok(t, deactivate(&key, "ada.l")).await;
    assert!(
        !sim.user(Product::Jira, "ada.l")
            .expect("still there")
            .active
    );
    let state = t.read_state(&[]).await.expect("read state");
    let read = state.users.iter().find(|u| u.key == key).expect("listed");
    assert!(!read.active, "inactive users are listed as inactive");
    assert!(
        state.memberships["devs"].contains(&key),
        "inactive members are listed"
    );
    ok(t, reactivate(&key, "ada.l")).await;
    assert!(
        sim.user(Product::Jira, "ada.l")
            .expect("still there")
            .active
    );

    // Remove the membership, delete the user and the group, each twice.
    assert_eq!(ok(t, remove("devs", &key, "ada.l")).await, Applied::Done);
    assert_eq!(
        ok(t, remove("devs", &key, "ada.l")).await,
        Applied::AlreadyDone
    );
    assert!(sim.members(Product::Jira, "devs").is_empty());
    delete_user_and_group(t, &sim, Product::Jira, &key, "ada.l", "devs").await;
}

#[tokio::test]
async fn pages_through_users_groups_and_members() {
    let sim = start().await;
    // /user/list pages hold 2000 users, /group/member pages 50 (the simulator's cap, like
    // Jira's): several pages of each.
    for i in 0..3100 {
        sim.seed_user(Product::Jira, SimUser::new(&format!("user{i:05}")));
    }
    for i in 0..180 {
        assert!(sim.seed_membership(Product::Jira, "big", &format!("user{i:05}")));
    }
    for g in 0..120 {
        sim.seed_group(Product::Jira, &format!("team-{g:03}"));
    }
    let jira = target(&sim, JIRA);
    let state = jira.read_state(&[]).await.expect("read state");
    assert_eq!(state.users.len(), 3100);
    assert_eq!(state.groups.len(), 121);
    assert_eq!(state.memberships["big"].len(), 180);
    // Exactly the pages needed: 3100 users in 2 pages; "big" in 4 pages of 50, and one
    // page for each of the 120 empty groups.
    let t = jira.as_ref();
    assert_eq!(count(t, "GET /rest/api/2/user/list"), 2);
    assert_eq!(count(t, "GET /rest/api/2/group/member"), 4 + 120);
    assert_eq!(count(t, "GET /rest/api/2/groups/picker"), 1);
    assert_eq!(count(t, "GET /rest/api/2/project"), 1);
    assert_eq!(t.request_counts().values().sum::<u64>(), 2 + 124 + 1 + 1);

    // Read again: the same state, member for member.
    let again = jira.read_state(&[]).await.expect("read state");
    assert_eq!(again.memberships, state.memberships);
    assert_eq!(again.users, state.users);
}

#[tokio::test]
async fn one_failing_member_read_fails_the_whole_read() {
    let sim = start().await;
    for i in 0..120 {
        sim.seed_user(Product::Jira, SimUser::new(&format!("user{i:03}")));
        sim.seed_membership(
            Product::Jira,
            &format!("team-{:02}", i % 30),
            &format!("user{i:03}"),
        );
        sim.seed_membership(Product::Jira, "big", &format!("user{i:03}"));
    }
    // A later page of one group refused for good, while other groups are read at once.
    fail_for_good(
        &sim,
        "groupname=big&includeInactiveUsers=true&startAt=100",
        403,
    );
    let jira = target(&sim, JIRA);
    let e = jira.read_state(&[]).await.expect_err("no partial state");
    assert_eq!(e.kind, TargetErrorKind::Forbidden, "{e}");
    assert!(e.message.contains("'big'"), "{e}");

    // A server error beyond every retry on one small group's only page.
    sim.kit().clear_faults();
    fail_for_good(&sim, "groupname=team-17&", 503);
    let e = jira.read_state(&[]).await.expect_err("no partial state");
    assert_eq!(e.kind, TargetErrorKind::Unavailable, "{e}");
    sim.kit().clear_faults();
    let state = jira.read_state(&[]).await.expect("read state");
    assert_eq!(state.memberships["big"].len(), 120);
}

#[tokio::test]
async fn falls_back_to_search_and_members_without_user_list() {
    let sim = start().await;
    // A Jira older than 10.3: no /user/list.
    missing_resource(&sim, "/rest/api/2/user/list");
    for i in 0..250 {
        sim.seed_user(Product::Jira, SimUser::new(&format!("user{i:04}")));
    }
    for i in 0..250 {
        sim.seed_membership(Product::Jira, "jira-users", &format!("user{i:04}"));
    }
    sim.seed_user(Product::Jira, SimUser::new("aaa-no-groups"));
    let jira = target(&sim, JIRA);
    let state = jira.read_state(&[]).await.expect("read state");
    // Search shows the first 100 users (including the one in no group); the group members
    // add everyone else who holds a group.
    assert_eq!(state.users.len(), 251);
    assert!(state.users.iter().any(|u| u.username == "aaa-no-groups"));
    assert!(requests(jira.as_ref(), "rest/api/2/user/search") >= 1);
}

#[tokio::test]
async fn nested_members_are_reported_as_jira_lists_them() {
    let sim = start().await;
    let key = sim.seed_user(Product::Jira, SimUser::new("nina"));
    sim.seed_membership(Product::Jira, "child", "nina");
    sim.nest_group(Product::Jira, "parent", "child");
    let jira = target(&sim, JIRA);
    let state = jira.read_state(&[]).await.expect("read state");
    assert!(state.memberships["child"].contains(&key));
    assert!(
        state.memberships["parent"].contains(&key),
        "Jira's member list includes nested subgroup members; the target reports them"
    );
}

#[tokio::test]
async fn recovers_from_429_with_retry_after() {
    let sim = start().await;
    throttle_once(&sim, "/jira/rest/api/2/user", Some("POST"));
    let jira = target(&sim, JIRA);
    let started = std::time::Instant::now();
    let key = key_of(ok(jira.as_ref(), create_user("rita")).await);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(sim.user(Product::Jira, "rita").expect("created").key, key);
    assert_eq!(requests(jira.as_ref(), "POST /rest/api/2/user"), 2);

    // The token bucket: 3 tokens, 5 back per second. The target paces itself on the
    // X-RateLimit headers and retries the 429s it still meets.
    sim.set_rate_limit(
        Product::Jira,
        Some(RateLimit {
            capacity: 3,
            fill_rate: 5,
            interval_seconds: 1,
        }),
    );
    for i in 0..10 {
        ok(jira.as_ref(), create_group(&format!("g{i}"))).await;
    }
    assert_eq!(sim.groups(Product::Jira).len(), 10);
}

#[tokio::test]
async fn licence_limit_is_a_clear_error() {
    let sim = start().await;
    sim.seed_user(Product::Jira, SimUser::new("one"));
    sim.set_licence_seats(Product::Jira, Some(1));
    let jira = target(&sim, JIRA);
    let e = fails(jira.as_ref(), create_user("two")).await;
    assert_eq!(e.kind, TargetErrorKind::LicenceLimit, "{e}");
    assert!(
        e.message.contains("'two'") && e.message.contains("seat"),
        "{e}"
    );
    assert!(sim.user(Product::Jira, "two").is_none());
}

#[tokio::test]
async fn existing_user_is_adopted() {
    let sim = start().await;
    let seeded = sim.seed_user(Product::Jira, SimUser::new("bob"));
    sim.seed_group(Product::Jira, "devs");
    sim.seed_membership(Product::Jira, "devs", "bob");
    let jira = target(&sim, JIRA);
    assert_eq!(
        ok(jira.as_ref(), create_user("bob")).await,
        Applied::Adopted(seeded)
    );
    assert_eq!(sim.users(Product::Jira).len(), 1);
}

#[tokio::test]
async fn read_only_directory_is_a_clear_error() {
    let sim = start().await;
    let key = sim.seed_user(Product::Jira, SimUser::new("ro"));
    sim.seed_group(Product::Jira, "devs");
    sim.set_read_only(Product::Jira, true);
    let jira = target(&sim, JIRA);
    let e = fails(jira.as_ref(), create_user("new")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    assert!(e.message.contains("'new'"), "{e}");
    let e = fails(jira.as_ref(), add("devs", &key, "ro")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    assert!(sim.members(Product::Jira, "devs").is_empty());
    assert!(sim.user(Product::Jira, "new").is_none());
}

#[tokio::test]
async fn wrong_token_is_unauthorized_and_basic_auth_works() {
    let sim = start().await;
    let bad = wrong_token(&sim, JIRA);
    let e = bad.read_state(&[]).await.expect_err("401");
    assert_eq!(e.kind, TargetErrorKind::Unauthorized);
    assert!(
        e.message.contains("'jira'") && e.message.contains("token"),
        "{e}"
    );
    assert!(
        !e.message.contains("not-the-token"),
        "never shows the token"
    );
    assert_eq!(e.status, Some(401));

    let mut basic = config(&sim, JIRA);
    basic.token = None;
    basic.username = Some(sim.config().admin_user.clone());
    basic.password = Some(Secret::new(sim.config().admin_password.clone()));
    let jira = build(&basic);
    ok(jira.as_ref(), create_group("via-basic")).await;
    assert!(sim.groups(Product::Jira).contains(&"via-basic".to_owned()));
}

#[tokio::test]
async fn keeps_to_max_requests_per_second() {
    let sim = start().await;
    let mut config = config(&sim, JIRA);
    config.max_requests_per_second = Some(20.0);
    let jira = build(&config);
    let started = std::time::Instant::now();
    for i in 0..11 {
        ok(jira.as_ref(), create_group(&format!("paced-{i}"))).await;
    }
    // 11 requests at 20 per second: at least 10 gaps of 50 ms.
    assert!(started.elapsed() >= std::time::Duration::from_millis(480));
    assert_eq!(sim.groups(Product::Jira).len(), 11);
}

/// Jira and Bitbucket report their versions; every resource idsync uses exists from Jira 9
/// and Bitbucket 8 on, so nothing is withheld.
#[tokio::test]
async fn jira_and_bitbucket_report_their_versions() {
    let sim = start().await;
    sim.set_version(Product::Jira, "9.12.4");
    let jira = target(&sim, TargetKind::JiraDc);
    assert_eq!(
        jira.discover().await.expect("discovered").to_string(),
        "Jira 9.12.4"
    );
    assert!(jira.capabilities().unavailable.is_empty());
    sim.set_version(Product::Bitbucket, "8.19.2");
    let bitbucket = target(&sim, TargetKind::BitbucketDc);
    assert_eq!(
        bitbucket.discover().await.expect("discovered").to_string(),
        "Bitbucket 8.19.2"
    );
}
