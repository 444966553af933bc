//! `atlassian-cloud` against the simulated Atlassian SCIM directory.

use atlassian_sim::{Product, SimUser};
use idsync_config::Secret;
use idsync_model::{Applied, TargetErrorKind, TargetKind};
use serde_json::json;

use crate::common::*;

const CLOUD: TargetKind = TargetKind::AtlassianCloud;
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test]
async fn full_lifecycle() {
    let sim = start().await;
    let cloud = target(&sim, CLOUD);
    let t = cloud.as_ref();

    assert_eq!(ok(t, create_group("jira-users")).await, Applied::Done);
    assert_eq!(
        ok(t, create_group("jira-users")).await,
        Applied::AlreadyDone
    );
    assert_eq!(sim.groups(Product::Scim), vec!["jira-users".to_owned()]);

    // Custom attributes: enterprise extension and core attributes.
    let key = key_of(
        ok(
            t,
            create_user_with(
                "ada@example.com",
                &[("department", "R&D"), ("title", "Engineer")],
            ),
        )
        .await,
    );
    let ada = sim.user(Product::Scim, "ada@example.com").expect("created");
    assert_eq!(ada.key, key);
    assert_eq!(ada.external_id.as_deref(), Some("entra-ada@example.com"));
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.attributes[ENTERPRISE]["department"], "R&D");
    assert_eq!(ada.attributes["title"], "Engineer");

    ok(
        t,
        update_user(&key, "ada@example.com", "ada@new.example", "Ada Lovelace"),
    )
    .await;
    ok(t, rename(&key, "ada@example.com", "ada@new.example")).await;
    let ada = sim.user(Product::Scim, "ada@new.example").expect("renamed");
    assert_eq!(
        (
            ada.key.as_str(),
            ada.email.as_str(),
            ada.display_name.as_str()
        ),
        (key.as_str(), "ada@new.example", "Ada Lovelace")
    );
    let user = "ada@new.example";

    ok(
        t,
        set_attribute(&key, user, "organization", Some("Contoso")),
    )
    .await;
    ok(t, set_attribute(&key, user, "department", None)).await;
    let ada = sim.user(Product::Scim, user).expect("there");
    assert_eq!(ada.attributes[ENTERPRISE]["organization"], "Contoso");
    assert!(ada.attributes[ENTERPRISE].get("department").is_none());
    // Enterprise attributes Atlassian does not document are refused before any request.
    for name in ["shoeSize", "costCenter", "employeeNumber", "division"] {
        let e = fails(t, set_attribute(&key, user, name, Some("44"))).await;
        assert_eq!(e.kind, TargetErrorKind::Unsupported, "{name}: {e}");
    }

    ok(t, add("jira-users", &key, user)).await;
    ok(t, add("jira-users", &key, user)).await;
    assert_eq!(
        sim.members(Product::Scim, "jira-users"),
        vec![user.to_owned()]
    );

    let attributes = ["organization".to_owned(), "title".to_owned()];
    let state = t.read_state(&attributes).await.expect("read state");
    let read = state.users.iter().find(|u| u.key == key).expect("listed");
    assert_eq!(read.username, user);
    assert_eq!(read.email.as_deref(), Some("ada@new.example"));
    assert_eq!(read.external_id.as_deref(), Some("entra-ada@example.com"));
    assert_eq!(read.attributes["organization"], "Contoso");
    assert_eq!(read.attributes["title"], "Engineer");
    assert!(state.memberships["jira-users"].contains(&key));
    let (one, groups) = t
        .read_user(user, &attributes)
        .await
        .expect("read user")
        .expect("exists");
    assert_eq!(one.key, key);
    assert!(groups.contains("jira-users"));

    ok(t, deactivate(&key, user)).await;
    assert!(!sim.user(Product::Scim, user).expect("there").active);
    ok(t, reactivate(&key, user)).await;
    assert!(sim.user(Product::Scim, user).expect("there").active);

    ok(t, remove("jira-users", &key, user)).await;
    assert!(sim.members(Product::Scim, "jira-users").is_empty());

    delete_user_and_group(t, &sim, Product::Scim, &key, user, "jira-users").await;
}

#[tokio::test]
async fn pages_through_users_and_groups() {
    let sim = start().await;
    // Pages of 100, 1-based: more than three of users and of groups.
    for i in 0..450 {
        let name = format!("user{i:04}@example.com");
        sim.seed_user(Product::Scim, SimUser::new(&name));
        sim.seed_membership(Product::Scim, "everyone", &name);
    }
    for g in 0..350 {
        sim.seed_group(Product::Scim, &format!("team-{g:03}"));
    }
    let cloud = target(&sim, CLOUD);
    let state = cloud.read_state(&[]).await.expect("read state");
    assert_eq!(state.users.len(), 450);
    assert_eq!(state.groups.len(), 351);
    assert_eq!(state.memberships["everyone"].len(), 450);
    assert!(requests(cloud.as_ref(), "GET /Users") >= 5);
    assert!(requests(cloud.as_ref(), "GET /Groups") >= 4);
}

#[tokio::test]
async fn recovers_from_429_with_retry_after() {
    let sim = start().await;
    throttle_once(&sim, "/Users", Some("POST"));
    let cloud = target(&sim, CLOUD);
    let key = key_of(ok(cloud.as_ref(), create_user("rita")).await);
    assert_eq!(sim.user(Product::Scim, "rita").expect("created").key, key);
    assert_eq!(requests(cloud.as_ref(), "POST /Users"), 2);
}

#[tokio::test]
async fn existing_user_and_group_are_adopted() {
    let sim = start().await;
    let seeded = sim.seed_user(
        Product::Scim,
        SimUser {
            attributes: [("title".to_owned(), json!("Boss"))].into(),
            ..SimUser::new("bob@example.com")
        },
    );
    sim.seed_group(Product::Scim, "admins");
    let cloud = target(&sim, CLOUD);
    assert_eq!(
        ok(cloud.as_ref(), create_user("BOB@example.com")).await,
        Applied::Adopted(seeded)
    );
    assert_eq!(
        ok(cloud.as_ref(), create_group("admins")).await,
        Applied::AlreadyDone
    );
    assert_eq!(sim.users(Product::Scim).len(), 1);
}

#[tokio::test]
async fn read_only_directory_is_a_clear_error() {
    let sim = start().await;
    let key = sim.seed_user(Product::Scim, SimUser::new("ro@example.com"));
    sim.seed_group(Product::Scim, "grp");
    sim.set_read_only(Product::Scim, true);
    let cloud = target(&sim, CLOUD);
    let e = fails(cloud.as_ref(), create_user("new@example.com")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    let e = fails(cloud.as_ref(), add("grp", &key, "ro@example.com")).await;
    assert_eq!(e.kind, TargetErrorKind::ReadOnlyDirectory, "{e}");
    assert!(sim.members(Product::Scim, "grp").is_empty());
}

#[tokio::test]
async fn wrong_key_is_unauthorized_and_basic_auth_is_refused() {
    let sim = start().await;
    let e = wrong_token(&sim, CLOUD)
        .read_state(&[])
        .await
        .expect_err("401");
    assert_eq!(e.kind, TargetErrorKind::Unauthorized);
    assert!(e.message.contains("directory API key"), "{e}");

    let mut basic = config(&sim, CLOUD);
    basic.token = None;
    basic.username = Some("admin".into());
    basic.password = Some(Secret::new("admin"));
    let e = idsync_atlassian::build_target(&basic)
        .err()
        .expect("refused");
    assert!(e.message.contains("token"), "{e}");
}

/// An attribute Atlassian Cloud does not keep never fails the creation of the account: it is
/// created with the attributes it can hold (the config check refuses such names up front).
#[tokio::test]
async fn an_unknown_attribute_never_fails_a_creation() {
    let sim = start().await;
    let cloud = target(&sim, CLOUD);
    let t = cloud.as_ref();
    let key = key_of(
        ok(
            t,
            create_user_with(
                "bob@example.com",
                &[
                    ("cost_center", "4711"),
                    ("costCenter", "4711"),
                    ("department", "R&D"),
                ],
            ),
        )
        .await,
    );
    let bob = sim.user(Product::Scim, "bob@example.com").expect("created");
    assert_eq!(bob.key, key);
    assert_eq!(bob.attributes[ENTERPRISE]["department"], "R&D");
    assert!(!bob.attributes.contains_key("cost_center"));
    assert!(bob.attributes[ENTERPRISE].get("costCenter").is_none());
}

/// Atlassian requires a primary e-mail on create: a creation without one is refused by idsync
/// itself, naming the user, and no request is sent (the planner plans none; this is the guard).
#[tokio::test]
async fn a_creation_without_email_is_refused_before_any_request() {
    let sim = start().await;
    let cloud = target(&sim, CLOUD);
    let mut op = create_user("noemail@example.com");
    if let idsync_model::Operation::CreateUser { email, .. } = &mut op {
        *email = None;
    }
    let e = fails(cloud.as_ref(), op).await;
    assert_eq!(e.kind, TargetErrorKind::Rejected, "{e}");
    assert!(e.message.contains("noemail@example.com"), "{e}");
    assert!(e.message.contains("e-mail"), "{e}");
    assert_eq!(requests(cloud.as_ref(), "POST /Users"), 0);
    assert!(sim.users(Product::Scim).is_empty());
}

/// Removing one member leaves the others: the value-list form the simulator (like Microsoft's
/// connector to Atlassian Cloud) uses; the filter form would be refused with a 400.
#[tokio::test]
async fn removing_a_member_leaves_the_others() {
    let sim = start().await;
    let a = sim.seed_user(Product::Scim, SimUser::new("a@example.com"));
    let b = sim.seed_user(Product::Scim, SimUser::new("b@example.com"));
    let cloud = target(&sim, CLOUD);
    let t = cloud.as_ref();
    ok(t, create_group("team")).await;
    ok(t, add("team", &a, "a@example.com")).await;
    ok(t, add("team", &b, "b@example.com")).await;
    assert_eq!(
        ok(t, remove("team", &a, "a@example.com")).await,
        Applied::Done
    );
    assert_eq!(
        sim.members(Product::Scim, "team"),
        vec!["b@example.com".to_owned()]
    );
    // Again: the member is gone already, and the directory takes the request all the same.
    ok(t, remove("team", &a, "a@example.com")).await;
    assert_eq!(
        sim.members(Product::Scim, "team"),
        vec!["b@example.com".to_owned()]
    );
}
