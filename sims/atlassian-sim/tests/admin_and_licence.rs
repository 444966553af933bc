//! What `idsync check` asks each product: who the credentials belong to, whether they carry
//! administrator rights, and how many licence seats are left. An account that is no
//! administrator is refused on the resources that need one, as each product refuses it.

mod common;

use atlassian_sim::{Product, SimUser};
use common::{bitbucket, client, confluence, jira, send, start};
use serde_json::json;

#[tokio::test]
async fn jira_says_who_signed_in_and_shows_seats_to_administrators_only() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    let plain = |b: reqwest::RequestBuilder| b.bearer_auth(&sim.config().jira_plain_token);

    let (status, me) = send(jira(&sim, http.get(format!("{api}/myself")))).await;
    assert_eq!((status, me["name"].clone()), (200, json!("admin")), "{me}");
    let (status, me) = send(plain(http.get(format!("{api}/myself")))).await;
    assert_eq!(
        (status, me["name"].clone()),
        (200, json!("developer")),
        "{me}"
    );

    // Unlimited by default.
    let (status, roles) = send(jira(&sim, http.get(format!("{api}/applicationrole")))).await;
    assert_eq!(status, 200, "{roles}");
    assert_eq!(roles[0]["key"], "jira-software");
    assert_eq!(roles[0]["hasUnlimitedSeats"], true);

    // Seats follow the licence knob; active users take them.
    sim.set_licence_seats(Product::Jira, Some(10));
    sim.seed_user(Product::Jira, SimUser::new("ada"));
    sim.seed_user(Product::Jira, SimUser::new("bob"));
    sim.seed_user(
        Product::Jira,
        SimUser {
            active: false,
            ..SimUser::new("gone")
        },
    );
    let (_, roles) = send(jira(&sim, http.get(format!("{api}/applicationrole")))).await;
    let role = &roles[0];
    assert_eq!(
        (
            role["numberOfSeats"].clone(),
            role["userCount"].clone(),
            role["remainingSeats"].clone(),
            role["hasUnlimitedSeats"].clone()
        ),
        (json!(10), json!(2), json!(8), json!(false)),
        "{role}"
    );
    // A seeded account is shown as itself.
    sim.seed_user(Product::Jira, SimUser::new("developer"));
    let (_, me) = send(plain(http.get(format!("{api}/myself")))).await;
    assert_eq!(me["emailAddress"], "developer@example.com");
    assert!(
        me["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("JIRAUSER"))
    );

    // Not an administrator: refused where Jira wants one, served elsewhere.
    let (status, body) = send(plain(http.get(format!("{api}/applicationrole")))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["errorMessages"][0].is_string(), "{body}");
    let (status, _) = send(plain(
        http.get(format!("{api}/group/member?groupname=jira-users")),
    ))
    .await;
    assert_eq!(status, 403);
    let (status, _) =
        send(plain(http.post(format!("{api}/group"))).json(&json!({"name": "x"}))).await;
    assert_eq!(status, 403);
    assert!(!sim.groups(Product::Jira).contains(&"x".to_owned()));
    let (status, _) = send(plain(http.get(format!("{api}/user?username=ada")))).await;
    assert_eq!(status, 200);
    let (status, _) = send(plain(http.get(format!("{api}/serverInfo")))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn confluence_lists_group_members_to_administrators_only() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    let plain = |b: reqwest::RequestBuilder| b.bearer_auth(&sim.config().confluence_plain_token);
    sim.seed_user(Product::Confluence, SimUser::new("ada"));
    sim.seed_membership(Product::Confluence, "confluence-users", "ada");

    let (status, me) = send(confluence(&sim, http.get(format!("{api}/user/current")))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["type"].clone(), me["username"].clone()),
        (json!("known"), json!("admin"))
    );
    assert_eq!(me["userKey"].as_str().map(str::len), Some(32), "{me}");
    let (status, me) = send(plain(http.get(format!("{api}/user/current")))).await;
    assert_eq!((status, me["username"].clone()), (200, json!("developer")));

    let members = format!("{api}/group/confluence-users/member?limit=1");
    let (status, page) = send(confluence(&sim, http.get(&members))).await;
    assert_eq!(
        (status, page["results"][0]["username"].clone()),
        (200, json!("ada"))
    );
    // Any user may list groups, not their members.
    let (status, page) = send(plain(http.get(format!("{api}/group?limit=1")))).await;
    assert_eq!(
        (status, page["results"][0]["name"].clone()),
        (200, json!("confluence-users"))
    );
    let (status, body) = send(plain(http.get(&members))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["statusCode"], 403);
    // Confluence 8.5 answers 401 though the caller is authenticated (CONFSERVER-98582).
    sim.set_version(Product::Confluence, "8.5.0");
    let (status, body) = send(plain(http.get(&members))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["message"],
        "Client must be authenticated to access this resource."
    );
    let (status, _) = send(plain(http.put(format!("{api}/admin/user/ada/disable")))).await;
    assert_eq!(status, 401);
    assert!(
        sim.user(Product::Confluence, "ada")
            .is_some_and(|u| u.active)
    );
    let (status, _) = send(plain(http.get(format!("{api}/user/current")))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bitbucket_shows_its_licence_to_administrators_only() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/1.0", sim.bitbucket_url());
    let plain = |b: reqwest::RequestBuilder| {
        b.basic_auth(
            &sim.config().bitbucket_plain_user,
            Some(&sim.config().bitbucket_plain_password),
        )
    };

    let (status, licence) = send(bitbucket(&sim, http.get(format!("{api}/admin/license")))).await;
    assert_eq!(status, 200, "{licence}");
    assert_eq!(licence["unlimitedNumberOfUsers"], true);
    assert_eq!(licence["status"]["currentNumberOfUsers"], 0);

    sim.set_licence_seats(Product::Bitbucket, Some(5));
    for name in ["ada", "bob"] {
        sim.seed_user(Product::Bitbucket, SimUser::new(name));
        sim.seed_membership(Product::Bitbucket, "stash-users", name);
    }
    // Holding no licence-granting group, this one takes no seat.
    sim.seed_user(Product::Bitbucket, SimUser::new("cyd"));
    let (_, licence) = send(bitbucket(&sim, http.get(format!("{api}/admin/license")))).await;
    assert_eq!(
        (
            licence["maximumNumberOfUsers"].clone(),
            licence["unlimitedNumberOfUsers"].clone(),
            licence["status"]["currentNumberOfUsers"].clone()
        ),
        (json!(5), json!(false), json!(2)),
        "{licence}"
    );

    let (status, body) = send(plain(http.get(format!("{api}/admin/license")))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "You are not permitted to access this resource"
    );
    let token = |b: reqwest::RequestBuilder| b.bearer_auth(&sim.config().bitbucket_token);
    let (status, _) = send(token(http.get(format!("{api}/admin/license")))).await;
    assert_eq!(status, 401);
    // The non-admin resource that finds an account by name serves any licensed user.
    let (status, page) = send(plain(http.get(format!("{api}/users?filter=ada&limit=1")))).await;
    assert_eq!(
        (status, page["values"][0]["name"].clone()),
        (200, json!("ada"))
    );
}
