//! Bitbucket DC REST 1.0 (8.14 OpenAPI) over real loopback HTTP.

mod common;

use atlassian_sim::{FaultKind, FaultRule, Product, SimUser};
use common::{bitbucket, client, send, start};
use serde_json::{Value, json};

fn names(page: &Value) -> Vec<String> {
    page["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["name"].as_str().or(v.as_str()).expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn user_lifecycle_uses_query_params_and_documented_codes() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/1.0", sim.bitbucket_url());
    let create = |name: &str| {
        bitbucket(
            &sim,
            http.post(format!("{api}/admin/users")).query(&[
                ("name", name),
                ("displayName", "Jane Citizen"),
                ("emailAddress", "jane@example.com"),
                ("password", "s3cret"),
            ]),
        )
    };
    let (status, body) = send(create("jcitizen")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
    let (status, body) = send(create("JCitizen")).await;
    assert_eq!(status, 409);
    assert!(body["errors"][0]["message"].is_string());
    assert!(body["errors"][0].get("exceptionName").is_some());
    assert_eq!(
        sim.members(Product::Bitbucket, "stash-users"),
        vec!["jcitizen"],
        "addToDefaultGroup defaults to true"
    );

    // No password and no notify: 400.
    let (status, _) = send(bitbucket(
        &sim,
        http.post(format!("{api}/admin/users")).query(&[
            ("name", "x"),
            ("displayName", "X"),
            ("emailAddress", "x@example.com"),
        ]),
    ))
    .await;
    assert_eq!(status, 400);

    let (status, page) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/users"))
            .query(&[("filter", "jane@")]),
    ))
    .await;
    assert_eq!(status, 200);
    let user = &page["values"][0];
    assert_eq!(user["name"], "jcitizen");
    assert_eq!(user["slug"], "jcitizen");
    assert_eq!(user["type"], "NORMAL");
    assert_eq!(user["mutableDetails"], true);
    assert_eq!(user["mutableGroups"], true);
    assert!(user["id"].is_u64());

    let (status, updated) = send(
        bitbucket(&sim, http.put(format!("{api}/admin/users")))
            .json(&json!({"name": "jcitizen", "displayName": "Jane C", "email": "jc@example.com"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["displayName"], "Jane C");
    assert_eq!(updated["emailAddress"], "jc@example.com");

    let (status, renamed) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/users/rename")))
            .json(&json!({"name": "jcitizen", "newName": "jane"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["name"], "jane");
    assert_eq!(renamed["id"], user["id"]);
    assert_eq!(
        sim.members(Product::Bitbucket, "stash-users"),
        vec!["jane"],
        "memberships follow a rename"
    );

    let (status, by_slug) = send(bitbucket(&sim, http.get(format!("{api}/users/jane")))).await;
    assert_eq!(status, 200);
    assert!(
        by_slug.get("mutableDetails").is_none(),
        "RestApplicationUser"
    );

    let (status, deleted) = send(bitbucket(
        &sim,
        http.delete(format!("{api}/admin/users"))
            .query(&[("name", "jane")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["name"], "jane");
    let (status, body) = send(bitbucket(
        &sim,
        http.delete(format!("{api}/admin/users"))
            .query(&[("name", "jane")]),
    ))
    .await;
    assert_eq!(status, 404);
    assert!(body["errors"].is_array());
    assert_eq!(
        send(bitbucket(&sim, http.get(format!("{api}/users/jane"))))
            .await
            .0,
        404
    );
    assert_eq!(
        send(bitbucket(
            &sim,
            http.delete(format!("{api}/admin/users"))
                .query(&[("name", "admin")])
        ))
        .await
        .0,
        404,
        "the admin is not in the simulated directory"
    );
}

#[tokio::test]
async fn groups_and_memberships_on_latest() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/latest", sim.bitbucket_url());
    for name in ["amy", "ben", "cat"] {
        sim.seed_user(Product::Bitbucket, SimUser::new(name));
    }
    let (status, group) = send(bitbucket(
        &sim,
        http.post(format!("{api}/admin/groups"))
            .query(&[("name", "devs")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(group, json!({"name": "devs", "deletable": true}));
    assert_eq!(
        send(bitbucket(
            &sim,
            http.post(format!("{api}/admin/groups"))
                .query(&[("name", "devs")])
        ))
        .await
        .0,
        409
    );

    let (status, body) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
            .json(&json!({"group": "devs", "users": ["amy", "ben"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
            .json(&json!({"group": "devs", "users": ["amy", "ghost"]})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        sim.members(Product::Bitbucket, "devs"),
        vec!["amy", "ben"],
        "all or nothing"
    );

    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/users/add-groups")))
            .json(&json!({"user": "cat", "groups": ["devs", "stash-users"]})),
    )
    .await;
    assert_eq!(status, 200);

    let (_, members) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/groups/more-members"))
            .query(&[("context", "devs")]),
    ))
    .await;
    assert_eq!(names(&members), vec!["amy", "ben", "cat"]);
    let (_, groups) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/users/more-members"))
            .query(&[("context", "cat")]),
    ))
    .await;
    assert_eq!(names(&groups), vec!["devs", "stash-users"]);
    let (_, other) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/users/more-non-members"))
            .query(&[("context", "amy")]),
    ))
    .await;
    assert_eq!(names(&other), vec!["stash-users"]);
    let (_, non) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/groups/more-non-members"))
            .query(&[("context", "stash-users")]),
    ))
    .await;
    assert_eq!(names(&non), vec!["amy", "ben"]);

    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/remove-user")))
            .json(&json!({"context": "devs", "itemName": "amy"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/users/remove-group")))
            .json(&json!({"context": "ben", "itemName": "devs"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.members(Product::Bitbucket, "devs"), vec!["cat"]);

    let (_, names_page) = send(bitbucket(&sim, http.get(format!("{api}/groups")))).await;
    assert_eq!(names_page["values"], json!(["devs", "stash-users"]));
    let (_, users) = send(bitbucket(
        &sim,
        http.get(format!("{api}/users")).query(&[("group", "devs")]),
    ))
    .await;
    assert_eq!(names(&users), vec!["cat"]);

    let (status, deleted) = send(bitbucket(
        &sim,
        http.delete(format!("{api}/admin/groups"))
            .query(&[("name", "devs")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["name"], "devs");
    assert_eq!(
        send(bitbucket(
            &sim,
            http.delete(format!("{api}/admin/groups"))
                .query(&[("name", "devs")])
        ))
        .await
        .0,
        404
    );
    let (_, bad) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
            .json(&json!({"group": "x"})),
    )
    .await;
    assert!(bad["errors"][0]["message"].is_string());
}

#[tokio::test]
async fn paging_with_next_page_start_and_limit_cap() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/1.0", sim.bitbucket_url());
    for i in 0..60 {
        sim.seed_user(Product::Bitbucket, SimUser::new(&format!("dev{i:02}")));
    }
    let mut start_at = 0u64;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (status, page) = send(bitbucket(
            &sim,
            http.get(format!("{api}/admin/users"))
                .query(&[("start", start_at.to_string())]),
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["limit"], 25);
        assert_eq!(page["start"], start_at);
        sizes.push(page["size"].as_u64().expect("size"));
        seen.extend(names(&page));
        if page["isLastPage"] == true {
            assert!(page.get("nextPageStart").is_none());
            break;
        }
        start_at = page["nextPageStart"].as_u64().expect("nextPageStart");
    }
    assert_eq!(sizes, vec![25, 25, 10]);
    assert_eq!(seen.len(), 60);
    let (_, page) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/users"))
            .query(&[("limit", "5000")]),
    ))
    .await;
    assert_eq!(page["limit"], 1000);
    assert_eq!(page["isLastPage"], true);
    let (status, body) = send(bitbucket(
        &sim,
        http.get(format!("{api}/admin/users"))
            .query(&[("start", "abc")]),
    ))
    .await;
    assert_eq!(status, 400);
    assert!(body["errors"].is_array());
}

#[tokio::test]
async fn licence_limit_read_only_and_auth() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/1.0", sim.bitbucket_url());
    sim.seed_user(Product::Bitbucket, SimUser::new("first"));
    sim.seed_membership(Product::Bitbucket, "stash-users", "first");
    sim.seed_user(Product::Bitbucket, SimUser::new("second"));
    sim.seed_group(Product::Bitbucket, "plain");
    sim.set_licence_seats(Product::Bitbucket, Some(1));

    let (status, body) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/users/add-groups")))
            .json(&json!({"user": "second", "groups": ["stash-users"]})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("msg")
            .contains("license")
    );
    // A group that grants no licence is fine; an already-licensed user is fine.
    assert_eq!(
        send(
            bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
                .json(&json!({"group": "plain", "users": ["second", "first"]}))
        )
        .await
        .0,
        200
    );
    let (status, _) = send(bitbucket(
        &sim,
        http.post(format!("{api}/admin/users")).query(&[
            ("name", "third"),
            ("displayName", "Third"),
            ("emailAddress", "t@example.com"),
            ("password", "p"),
        ]),
    ))
    .await;
    assert_eq!(status, 403, "default group would exceed the licence");
    assert!(sim.user(Product::Bitbucket, "third").is_none());
    let (status, _) = send(bitbucket(
        &sim,
        http.post(format!("{api}/admin/users")).query(&[
            ("name", "third"),
            ("displayName", "Third"),
            ("emailAddress", "t@example.com"),
            ("password", "p"),
            ("addToDefaultGroup", "false"),
        ]),
    ))
    .await;
    assert_eq!(status, 204);

    sim.set_read_only(Product::Bitbucket, true);
    let (_, page) = send(bitbucket(&sim, http.get(format!("{api}/admin/users")))).await;
    assert_eq!(page["values"][0]["mutableDetails"], false);
    assert_eq!(page["values"][0]["mutableGroups"], false);
    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
            .json(&json!({"group": "plain", "users": ["third"]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        bitbucket(&sim, http.put(format!("{api}/admin/users")))
            .json(&json!({"name": "third", "displayName": "T"})),
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = send(http.get(format!("{api}/admin/users"))).await;
    assert_eq!(status, 401);
    assert!(body["errors"][0]["message"].is_string());
    assert_eq!(
        send(
            http.get(format!("{api}/admin/users"))
                .basic_auth("admin", Some("admin"))
        )
        .await
        .0,
        200
    );

    // No invented endpoints.
    let (status, _) = send(
        bitbucket(&sim, http.post(format!("{api}/admin/users/remove-groups"))).json(&json!({})),
    )
    .await;
    assert_eq!(status, 404);
}

/// Bitbucket DC refuses HTTP access tokens on administrative endpoints and user management
/// (KB "How to use OAuth2 tokens for administrative endpoints of Bitbucket Data Center",
/// BSERV-10482): the token authenticates, the admin check fails with the RestErrors 401 of
/// an AuthorisationException. An account without ADMIN permission gets the same answer.
#[tokio::test]
async fn http_access_tokens_and_non_admins_are_refused_on_admin_endpoints() {
    let sim = start().await;
    let http = client();
    let config = sim.config().clone();
    sim.seed_user(Product::Bitbucket, SimUser::new("amy"));
    for version in ["1.0", "latest"] {
        let api = format!("{}/rest/api/{version}", sim.bitbucket_url());
        let token = |b: reqwest::RequestBuilder| b.bearer_auth(&config.bitbucket_token);
        let plain = |b: reqwest::RequestBuilder| {
            b.basic_auth(
                &config.bitbucket_plain_user,
                Some(&config.bitbucket_plain_password),
            )
        };
        for refused in [
            token(http.get(format!("{api}/admin/users"))),
            token(
                http.post(format!("{api}/admin/groups"))
                    .query(&[("name", "by-token")]),
            ),
            token(http.post(format!("{api}/admin/groups/add-users")))
                .json(&json!({"group": "stash-users", "users": ["amy"]})),
            plain(http.get(format!("{api}/admin/groups"))),
            plain(
                http.delete(format!("{api}/admin/users"))
                    .query(&[("name", "amy")]),
            ),
        ] {
            let (status, body) = send(refused).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(
                body["errors"][0]["exceptionName"],
                "com.atlassian.bitbucket.AuthorisationException"
            );
            assert_eq!(
                body["errors"][0]["message"],
                "You are not permitted to access this resource"
            );
        }
        // Nothing was changed by the refused calls.
        assert!(
            !sim.groups(Product::Bitbucket)
                .contains(&"by-token".to_owned())
        );
        assert!(sim.user(Product::Bitbucket, "amy").is_some());
        assert!(sim.members(Product::Bitbucket, "stash-users").is_empty());

        // Both still reach the non-admin resources...
        let (status, page) = send(token(http.get(format!("{api}/users")))).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(send(plain(http.get(format!("{api}/groups")))).await.0, 200);
        // ...and an administrator's Basic credentials reach the admin ones.
        let (status, page) = send(bitbucket(&sim, http.get(format!("{api}/admin/users")))).await;
        assert_eq!(status, 200, "{page}");
        // A token the product does not know fails authentication itself.
        let (status, body) = send(
            http.get(format!("{api}/admin/users"))
                .bearer_auth("not-a-token"),
        )
        .await;
        assert_eq!(status, 401);
        assert_ne!(
            body["errors"][0]["message"],
            "You are not permitted to access this resource"
        );
    }
}

#[tokio::test]
async fn request_log_and_counters_for_the_openapi_check() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/1.0", sim.bitbucket_url());
    sim.seed_user(Product::Bitbucket, SimUser::new("amy"));
    send(bitbucket(
        &sim,
        http.post(format!("{api}/admin/groups"))
            .query(&[("name", "g1")]),
    ))
    .await;
    send(
        bitbucket(&sim, http.post(format!("{api}/admin/groups/add-users")))
            .json(&json!({"group": "g1", "users": ["amy"]})),
    )
    .await;
    send(bitbucket(
        &sim,
        http.get(format!("{}/rest/api/latest/users/amy", sim.bitbucket_url())),
    ))
    .await;
    send(bitbucket(&sim, http.get(format!("{api}/not-a-route")))).await;

    let log = sim.bitbucket_requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].method, "POST");
    assert_eq!(
        log[0].spec_path.as_deref(),
        Some("/api/latest/admin/groups")
    );
    assert_eq!(log[0].query, vec![("name".to_owned(), "g1".to_owned())]);
    assert_eq!(log[0].body, None);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].body, Some(json!({"group": "g1", "users": ["amy"]})));
    assert_eq!(
        log[1].path,
        "/bitbucket/rest/api/1.0/admin/groups/add-users"
    );
    assert_eq!(
        log[2].spec_path.as_deref(),
        Some("/api/latest/users/{userSlug}")
    );
    assert_eq!(log[3].spec_path, None);
    assert_eq!(log[3].status, 404);

    assert_eq!(
        sim.kit()
            .count("POST /bitbucket/rest/api/1.0/admin/groups/add-users"),
        1
    );

    // Faults come back in Bitbucket's error shape.
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 500,
            retry_after: None,
            body: None,
        })
        .on_path("/bitbucket/"),
    );
    let (status, body) = send(bitbucket(&sim, http.get(format!("{api}/admin/groups")))).await;
    assert_eq!(status, 500);
    assert!(body["errors"][0]["message"].is_string(), "{body}");
}
