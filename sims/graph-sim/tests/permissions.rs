//! Application permissions one at a time, and groups with hidden membership.
//!
//! Each route needs one of the application permissions its Microsoft docs list; a token without
//! any of them gets Graph's 403 `Authorization_RequestDenied` "Insufficient privileges to complete
//! the operation." while the routes it does cover keep working. A token carries the permissions of
//! the moment it was issued. The members of a group with `visibility: HiddenMembership` are only
//! listed to a token that holds `Member.Read.Hidden`.

mod common;

use graph_sim::{DEFAULT_PERMISSIONS, GraphSim, MEMBER_READ_HIDDEN, TenantSpec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{Harness, Reply, ids, start, start_sim};

fn assert_denied(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.body);
    assert_eq!(r.code(), "Authorization_RequestDenied", "{what}");
    assert_eq!(
        r.body["error"]["message"], "Insufficient privileges to complete the operation.",
        "{what}"
    );
    assert!(
        r.body["error"]["innerError"]["request-id"].is_string(),
        "{what}"
    );
}

/// Consents `permissions`, then takes a new token (tokens keep the roles they were issued with).
async fn with_permissions(h: &mut Harness, permissions: &[&str]) {
    h.sim.set_permissions(permissions);
    h.token = h.fetch_token().await;
}

#[tokio::test]
async fn each_permission_withheld_alone_denies_only_the_routes_that_need_it() {
    let mut h = start(&TenantSpec::default()).await;
    let user = h.sim.user_ids()[0].clone();
    let group = h.sim.group_ids()[0].clone();
    let (_, app_id, _) = h.sim.apps()[0].clone();
    let users_routes = vec![
        "/v1.0/users?$select=id".to_owned(),
        "/v1.0/users/delta?$select=id".to_owned(),
        format!("/v1.0/users/{user}"),
    ];
    let groups_routes = vec![
        "/v1.0/groups?$select=id".to_owned(),
        "/v1.0/groups/delta?$select=displayName,members".to_owned(),
        format!("/v1.0/groups/{group}/members"),
        format!("/v1.0/groups/{group}/transitiveMembers"),
    ];
    let apps_routes = vec![
        "/v1.0/servicePrincipals?$select=id,appId".to_owned(),
        format!("/v1.0/servicePrincipals(appId='{app_id}')/appRoleAssignedTo"),
    ];
    let cases: [(&str, &Vec<String>); 3] = [
        ("User.Read.All", &users_routes),
        ("GroupMember.Read.All", &groups_routes),
        ("Application.Read.All", &apps_routes),
    ];
    for (withheld, needing) in cases {
        let kept: Vec<&str> = DEFAULT_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| *p != withheld)
            .collect();
        with_permissions(&mut h, &kept).await;
        for route in needing {
            assert_denied(&h.get(route).await, &format!("{route} without {withheld}"));
        }
        for (other, routes) in cases {
            if other == withheld {
                continue;
            }
            for route in routes {
                let r = h.get(route).await;
                assert_eq!(
                    r.status,
                    StatusCode::OK,
                    "{route} needs {other}, not {withheld}: {}",
                    r.body
                );
            }
        }
    }
}

#[tokio::test]
async fn higher_permissions_stand_in_for_the_least_privileged_ones() {
    let mut h = start(&TenantSpec::default()).await;
    // Group.Read.All instead of GroupMember.Read.All (the brief's "or"), and Directory.Read.All
    // for everything else.
    with_permissions(&mut h, &["Group.Read.All"]).await;
    assert_eq!(h.get("/v1.0/groups/delta").await.status, StatusCode::OK);
    assert_denied(
        &h.get("/v1.0/users/delta").await,
        "users with Group.Read.All",
    );
    with_permissions(&mut h, &["Directory.Read.All"]).await;
    for route in [
        "/v1.0/users/delta",
        "/v1.0/groups/delta",
        "/v1.0/servicePrincipals",
    ] {
        assert_eq!(h.get(route).await.status, StatusCode::OK, "{route}");
    }
}

#[tokio::test]
async fn a_token_keeps_the_permissions_it_was_issued_with() {
    let mut h = start(&TenantSpec::default()).await;
    h.sim.withhold_permission("user.read.all");
    assert!(
        !h.sim.permissions().iter().any(|p| p == "User.Read.All"),
        "{:?}",
        h.sim.permissions()
    );
    // Issued before the change: still holds User.Read.All.
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::OK);
    h.token = h.fetch_token().await;
    assert_denied(&h.get("/v1.0/users").await, "new token");
    h.sim.grant_permission("User.Read.All");
    assert_denied(
        &h.get("/v1.0/users").await,
        "consent granted after the token",
    );
    h.token = h.fetch_token().await;
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn batch_items_are_judged_on_their_own() {
    let mut h = start(&TenantSpec::default()).await;
    with_permissions(&mut h, &["User.Read.All"]).await;
    let resp = h
        .http
        .post(format!("{}/v1.0/$batch", h.sim.base_url))
        .bearer_auth(&h.token)
        .json(&json!({"requests": [
            {"id": "u", "method": "GET", "url": "/users?$select=id"},
            {"id": "g", "method": "GET", "url": "/groups?$select=id"},
        ]}))
        .send()
        .await
        .expect("sent");
    let r = common::reply(resp).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let status = |id: &str| {
        r.body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| (x["status"].clone(), x["body"]["error"]["code"].clone()))
            .expect("answered")
    };
    assert_eq!(status("u").0, 200);
    assert_eq!(
        status("g"),
        (json!(403), json!("Authorization_RequestDenied"))
    );
}

#[tokio::test]
async fn permissions_over_the_control_api() {
    let mut h = start(&TenantSpec::default()).await;
    let r = h.control(Method::GET, "/_sim/auth", None).await;
    let mut listed: Vec<&str> = r.body["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort_unstable();
    let mut defaults = DEFAULT_PERMISSIONS.to_vec();
    defaults.sort_unstable();
    assert_eq!(listed, defaults);
    let r = h
        .control(
            Method::PUT,
            "/_sim/auth",
            Some(json!({"permissions": ["Application.Read.All"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    h.token = h.fetch_token().await;
    assert_denied(&h.get("/v1.0/groups").await, "groups");
    assert_eq!(
        h.get("/v1.0/servicePrincipals").await.status,
        StatusCode::OK
    );
}

/// A tenant with one public group and one Microsoft 365 group with hidden membership, each with
/// two users; the hidden group is also nested in the public one.
struct Hidden {
    h: Harness,
    public: String,
    hidden: String,
    public_members: Vec<String>,
    hidden_members: Vec<String>,
}

async fn hidden_tenant() -> Hidden {
    let sim = GraphSim::new(&TenantSpec {
        nesting_depth: 0,
        ..TenantSpec::default()
    });
    let users = sim.user_ids();
    let public = sim.create_group("Public team");
    let hidden = sim
        .create_group_with(json!({
            "displayName": "Hidden class", "mailNickname": "hiddenclass",
            "groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false,
            "visibility": "HiddenMembership"
        }))
        .expect("created");
    let public_members = vec![users[0].clone(), users[1].clone()];
    let hidden_members = vec![users[2].clone(), users[3].clone()];
    for u in &public_members {
        sim.add_member(&public, u).expect("added");
    }
    for u in &hidden_members {
        sim.add_member(&hidden, u).expect("added");
    }
    sim.add_member(&public, &hidden).expect("nested");
    Hidden {
        h: start_sim(sim).await,
        public,
        hidden,
        public_members,
        hidden_members,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v
}

/// The group entries of a groups-delta round, merged per group: (group present, member refs).
fn members_in(items: &[Value], group: &str) -> (bool, Vec<String>, bool) {
    let mut present = false;
    let mut members = Vec::new();
    let mut has_key = false;
    for item in items.iter().filter(|i| i["id"] == group) {
        present = true;
        if let Some(list) = item["members@delta"].as_array() {
            has_key = true;
            members.extend(ids(list));
        }
    }
    (present, sorted(members), has_key)
}

#[tokio::test]
async fn hidden_members_are_listed_with_member_read_hidden() {
    let Hidden {
        h,
        hidden,
        hidden_members,
        ..
    } = hidden_tenant().await;
    let (items, _) = h
        .get_all(&format!("/v1.0/groups/{hidden}/members?$select=id"))
        .await;
    assert_eq!(sorted(ids(&items)), sorted(hidden_members.clone()));
    let (items, _) = h
        .delta_round(
            "/v1.0/groups/delta?$select=displayName,visibility,members",
            &[],
        )
        .await;
    let (present, members, _) = members_in(&items, &hidden);
    assert!(present);
    assert_eq!(members, sorted(hidden_members));
    let entry = items
        .iter()
        .find(|i| i["id"] == hidden.as_str())
        .expect("listed");
    assert_eq!(entry["visibility"], "HiddenMembership");
}

#[tokio::test]
async fn without_member_read_hidden_hidden_members_are_left_out_everywhere() {
    let Hidden {
        mut h,
        public,
        hidden,
        public_members,
        hidden_members,
    } = hidden_tenant().await;
    h.sim.withhold_permission(MEMBER_READ_HIDDEN);
    h.token = h.fetch_token().await;

    // The group itself is readable; its member list is empty, not a 403.
    let r = h.get(&format!("/v1.0/groups/{hidden}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["visibility"], "HiddenMembership");
    let r = h.get(&format!("/v1.0/groups/{hidden}/members")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.values().is_empty(), "{}", r.body);
    assert!(
        h.get(&format!("/v1.0/groups/{hidden}/transitiveMembers"))
            .await
            .values()
            .is_empty()
    );
    // Through nesting: the hidden group is a member of the public one, its members are not.
    let (items, _) = h
        .get_all(&format!(
            "/v1.0/groups/{public}/transitiveMembers?$select=id"
        ))
        .await;
    let mut expected = public_members.clone();
    expected.push(hidden.clone());
    assert_eq!(sorted(ids(&items)), sorted(expected));
    // memberOf leaves the hidden group out.
    let (groups, _) = h
        .get_all(&format!("/v1.0/users/{}/memberOf", hidden_members[0]))
        .await;
    assert!(!ids(&groups).contains(&hidden), "{groups:?}");

    // Delta: the group comes with its properties and no members@delta at all; other groups
    // are untouched.
    let (items, link) = h
        .delta_round(
            "/v1.0/groups/delta?$select=displayName,visibility,members",
            &[],
        )
        .await;
    let (present, members, has_key) = members_in(&items, &hidden);
    assert!(present && members.is_empty() && !has_key, "{items:?}");
    let (_, members, _) = members_in(&items, &public);
    let mut expected = public_members.clone();
    expected.push(hidden.clone());
    assert_eq!(members, sorted(expected));

    // Later rounds: a membership change of the hidden group is not reported; one of the
    // public group is.
    let users = h.sim.user_ids();
    h.sim.add_member(&hidden, &users[4]).expect("added");
    h.sim
        .remove_member(&hidden, &hidden_members[0])
        .expect("removed");
    h.sim.add_member(&public, &users[5]).expect("added");
    let (items, _) = h.delta_round(&link, &[]).await;
    assert!(
        !items.iter().any(|i| i["id"] == hidden.as_str()),
        "{items:?}"
    );
    let (_, members, _) = members_in(&items, &public);
    assert_eq!(members, vec![users[5].clone()]);

    // Granted again, a new token sees them.
    h.sim.grant_permission(MEMBER_READ_HIDDEN);
    h.token = h.fetch_token().await;
    let r = h.get(&format!("/v1.0/groups/{hidden}/members")).await;
    assert_eq!(r.values().len(), 2);
}
