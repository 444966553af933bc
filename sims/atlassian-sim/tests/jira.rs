//! Jira DC REST v2 over real loopback HTTP.

mod common;

use atlassian_sim::{FaultKind, FaultRule, Product, RateLimit, SimUser};
use common::{client, jira, send, start};
use serde_json::{Value, json};

fn names(values: &Value) -> Vec<String> {
    values
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn user_lifecycle_create_duplicate_rename_deactivate_delete() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());

    let (status, created) = send(jira(&sim, http.post(format!("{api}/user"))).json(&json!({
        "name": "jdoe", "emailAddress": "jdoe@example.com", "displayName": "John Doe",
        "password": "secret", "notification": "false"
    })))
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("JIRAUSER"), "{key}");
    assert_eq!(created["active"], true);

    let (status, dup) = send(jira(&sim, http.post(format!("{api}/user"))).json(&json!({
        "name": "JDOE", "emailAddress": "x@example.com", "displayName": "Other"
    })))
    .await;
    assert_eq!(status, 400, "duplicate is a 400 in Jira");
    assert!(dup["errors"]["username"].is_string(), "{dup}");
    assert!(dup["errorMessages"].is_array());

    let (status, by_key) = send(jira(
        &sim,
        http.get(format!("{api}/user")).query(&[("key", &key)]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_key["name"], "jdoe");

    // Rename keeps the key.
    let (status, renamed) = send(
        jira(
            &sim,
            http.put(format!("{api}/user"))
                .query(&[("username", "jdoe")]),
        )
        .json(&json!({"name": "john.doe", "emailAddress": "john.doe@example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["key"], key.as_str());
    assert_eq!(renamed["name"], "john.doe");
    let (status, gone) = send(jira(
        &sim,
        http.get(format!("{api}/user"))
            .query(&[("username", "jdoe")]),
    ))
    .await;
    assert_eq!(status, 404);
    assert!(
        gone["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("jdoe")
    );

    // Deactivate, then the default search no longer finds them.
    let (status, body) = send(
        jira(
            &sim,
            http.put(format!("{api}/user")).query(&[("key", &key)]),
        )
        .json(&json!({"active": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], false);
    let (_, found) = send(jira(
        &sim,
        http.get(format!("{api}/user/search"))
            .query(&[("username", "john")]),
    ))
    .await;
    assert_eq!(found, json!([]));
    let (_, found) = send(jira(
        &sim,
        http.get(format!("{api}/user/search"))
            .query(&[("username", "john"), ("includeInactive", "true")]),
    ))
    .await;
    assert_eq!(names(&found), vec!["john.doe"]);

    let (status, body) = send(jira(
        &sim,
        http.delete(format!("{api}/user"))
            .query(&[("username", "john.doe")]),
    ))
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(sim.user(Product::Jira, "john.doe").is_none());
    let (status, _) = send(jira(
        &sim,
        http.delete(format!("{api}/user"))
            .query(&[("username", "john.doe")]),
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_input_gets_jira_errors_not_panics() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    let (status, body) = send(jira(&sim, http.post(format!("{api}/user"))).body("not json")).await;
    assert_eq!(status, 400);
    assert!(body["errorMessages"].is_array());
    let (status, body) =
        send(jira(&sim, http.post(format!("{api}/user"))).json(&json!({"name": "x"}))).await;
    assert_eq!(status, 400);
    assert!(body["errors"]["email"].is_string());
    let (status, _) = send(jira(&sim, http.get(format!("{api}/user")))).await;
    assert_eq!(status, 400);
    let (status, _) = send(jira(
        &sim,
        http.get(format!("{api}/user/search"))
            .query(&[("maxResults", "lots")]),
    ))
    .await;
    assert_eq!(status, 400);
    let (status, body) = send(jira(&sim, http.get(format!("{api}/nothing/here")))).await;
    assert_eq!(status, 404);
    assert!(body["errorMessages"].is_array());
}

#[tokio::test]
async fn groups_members_nested_and_duplicates() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    for name in ["alice", "bob", "carol"] {
        sim.seed_user(Product::Jira, SimUser::new(name));
    }

    let (status, group) =
        send(jira(&sim, http.post(format!("{api}/group"))).json(&json!({"name": "eng"}))).await;
    assert_eq!(status, 201);
    assert_eq!(group["name"], "eng");
    let (status, body) =
        send(jira(&sim, http.post(format!("{api}/group"))).json(&json!({"name": "ENG"}))).await;
    assert_eq!(status, 400, "existing group is a 400: {body}");

    let add = |g: &str, u: &str| {
        jira(
            &sim,
            http.post(format!("{api}/group/user"))
                .query(&[("groupname", g)]),
        )
        .json(&json!({"name": u}))
    };
    assert_eq!(send(add("eng", "alice")).await.0, 201);
    let (status, body) = send(add("eng", "alice")).await;
    assert_eq!(status, 400, "already a member: {body}");
    assert!(
        body["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("already a member")
    );
    assert_eq!(send(add("eng", "ghost")).await.0, 404);
    assert_eq!(send(add("nope", "alice")).await.0, 404);

    // Nested: eng-backend is a subgroup of eng; its members appear in eng's listing.
    sim.seed_group(Product::Jira, "eng-backend");
    sim.seed_membership(Product::Jira, "eng-backend", "bob");
    sim.seed_membership(Product::Jira, "eng-backend", "carol");
    sim.nest_group(Product::Jira, "eng", "eng-backend");
    let (status, page) = send(jira(
        &sim,
        http.get(format!("{api}/group/member"))
            .query(&[("groupname", "eng")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3);
    assert_eq!(names(&page["values"]), vec!["alice", "bob", "carol"]);
    assert_eq!(page["isLast"], true);
    assert_eq!(
        sim.members(Product::Jira, "eng"),
        vec!["alice"],
        "direct members only"
    );

    // Inactive members are hidden unless asked for.
    sim.seed_user(
        Product::Jira,
        SimUser {
            active: false,
            ..SimUser::new("carol")
        },
    );
    let (_, page) = send(jira(
        &sim,
        http.get(format!("{api}/group/member"))
            .query(&[("groupname", "eng")]),
    ))
    .await;
    assert_eq!(page["total"], 2);
    let (_, page) = send(jira(
        &sim,
        http.get(format!("{api}/group/member"))
            .query(&[("groupname", "eng"), ("includeInactiveUsers", "true")]),
    ))
    .await;
    assert_eq!(page["total"], 3);

    // A nested member is not a direct one: removing it from the parent is refused.
    let remove = |g: &str, u: &str| {
        jira(
            &sim,
            http.delete(format!("{api}/group/user"))
                .query(&[("groupname", g), ("username", u)]),
        )
    };
    assert_eq!(send(remove("eng", "bob")).await.0, 400);
    assert_eq!(send(remove("eng", "alice")).await.0, 200);
    assert!(sim.members(Product::Jira, "eng").is_empty());

    // Picker lists groups.
    let (status, picker) = send(jira(
        &sim,
        http.get(format!("{api}/groups/picker"))
            .query(&[("query", "eng")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(picker["total"], 2);
    assert_eq!(picker["groups"][0]["name"], "eng");
    assert_eq!(picker["groups"][0]["html"], "<b>eng</b>");
    assert_eq!(picker["header"], "Showing 2 of 2 matching groups");

    assert_eq!(
        send(jira(
            &sim,
            http.delete(format!("{api}/group"))
                .query(&[("groupname", "eng")])
        ))
        .await
        .0,
        200
    );
    assert_eq!(
        send(jira(
            &sim,
            http.delete(format!("{api}/group"))
                .query(&[("groupname", "eng")])
        ))
        .await
        .0,
        400
    );
    assert_eq!(sim.groups(Product::Jira), vec!["eng-backend"]);
}

#[tokio::test]
async fn group_member_paging_spans_pages() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    for i in 0..120 {
        let name = format!("u{i:03}");
        sim.seed_user(Product::Jira, SimUser::new(&name));
        sim.seed_membership(Product::Jira, "big", &name);
    }
    let mut url = format!("{api}/group/member?groupname=big");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = send(jira(&sim, http.get(&url))).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 120);
        seen.extend(names(&page["values"]));
        pages += 1;
        if page["isLast"] == true {
            assert!(page.get("nextPage").is_none());
            break;
        }
        url = page["nextPage"].as_str().expect("nextPage").to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 120);
    assert_eq!(seen[0], "u000");
    assert_eq!(seen[119], "u119");

    // maxResults above 50 is capped.
    let (_, page) = send(jira(
        &sim,
        http.get(format!("{api}/group/member"))
            .query(&[("groupname", "big"), ("maxResults", "100")]),
    ))
    .await;
    assert_eq!(page["values"].as_array().expect("values").len(), 50);
    assert_eq!(page["maxResults"], 50);
}

#[tokio::test]
async fn user_search_is_limited_to_first_100_and_list_uses_cursors() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    for i in 0..130 {
        sim.seed_user(Product::Jira, SimUser::new(&format!("user{i:03}")));
    }
    let search = |start: &str, max: &str| {
        jira(
            &sim,
            http.get(format!("{api}/user/search")).query(&[
                ("username", "."),
                ("startAt", start),
                ("maxResults", max),
            ]),
        )
    };
    let (_, first) = send(search("0", "50")).await;
    assert_eq!(first.as_array().expect("array").len(), 50);
    let (_, tail) = send(search("98", "20")).await;
    assert_eq!(
        names(&tail),
        vec!["user098", "user099"],
        "capped at the first 100"
    );
    let (_, big) = send(search("0", "1000")).await;
    assert_eq!(big.as_array().expect("array").len(), 100);

    let (_, prefix) = send(jira(
        &sim,
        http.get(format!("{api}/user/search"))
            .query(&[("username", "user12")]),
    ))
    .await;
    assert_eq!(prefix.as_array().expect("array").len(), 10);

    // /user/list walks everyone with cursors.
    let mut url = format!("{api}/user/list?maxResults=40");
    let mut seen = Vec::new();
    loop {
        let (status, page) = send(jira(&sim, http.get(&url))).await;
        assert_eq!(status, 200);
        seen.extend(names(&page["values"]));
        if page["isLast"] == true {
            break;
        }
        assert!(page["nextCursor"].is_string());
        url = page["nextPage"].as_str().expect("nextPage").to_owned();
    }
    assert_eq!(seen.len(), 130);
    let (status, _) = send(jira(&sim, http.get(format!("{api}/user/list?cursor=zz")))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn user_properties_crud() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    let key = sim.seed_user(Product::Jira, SimUser::new("pat"));
    let prop = format!("{api}/user/properties/idsync.source");
    let (status, _) = send(
        jira(&sim, http.put(&prop).query(&[("username", "pat")])).json(&json!({"objectId": "abc"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        jira(&sim, http.put(&prop).query(&[("userKey", &key)])).json(&json!({"objectId": "def"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(jira(&sim, http.get(&prop).query(&[("username", "pat")]))).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"key": "idsync.source", "value": {"objectId": "def"}})
    );
    let (_, keys) = send(jira(
        &sim,
        http.get(format!("{api}/user/properties"))
            .query(&[("username", "pat")]),
    ))
    .await;
    assert_eq!(keys["keys"][0]["key"], "idsync.source");
    assert_eq!(
        sim.user_properties("pat")["idsync.source"],
        json!({"objectId": "def"})
    );
    assert_eq!(
        send(jira(&sim, http.delete(&prop).query(&[("username", "pat")])))
            .await
            .0,
        204
    );
    assert_eq!(
        send(jira(&sim, http.get(&prop).query(&[("username", "pat")])))
            .await
            .0,
        404
    );
    assert_eq!(
        send(jira(&sim, http.put(&prop).query(&[("username", "pat")])).body("{oops"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn project_lead_blocks_delete_and_deactivate_component_lead_does_not() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    sim.seed_user(Product::Jira, SimUser::new("lead"));
    sim.seed_user(Product::Jira, SimUser::new("deputy"));
    sim.seed_user(Product::Jira, SimUser::new("comp"));
    sim.add_project("ABC", "Alphabet", "lead");
    let component = sim.add_component("ABC", "Backend", Some("comp"));

    let (status, body) = send(jira(
        &sim,
        http.delete(format!("{api}/user"))
            .query(&[("username", "lead")]),
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        body["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("project lead"),
        "{body}"
    );
    let (status, body) = send(
        jira(
            &sim,
            http.put(format!("{api}/user"))
                .query(&[("username", "lead")]),
        )
        .json(&json!({"active": false})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("project lead")
    );
    assert!(sim.user(Product::Jira, "lead").expect("still there").active);

    let (_, projects) = send(jira(
        &sim,
        http.get(format!("{api}/project"))
            .query(&[("expand", "lead")]),
    ))
    .await;
    assert_eq!(projects[0]["key"], "ABC");
    assert_eq!(projects[0]["lead"]["name"], "lead");

    let (status, components) = send(jira(
        &sim,
        http.get(format!("{api}/project/ABC/components")),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(components[0]["lead"]["name"], "comp");

    // Component lead: deletion is fine, the component loses its lead.
    assert_eq!(
        send(jira(
            &sim,
            http.delete(format!("{api}/user"))
                .query(&[("username", "comp")])
        ))
        .await
        .0,
        204
    );
    assert_eq!(sim.component_lead(component), None);

    // Reassign the project, then the old lead can go.
    let (status, body) =
        send(jira(&sim, http.put(format!("{api}/project/ABC"))).json(&json!({"lead": "deputy"})))
            .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    assert_eq!(sim.project_lead("ABC"), "deputy");
    assert_eq!(
        send(jira(
            &sim,
            http.delete(format!("{api}/user"))
                .query(&[("username", "lead")])
        ))
        .await
        .0,
        204
    );

    let (status, _) =
        send(jira(&sim, http.put(format!("{api}/project/ABC"))).json(&json!({"lead": "ghost"})))
            .await;
    assert_eq!(status, 400);
    sim.seed_user(Product::Jira, SimUser::new("newcomp"));
    let (status, body) = send(
        jira(&sim, http.put(format!("{api}/component/{component}")))
            .json(&json!({"leadUserName": "newcomp"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["lead"]["name"], "newcomp");
    assert_eq!(sim.component_lead(component).as_deref(), Some("newcomp"));
}

#[tokio::test]
async fn licence_seats_and_read_only_directory() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    sim.seed_user(Product::Jira, SimUser::new("one"));
    sim.seed_user(
        Product::Jira,
        SimUser {
            active: false,
            ..SimUser::new("sleeper")
        },
    );
    sim.set_licence_seats(Product::Jira, Some(1));
    let create = |name: &str, active: bool| {
        jira(&sim, http.post(format!("{api}/user"))).json(&json!({
            "name": name, "emailAddress": format!("{name}@example.com"), "displayName": name, "active": active
        }))
    };
    let (status, body) = send(create("two", true)).await;
    assert_eq!(status, 400);
    assert!(
        body["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("user limit"),
        "{body}"
    );
    assert_eq!(
        send(create("three", false)).await.0,
        201,
        "inactive users need no seat"
    );
    let (status, _) = send(
        jira(
            &sim,
            http.put(format!("{api}/user"))
                .query(&[("username", "sleeper")]),
        )
        .json(&json!({"active": true})),
    )
    .await;
    assert_eq!(status, 400, "reactivation needs a seat");
    sim.set_licence_seats(Product::Jira, None);
    assert_eq!(send(create("two", true)).await.0, 201);

    sim.set_read_only(Product::Jira, true);
    let (status, body) = send(create("four", true)).await;
    assert_eq!(status, 400);
    assert!(
        body["errorMessages"][0]
            .as_str()
            .expect("msg")
            .contains("read-only")
    );
    let (status, _) =
        send(jira(&sim, http.post(format!("{api}/group"))).json(&json!({"name": "g"}))).await;
    assert_eq!(status, 400);
    // Reads still work.
    assert_eq!(
        send(jira(
            &sim,
            http.get(format!("{api}/user"))
                .query(&[("username", "one")])
        ))
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn auth_rate_limit_faults_and_counters() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api/2", sim.jira_url());
    sim.seed_user(Product::Jira, SimUser::new("ann"));
    let url = format!("{api}/user?username=ann");

    let (status, body) = send(http.get(&url)).await;
    assert_eq!(status, 401);
    assert!(body["errorMessages"].is_array());
    assert_eq!(send(http.get(&url).bearer_auth("wrong")).await.0, 401);
    assert_eq!(
        send(http.get(&url).bearer_auth(&sim.config().bitbucket_token))
            .await
            .0,
        401,
        "other product's token"
    );
    assert_eq!(
        send(http.get(&url).basic_auth("admin", Some("admin")))
            .await
            .0,
        200
    );
    assert_eq!(
        send(http.get(&url).basic_auth("admin", Some("nope")))
            .await
            .0,
        401
    );

    // No rate-limit headers while limiting is off.
    let response = jira(&sim, http.get(&url)).send().await.expect("sent");
    assert!(response.headers().get("x-ratelimit-limit").is_none());

    sim.set_rate_limit(
        Product::Jira,
        Some(RateLimit {
            capacity: 2,
            fill_rate: 1,
            interval_seconds: 3600,
        }),
    );
    let response = jira(&sim, http.get(&url)).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let h = response.headers();
    assert_eq!(h["x-ratelimit-limit"], "2");
    assert_eq!(h["x-ratelimit-remaining"], "1");
    assert_eq!(h["x-ratelimit-interval-seconds"], "3600");
    assert_eq!(h["x-ratelimit-fillrate"], "1");
    assert_eq!(h["retry-after"], "0");
    assert_eq!(
        jira(&sim, http.get(&url))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        200
    );
    let response = jira(&sim, http.get(&url)).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(retry >= 1);
    let (_, body) = common::parts(response).await;
    assert!(body["errorMessages"].is_array());
    // Other products have their own bucket.
    sim.seed_user(Product::Bitbucket, SimUser::new("ann"));
    let bb = format!("{}/rest/api/1.0/users/ann", sim.bitbucket_url());
    assert_eq!(
        common::bitbucket(&sim, http.get(&bb))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        200
    );
    sim.set_rate_limit(Product::Jira, None);

    // sim-kit faults come back in Jira's error shape.
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 503,
            retry_after: Some(7),
            body: None,
        })
        .on_path("/jira/"),
    );
    let response = jira(&sim, http.get(&url)).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let (_, body) = common::parts(response).await;
    assert!(body["errorMessages"].is_array(), "{body}");
    assert!(sim.kit().count("GET /jira/rest/api/2/user") >= 5);
}
