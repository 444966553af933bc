//! Confluence DC REST over real loopback HTTP.

mod common;

use atlassian_sim::{Product, RateLimit, SimUser};
use common::{client, confluence, send, start};
use serde_json::{Value, json};

fn usernames(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|p| p["username"].as_str().expect("username").to_owned())
        .collect()
}

#[tokio::test]
async fn user_lifecycle_with_async_delete() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    let create = |name: &str| {
        confluence(&sim, http.post(format!("{api}/admin/user"))).json(&json!({
            "userName": name, "fullName": "Some One", "email": format!("{name}@example.com"), "password": "pw"
        }))
    };
    let (status, body) = send(create("user1")).await;
    assert_eq!(status, 201, "{body}");
    let key = body["userKey"].as_str().expect("userKey").to_owned();
    assert_eq!(key.len(), 32);
    let (status, body) = send(create("user1")).await;
    assert_eq!(status, 409);
    assert_eq!(body["statusCode"], 409);
    assert!(body["message"].is_string());
    assert!(body["reason"].is_string());
    assert!(body["data"].is_object());

    let (status, person) = send(confluence(
        &sim,
        http.get(format!("{api}/user"))
            .query(&[("username", "user1"), ("expand", "status")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(person["type"], "known");
    assert_eq!(person["userKey"], key.as_str());
    assert_eq!(person["status"], "Active");
    let (_, by_key) = send(confluence(
        &sim,
        http.get(format!("{api}/user")).query(&[("key", &key)]),
    ))
    .await;
    assert_eq!(by_key["username"], "user1");
    assert!(by_key.get("status").is_none(), "status only when expanded");

    let (status, _) = send(
        confluence(&sim, http.put(format!("{api}/admin/user/user1")))
            .json(&json!({"email": "new@example.com", "fullName": "New Name"})),
    )
    .await;
    assert_eq!(status, 204);
    let user = sim.user(Product::Confluence, "user1").expect("user");
    assert_eq!(user.email, "new@example.com");
    assert_eq!(user.display_name, "New Name");

    for _ in 0..2 {
        assert_eq!(
            send(confluence(
                &sim,
                http.put(format!("{api}/admin/user/user1/disable"))
            ))
            .await
            .0,
            204,
            "idempotent"
        );
    }
    let (_, person) = send(confluence(
        &sim,
        http.get(format!("{api}/user"))
            .query(&[("username", "user1"), ("expand", "status")]),
    ))
    .await;
    assert_eq!(person["status"], "Deactivated");
    for _ in 0..2 {
        assert_eq!(
            send(confluence(
                &sim,
                http.put(format!("{api}/admin/user/user1/enable"))
            ))
            .await
            .0,
            204
        );
    }
    assert_eq!(
        send(confluence(
            &sim,
            http.put(format!("{api}/admin/user/ghost/disable"))
        ))
        .await
        .0,
        404
    );

    // Delete: 202 + long task; the user is there until the task completes on the second poll.
    let (status, task) = send(confluence(
        &sim,
        http.delete(format!("{api}/admin/user/user1")),
    ))
    .await;
    assert_eq!(status, 202);
    let id = task["id"].as_str().expect("id").to_owned();
    let link = task["links"]["status"]
        .as_str()
        .expect("status link")
        .to_owned();
    assert_eq!(link, format!("/rest/api/longtask/{id}"));
    assert!(sim.user(Product::Confluence, "user1").is_some());
    let poll_url = format!("{}{link}", sim.confluence_url());
    let (status, first) = send(confluence(&sim, http.get(&poll_url))).await;
    assert_eq!(status, 200);
    assert!(first["percentageComplete"].as_u64().expect("pct") < 100);
    // True while running, as Confluence DC reports it: only 100 % means done.
    assert_eq!(first["successful"], true);
    assert!(sim.user(Product::Confluence, "user1").is_some());
    let (_, second) = send(confluence(&sim, http.get(&poll_url))).await;
    assert_eq!(second["percentageComplete"], 100);
    assert_eq!(second["successful"], true);
    assert!(second["elapsedTime"].is_u64());
    assert!(sim.user(Product::Confluence, "user1").is_none());
    assert_eq!(
        send(confluence(
            &sim,
            http.get(format!("{api}/user"))
                .query(&[("username", "user1")])
        ))
        .await
        .0,
        404
    );
    assert_eq!(
        send(confluence(&sim, http.get(format!("{api}/longtask/nope"))))
            .await
            .0,
        404
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.delete(format!("{api}/admin/user/user1"))
        ))
        .await
        .0,
        404
    );

    // No rename endpoint.
    let (status, body) = send(
        confluence(&sim, http.post(format!("{api}/admin/user/user1/rename"))).json(&json!({})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["statusCode"], 404);
}

#[tokio::test]
async fn groups_membership_idempotent_and_paging() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    let (status, group) = send(
        confluence(&sim, http.post(format!("{api}/admin/group")))
            .json(&json!({"name": "writers", "type": "group"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(group["name"], "writers");
    assert_eq!(
        send(
            confluence(&sim, http.post(format!("{api}/admin/group")))
                .json(&json!({"name": "writers", "type": "group"}))
        )
        .await
        .0,
        409
    );

    for i in 0..250 {
        sim.seed_user(Product::Confluence, SimUser::new(&format!("w{i:03}")));
    }
    for i in 0..250 {
        let url = format!("{api}/user/w{i:03}/group/writers");
        assert_eq!(send(confluence(&sim, http.put(&url))).await.0, 204);
    }
    assert_eq!(
        send(confluence(
            &sim,
            http.put(format!("{api}/user/w000/group/writers"))
        ))
        .await
        .0,
        204,
        "idempotent add"
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.put(format!("{api}/user/ghost/group/writers"))
        ))
        .await
        .0,
        404
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.put(format!("{api}/user/w000/group/nope"))
        ))
        .await
        .0,
        404
    );

    // Default limit 200, then follow _links.next.
    let (status, first) = send(confluence(
        &sim,
        http.get(format!("{api}/group/writers/member"))
            .query(&[("expand", "status")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(first["limit"], 200);
    assert_eq!(first["size"], 200);
    assert_eq!(first["totalCount"], 250);
    assert_eq!(first["results"][0]["status"], "Active");
    assert_eq!(first["_links"]["context"], "/confluence");
    let next = first["_links"]["next"].as_str().expect("next").to_owned();
    assert!(
        next.starts_with("/rest/api/group/writers/member?"),
        "{next}"
    );
    let (_, second) = send(confluence(
        &sim,
        http.get(format!("{}{next}", sim.confluence_url())),
    ))
    .await;
    assert_eq!(second["size"], 50);
    assert_eq!(second["start"], 200);
    assert!(second["_links"].get("next").is_none());
    let mut all = usernames(&first);
    all.extend(usernames(&second));
    assert_eq!(all.len(), 250);

    // Small pages.
    let (_, small) = send(confluence(
        &sim,
        http.get(format!("{api}/group/writers/member"))
            .query(&[("limit", "100"), ("start", "200")]),
    ))
    .await;
    assert_eq!(small["size"], 50);

    assert_eq!(
        send(confluence(
            &sim,
            http.delete(format!("{api}/user/w000/group/writers"))
        ))
        .await
        .0,
        204
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.delete(format!("{api}/user/w000/group/writers"))
        ))
        .await
        .0,
        204,
        "idempotent remove"
    );
    assert_eq!(sim.members(Product::Confluence, "writers").len(), 249);

    let (_, groups) = send(confluence(&sim, http.get(format!("{api}/group")))).await;
    assert_eq!(groups["results"][0]["name"], "writers");
    assert_eq!(groups["results"][0]["type"], "group");
    let (_, member_of) = send(confluence(
        &sim,
        http.get(format!("{api}/user/memberof"))
            .query(&[("username", "w001")]),
    ))
    .await;
    assert_eq!(member_of["results"][0]["name"], "writers");

    let (_, list) = send(confluence(
        &sim,
        http.get(format!("{api}/user/list"))
            .query(&[("limit", "1000"), ("expand", "status")]),
    ))
    .await;
    assert_eq!(list["limit"], 200, "the server lowers limit");
    assert_eq!(list["totalCount"], 250);

    assert_eq!(
        send(confluence(
            &sim,
            http.delete(format!("{api}/admin/group/writers"))
        ))
        .await
        .0,
        204
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.delete(format!("{api}/admin/group/writers"))
        ))
        .await
        .0,
        404
    );
    assert_eq!(
        send(confluence(
            &sim,
            http.get(format!("{api}/group/writers/member"))
        ))
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn licence_read_only_auth_and_rate_limit() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    sim.seed_user(Product::Confluence, SimUser::new("one"));
    sim.set_licence_seats(Product::Confluence, Some(1));
    let create = confluence(&sim, http.post(format!("{api}/admin/user")))
        .json(&json!({"userName": "two", "fullName": "Two", "email": "two@example.com", "notifyViaEmail": true}));
    let (status, body) = send(create).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["statusCode"], 402);
    sim.set_licence_seats(Product::Confluence, None);

    let (status, _) = send(
        confluence(&sim, http.post(format!("{api}/admin/user")))
            .json(&json!({"userName": "nopw", "email": "n@example.com"})),
    )
    .await;
    assert_eq!(status, 400, "password or notifyViaEmail needed");

    sim.set_read_only(Product::Confluence, true);
    let (status, body) =
        send(confluence(&sim, http.post(format!("{api}/admin/group"))).json(&json!({"name": "g"})))
            .await;
    assert_eq!(status, 403);
    assert_eq!(body["statusCode"], 403);
    sim.set_read_only(Product::Confluence, false);

    let (status, body) = send(http.get(format!("{api}/group"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["statusCode"], 401);
    assert_eq!(
        send(
            http.get(format!("{api}/group"))
                .basic_auth("admin", Some("admin"))
        )
        .await
        .0,
        200
    );

    sim.set_rate_limit(
        Product::Confluence,
        Some(RateLimit {
            capacity: 1,
            fill_rate: 1,
            interval_seconds: 600,
        }),
    );
    let ok = confluence(&sim, http.get(format!("{api}/group")))
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-ratelimit-remaining"], "0");
    let limited = confluence(&sim, http.get(format!("{api}/group")))
        .send()
        .await
        .expect("sent");
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let (_, body) = common::parts(limited).await;
    assert_eq!(body["statusCode"], 429);
}

#[tokio::test]
async fn long_task_knobs() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    sim.seed_user(Product::Confluence, SimUser::new("a"));
    sim.seed_user(Product::Confluence, SimUser::new("b"));
    sim.set_long_task_polls(1);
    let (_, task) = send(confluence(&sim, http.delete(format!("{api}/admin/user/a")))).await;
    let (_, status) = send(confluence(
        &sim,
        http.get(format!(
            "{api}/longtask/{}",
            task["id"].as_str().expect("id")
        )),
    ))
    .await;
    assert_eq!(status["percentageComplete"], 100, "done on the first poll");
    assert!(sim.user(Product::Confluence, "a").is_none());

    send(confluence(&sim, http.delete(format!("{api}/admin/user/b")))).await;
    assert_eq!(sim.pending_long_tasks(), 1);
    sim.complete_long_tasks();
    assert_eq!(sim.pending_long_tasks(), 0);
    assert!(sim.user(Product::Confluence, "b").is_none());
}

/// Confluence DC's LongTaskStatus: `successful` is true from the start and turns false only
/// on failure; no `finished`; done at `percentageComplete` 100. (Confluence's own task
/// classes `LongTaskFactory`/`ProgressMeter`; api-contracts.md D.)
/// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-longtask/
#[tokio::test]
async fn long_tasks_report_as_confluence_does() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    for name in ["a", "b"] {
        sim.seed_user(Product::Confluence, SimUser::new(name));
    }
    sim.set_long_task_polls(2);
    let poll = |id: String| {
        let http = http.clone();
        let url = format!("{api}/longtask/{id}");
        let sim = &sim;
        async move { send(confluence(sim, http.get(url))).await.1 }
    };
    let (_, task) = send(confluence(&sim, http.delete(format!("{api}/admin/user/a")))).await;
    let id = task["id"].as_str().expect("id").to_owned();
    let running = poll(id.clone()).await;
    assert_eq!(running["successful"], true, "true while running: {running}");
    assert!(running["percentageComplete"].as_u64() < Some(100));
    assert!(running.get("finished").is_none());
    assert!(sim.user(Product::Confluence, "a").is_some());
    let done = poll(id).await;
    assert_eq!(
        (
            done["successful"].clone(),
            done["percentageComplete"].clone()
        ),
        (true.into(), 100.into())
    );
    assert!(sim.user(Product::Confluence, "a").is_none());

    sim.set_long_tasks_fail(true);
    let (_, task) = send(confluence(&sim, http.delete(format!("{api}/admin/user/b")))).await;
    let id = task["id"].as_str().expect("id").to_owned();
    poll(id.clone()).await;
    let failed = poll(id).await;
    assert_eq!(failed["successful"], false, "{failed}");
    assert!(failed["percentageComplete"].as_u64() < Some(100));
    assert!(
        sim.user(Product::Confluence, "b").is_some(),
        "a failed task deletes nobody"
    );
}

/// `POST /admin/user` refuses a userName with upper-case letters, whitespace, any of
/// `\ , + < > ' "`, or "anonymous" (Confluence 9.4/10.0 REST docs, Admin User > Create user),
/// with a 400 in Confluence's error shape; nothing is created.
#[tokio::test]
async fn create_user_refuses_the_usernames_confluence_refuses() {
    let sim = start().await;
    let http = client();
    let api = format!("{}/rest/api", sim.confluence_url());
    for (name, rule) in [
        ("Ada", "upper case"),
        ("ADA.LOVELACE", "upper case"),
        ("ada lovelace", "whitespace"),
        (" ada", "whitespace"),
        ("ada\tl", "whitespace"),
        ("o'brien", "these characters"),
        ("ada,l", "these characters"),
        ("ada+test", "these characters"),
        ("a<b>", "these characters"),
        ("back\\slash", "these characters"),
        ("say\"hi\"", "these characters"),
        ("anonymous", "anonymous"),
        ("", "blank"),
    ] {
        let (status, body) = send(
            confluence(&sim, http.post(format!("{api}/admin/user"))).json(&json!({
                "userName": name, "fullName": "Some One", "email": "one@example.com", "password": "pw"
            })),
        )
        .await;
        assert_eq!(status, 400, "{name:?}: {body}");
        assert_eq!(body["statusCode"], 400);
        let message = body["message"].as_str().expect("message");
        assert!(message.starts_with("The userName should not"), "{message}");
        assert!(message.contains(rule), "{name:?}: {message}");
    }
    assert!(sim.users(Product::Confluence).is_empty());
    // What the rules allow: lower case, digits, dots, dashes, underscores, @.
    let (status, body) = send(
        confluence(&sim, http.post(format!("{api}/admin/user"))).json(&json!({
            "userName": "ada.lovelace-2_x@corp", "fullName": "Ada", "email": "ada@example.com", "password": "pw"
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}
