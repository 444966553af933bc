//! Products run at a chosen version: they report it where the product does, and serve only
//! the resources that version has (api-contracts.md C and D, "Version gates").

mod common;

use atlassian_sim::{Product, SimUser};
use common::{client, confluence, jira, send, start};
use serde_json::json;

#[tokio::test]
async fn confluence_serves_what_its_version_has() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    sim.seed_user(Product::Confluence, SimUser::new("ada"));
    sim.seed_group(Product::Confluence, "writers");

    // The default, a current version: everything, and the 9.1+ server information.
    let (status, info) = send(confluence(
        &sim,
        http.get(format!("{api}/server-information")),
    ))
    .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["version"], "9.2.0");

    sim.set_version(Product::Confluence, "8.3.0");
    let (status, _) = send(confluence(
        &sim,
        http.get(format!("{api}/server-information")),
    ))
    .await;
    assert_eq!(status, 404, "server-information arrived in 9.1");
    let (status, manifest) = send(confluence(
        &sim,
        http.get(format!(
            "{}/rest/applinks/1.0/manifest",
            sim.confluence_url()
        )),
    ))
    .await;
    assert_eq!((status, manifest["version"].clone()), (200, json!("8.3.0")));
    let create = confluence(&sim, http.post(format!("{api}/admin/user"))).json(&json!({
        "userName": "bob", "fullName": "Bob", "email": "bob@example.com", "password": "pw"
    }));
    let (status, body) = send(create).await;
    assert_eq!(status, 404, "create user arrived in 8.4: {body}");
    assert_eq!(body["statusCode"], 404);
    let (status, _) = send(confluence(&sim, http.get(format!("{api}/user/list")))).await;
    assert_eq!(status, 404, "the user list arrived in 8.4");
    let (status, _) = send(confluence(
        &sim,
        http.put(format!("{api}/user/ada/group/writers")),
    ))
    .await;
    assert_eq!(status, 404, "membership changes arrived in 9.0");
    assert!(sim.members(Product::Confluence, "writers").is_empty());
    // 8.2's resources are there.
    let (status, _) = send(confluence(
        &sim,
        http.put(format!("{api}/admin/user/ada/disable")),
    ))
    .await;
    assert_eq!(status, 204);
    // And what every version has.
    let (status, _) = send(confluence(&sim, http.get(format!("{api}/group")))).await;
    assert_eq!(status, 200);

    sim.set_version(Product::Confluence, "8.1.0");
    let (status, _) = send(confluence(
        &sim,
        http.put(format!("{api}/admin/user/ada/enable")),
    ))
    .await;
    assert_eq!(status, 404, "disable and enable arrived in 8.2");
}

#[tokio::test]
async fn versions_are_reported_and_set_through_the_control_api() {
    let sim = start().await;
    let http = client();
    let base = &sim.base_url;
    let (status, _) = send(
        http.put(format!("{base}/_sim/jira/version"))
            .json(&json!({"version": "10.2.1"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, info) = send(jira(
        &sim,
        http.get(format!("{}/rest/api/2/serverInfo", sim.jira_url())),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(info["versionNumbers"], json!([10, 2, 1]));
    let (status, _) = send(jira(
        &sim,
        http.get(format!("{}/rest/api/2/user/list", sim.jira_url())),
    ))
    .await;
    assert_eq!(status, 404, "Jira's user list arrived in 10.3");
    let (status, _) = send(
        http.put(format!("{base}/_sim/jira/version"))
            .json(&json!({"version": "ten"})),
    )
    .await;
    assert_eq!(status, 400);

    sim.set_version(Product::Bitbucket, "8.19.2");
    let c = sim.config();
    let (status, props) = send(
        http.get(format!(
            "{}/rest/api/1.0/application-properties",
            sim.bitbucket_url()
        ))
        .basic_auth(&c.admin_user, Some(&c.admin_password)),
    )
    .await;
    assert_eq!((status, props["version"].clone()), (200, json!("8.19.2")));
}

/// Credentials are checked before the version: a wrong token on a resource the version lacks
/// gets the product's 401, not a 404 that would hide the credentials problem.
#[tokio::test]
async fn credentials_are_checked_before_the_version() {
    let sim = start().await;
    sim.set_version(Product::Confluence, "8.3.0");
    let (status, _) = send(
        client()
            .post(format!("{}/rest/api/admin/user", sim.confluence_url()))
            .bearer_auth("not-the-token")
            .json(&json!({"userName": "bob", "fullName": "Bob", "email": "b@x", "password": "pw"})),
    )
    .await;
    assert_eq!(status, 401);
}
