//! The service over loopback: graph-sim and atlassian-sim, a real config file and SQLite store
//! (the runner's end-to-end harness), `idsync_server::start` on port 0, and the admin API
//! called with reqwest as a console or a script would.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::harness::{App, World, add_user, tenant};
use common::{Service, filter_all, next_finished, on_clock};
use idsync_config::Config;
use idsync_model::TargetKind;
use idsync_runner::{RunStatus, Trigger};
use idsync_server::{Accepted, ManualClock, Request, ServeOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// alice, bob and carol.
const THREE_USERS: [&str; 3] = ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"];

/// A tenant with `users`, one Jira target, and one app `name` with `app_toml`.
async fn into_jira(
    users: &[&str],
    name: &str,
    app_toml: &str,
) -> (graph_sim::RunningGraphSim, World, Config) {
    let tenant = tenant().await;
    for upn in users {
        add_user(&tenant, upn);
    }
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, app_toml).named(name)]);
    (tenant, w, config)
}

/// A tenant with alice, bob and carol, one Jira target, and the app `main` with `app_toml`.
async fn three_users_into_jira(app_toml: &str) -> (graph_sim::RunningGraphSim, World, Config) {
    into_jira(&THREE_USERS, "main", app_toml).await
}

#[tokio::test]
async fn every_api_route_needs_the_admin_token() {
    let (_tenant, w, config) = three_users_into_jira("").await;
    let service = Service::start(&w, &config).await;

    let routes: [(reqwest::Method, &str); 21] = [
        (reqwest::Method::GET, "/api/v1/openapi.json"),
        (reqwest::Method::GET, "/api/v1/idps"),
        (reqwest::Method::GET, "/api/v1/apps"),
        (reqwest::Method::POST, "/api/v1/apps"),
        (reqwest::Method::GET, "/api/v1/apps/main"),
        (reqwest::Method::PUT, "/api/v1/apps/main"),
        (reqwest::Method::DELETE, "/api/v1/apps/main"),
        (reqwest::Method::POST, "/api/v1/apps/main/test"),
        (reqwest::Method::POST, "/api/v1/apps/main/runs"),
        (
            reqwest::Method::POST,
            "/api/v1/apps/main/users/alice@contoso.com/sync",
        ),
        (reqwest::Method::GET, "/api/v1/targets"),
        (reqwest::Method::POST, "/api/v1/targets"),
        (reqwest::Method::GET, "/api/v1/targets/jira"),
        (reqwest::Method::PUT, "/api/v1/targets/jira"),
        (reqwest::Method::DELETE, "/api/v1/targets/jira"),
        (reqwest::Method::POST, "/api/v1/targets/jira/test"),
        (reqwest::Method::GET, "/api/v1/runs"),
        (reqwest::Method::GET, "/api/v1/runs/1"),
        (reqwest::Method::GET, "/api/v1/runs/1/operations"),
        (reqwest::Method::POST, "/api/v1/runs/1/approve"),
        (reqwest::Method::POST, "/api/v1/runs/1/discard"),
    ];
    for (method, path) in &routes {
        for token in [None, Some("idsync_not-the-token"), Some("")] {
            let mut request = service.http.request(method.clone(), service.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("answers");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert!(response.headers().contains_key("www-authenticate"));
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
    }
    // An unknown route under /api/v1 is refused before it is found out not to exist.
    let response = service
        .http
        .get(service.url("/api/v1/nothing-here"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The OpenAPI document is served as the code generates it, to holders of the token.
    let (status, served) = service.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        served,
        serde_json::to_value(idsync_server::api::openapi::document()).expect("json")
    );
    let documented = served["paths"].as_object().map_or(0, |p| p.len());
    assert!(documented >= 12, "{documented} paths documented");
    // Every documented operation is among those checked above for the token (an unknown path
    // answers 401 too, so the list itself must be kept whole).
    let mut operations: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, methods) in served["paths"].as_object().into_iter().flatten() {
        let path = path
            .replace("{app}", "main")
            .replace("{target}", "jira")
            .replace("{id}", "1")
            .replace("{user}", "alice@contoso.com");
        for method in methods.as_object().into_iter().flatten().map(|(m, _)| m) {
            operations.insert((method.to_uppercase(), format!("/api/v1{path}")));
        }
    }
    let checked: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), (*p).to_owned()))
        .collect();
    let unchecked: Vec<_> = operations.difference(&checked).collect();
    assert!(
        unchecked.is_empty(),
        "documented, not checked for the token: {unchecked:?}"
    );

    // With the token, the same routes answer (no run 1 yet: 404 in the envelope).
    let (status, body) = service.get("/api/v1/runs/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    // A path or query axum cannot read answers in the envelope too.
    for path in ["/api/v1/runs/not-a-number", "/api/v1/runs?limit=many"] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
    let (status, _) = service.get("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Health and metrics are open: a load balancer and Prometheus have no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(service.get_open(path).await.0, StatusCode::OK, "{path}");
    }
    assert!(service.running.shutdown().await);
}

#[tokio::test]
async fn apps_targets_and_idps_are_listed_without_their_secrets() {
    let tenant = tenant().await;
    let w = World::new(&[TargetKind::JiraDc, TargetKind::BitbucketDc]).await;
    let config = w.write_config(&[App::new(&tenant, "schedule = \"30m\"\n")]);
    let service = Service::start(&w, &config).await;
    let mut seen = String::new();
    for path in [
        "/api/v1/idps",
        "/api/v1/apps",
        "/api/v1/apps/main",
        "/api/v1/targets",
        "/api/v1/targets/jira",
        "/api/v1/targets/bitbucket",
    ] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        seen += &body.to_string();
    }
    let sim = w.atl.config();
    let mut secrets = vec![tenant.credentials().client_secret, sim.jira_token.clone()];
    // The simulator's admin password may be its username, which is shown (not a secret).
    if sim.admin_password != sim.admin_user {
        secrets.push(sim.admin_password.clone());
    }
    for secret in secrets {
        assert!(!seen.contains(&secret), "a secret in an API answer: {seen}");
    }
    let (_, app) = service.get("/api/v1/apps/main").await;
    assert_eq!(app["client_secret"], "********");
    assert_eq!(app["provisioned"], "file");
    assert_eq!(app["schedule"], "30m");
    assert_eq!(app["targets"], json!(["jira", "bitbucket"]));
    let (_, target) = service.get("/api/v1/targets/bitbucket").await;
    assert_eq!(target["auth"], "basic");
    assert_eq!(target["credentials"], "********");

    // What the file provisions is changed in the file, and the answer says so.
    let (status, body) = service
        .call(reqwest::Method::PUT, "/api/v1/apps/main", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "provisioned_by_file");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("idsync.toml"), "{message}");
    let (status, body) = service
        .call(reqwest::Method::DELETE, "/api/v1/targets/jira", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = service.get("/api/v1/apps/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope")
    );

    // Testing a target's connection is what `idsync check` does for it.
    let (status, probe) = service.post("/api/v1/targets/jira/test", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(probe["ok"], true, "{probe}");
    assert!(probe["probe"]["product"].is_object(), "{probe}");
    service.running.shutdown().await;
}

#[tokio::test]
async fn the_schedule_fires_on_the_clock_and_counts_from_the_last_start() {
    let (tenant, w, config) = three_users_into_jira("schedule = \"30m\"\n").await;
    let start = time::OffsetDateTime::now_utc();
    let clock = ManualClock::new(start);
    let store = w.store(&config).await.clone();
    let service = Service::start_with(&w, &config, on_clock(&clock)).await;
    let mut events = service.running.coordinator.subscribe();

    // Never synced: the first scheduled run starts at once.
    let first = next_finished(&mut events).await;
    assert_eq!(first.trigger, Trigger::Schedule);
    let report = first.outcome.expect("the run works");
    assert_eq!(report.status, RunStatus::Done);
    assert!(w.user(TargetKind::JiraDc, "alice@contoso.com").is_some());

    // The next one is 30 minutes after that start, on the clock, and shown by the API.
    let (_, app) = service.get("/api/v1/apps/main").await;
    let next = app["next_run"].as_str().expect("a next run").to_owned();
    let expected = start + Duration::from_secs(30 * 60);
    assert_eq!(next, idsync_server::api::rfc3339(expected), "{app}");
    clock.advance(Duration::from_secs(29 * 60));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    // A scheduler that woke early would have triggered by now: the trigger marks the app as
    // running at once, before the run itself records anything.
    assert!(
        !service.running.coordinator.is_running("main"),
        "the schedule fired a minute early"
    );
    assert_eq!(service.running.next_runs.get("main"), Some(expected));
    assert_eq!(
        store.find_runs(&filter_all()).await.expect("history").len(),
        1
    );

    add_user(&tenant, "dave@contoso.com");
    clock.advance(Duration::from_secs(60));
    let second = next_finished(&mut events).await;
    assert_eq!(second.trigger, Trigger::Schedule);
    assert_eq!(second.outcome.expect("works").status, RunStatus::Done);
    assert!(w.user(TargetKind::JiraDc, "dave@contoso.com").is_some());
    let runs = store.find_runs(&filter_all()).await.expect("history");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.trigger == "schedule"));
    assert!(service.running.shutdown().await);
}

#[tokio::test]
async fn one_run_per_app_and_triggers_during_a_run_are_queued_once() {
    let (_tenant, w, config) = three_users_into_jira("").await;
    let store = w.store(&config).await.clone();
    let service = Service::start(&w, &config).await;
    let coordinator = service.running.coordinator.clone();
    let mut events = coordinator.subscribe();

    // Another process (the CLI) holds the app: the service's run waits for it.
    let lease = store.lock_app("main", false).await.expect("lock");
    let (status, body) = service.post("/api/v1/apps/main/runs", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], "started");
    assert!(coordinator.is_running("main"));
    let (_, body) = service.post("/api/v1/apps/main/runs", json!({})).await;
    assert_eq!(body["accepted"], "queued");
    for _ in 0..3 {
        assert_eq!(
            coordinator
                .trigger("main", Request::new(Trigger::Schedule))
                .expect("known app"),
            Accepted::AlreadyQueued
        );
    }
    assert!(
        coordinator
            .trigger("nope", Request::new(Trigger::Manual))
            .is_err()
    );
    drop(lease);

    let first = next_finished(&mut events).await;
    let second = next_finished(&mut events).await;
    // The queued run keeps the trigger it was queued with; the later ones joined it.
    assert_eq!(
        (first.trigger, second.trigger),
        (Trigger::Manual, Trigger::Manual)
    );
    coordinator.idle().await;
    assert!(!coordinator.is_running("main"));
    let runs = store.find_runs(&filter_all()).await.expect("history");
    assert_eq!(
        runs.len(),
        2,
        "five triggers, one run and one queued: {runs:?}"
    );
    assert!(runs.iter().all(|r| r.status == "done"), "{runs:?}");
    service.running.shutdown().await;
}

#[tokio::test]
async fn dry_run_hold_approve_and_discard_through_the_api() {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..10)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.guard]\nmax_deprovision_percent = 20.0\nmax_deprovision_count = 50\n",
    )]);
    let service = Service::start(&w, &config).await;
    let mut events = service.running.coordinator.subscribe();

    // A dry run answers with the plan and its reasons, and applies nothing.
    let (status, plan) = service
        .post("/api/v1/apps/main/runs", json!({"dry_run": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["status"], "planned");
    let operations = plan["targets"][0]["operations"]
        .as_array()
        .expect("operations");
    assert_eq!(operations.len(), 10, "{plan}");
    assert!(
        operations
            .iter()
            .all(|o| o["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    assert!(w.user(TargetKind::JiraDc, "user0@contoso.com").is_none());

    service.post("/api/v1/apps/main/runs", json!({})).await;
    assert_eq!(
        next_finished(&mut events)
            .await
            .outcome
            .expect("works")
            .status,
        RunStatus::Done
    );

    // 3 of 10 leave: over the guard's 20 %, the run is held.
    for id in &ids[..3] {
        tenant.disable_user(id).expect("disabled");
    }
    service.post("/api/v1/apps/main/runs", json!({})).await;
    let held = next_finished(&mut events).await.outcome.expect("works");
    assert_eq!(held.status, RunStatus::Held);
    let (_, page) = service.get("/api/v1/runs?status=held").await;
    assert_eq!(page["runs"][0]["id"], held.run_id);
    let (_, run) = service.get(&format!("/api/v1/runs/{}", held.run_id)).await;
    assert!(run["plan"].is_object() || run["plan"].is_array(), "{run}");
    assert!(w.is_active(TargetKind::JiraDc, "user0@contoso.com"));

    // Approving starts the approved run, which deactivates the three.
    let (status, body) = service
        .post(&format!("/api/v1/runs/{}/approve", held.run_id), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let approved = next_finished(&mut events).await;
    assert_eq!(approved.trigger, Trigger::Approval);
    assert_eq!(approved.outcome.expect("works").status, RunStatus::Done);
    for i in 0..3 {
        assert!(!w.is_active(TargetKind::JiraDc, &format!("user{i}@contoso.com")));
    }
    // An approval is used once: approving again is refused, in the envelope.
    let (status, body) = service
        .post(&format!("/api/v1/runs/{}/approve", held.run_id), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "not_approvable");

    // Another hold, discarded: its plan can no longer be approved.
    for id in &ids[3..7] {
        tenant.disable_user(id).expect("disabled");
    }
    service.post("/api/v1/apps/main/runs", json!({})).await;
    let held = next_finished(&mut events).await.outcome.expect("works");
    assert_eq!(held.status, RunStatus::Held);
    let (status, body) = service
        .post(&format!("/api/v1/runs/{}/discard", held.run_id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "discarded");
    let (status, body) = service
        .post(&format!("/api/v1/runs/{}/approve", held.run_id), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(w.is_active(TargetKind::JiraDc, "user3@contoso.com"));
    service.running.shutdown().await;
}

#[tokio::test]
async fn history_filters_pages_and_exports_as_csv() {
    let tenant = tenant().await;
    for upn in THREE_USERS {
        add_user(&tenant, upn);
    }
    let w = World::new(&[TargetKind::JiraDc, TargetKind::ConfluenceDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    let service = Service::start(&w, &config).await;
    let mut events = service.running.coordinator.subscribe();
    service.post("/api/v1/apps/main/runs", json!({})).await;
    let first = next_finished(&mut events).await.outcome.expect("works");
    add_user(&tenant, "dave@contoso.com");
    service.post("/api/v1/apps/main/runs", json!({})).await;
    let second = next_finished(&mut events).await.outcome.expect("works");
    service
        .post("/api/v1/apps/main/runs", json!({"dry_run": true}))
        .await;

    let ids = |page: &Value| -> Vec<i64> {
        page["runs"]
            .as_array()
            .map(|runs| runs.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let (_, all) = service.get("/api/v1/runs").await;
    assert_eq!(ids(&all).len(), 3);
    let (_, dave) = service.get("/api/v1/runs?user=DAVE@contoso.com").await;
    assert_eq!(ids(&dave), vec![second.run_id]);
    let (_, alice) = service
        .get("/api/v1/runs?user=alice@contoso.com&kind=create_user&target=confluence")
        .await;
    assert_eq!(ids(&alice), vec![first.run_id]);
    let (_, none) = service.get("/api/v1/runs?trigger=schedule").await;
    assert_eq!(ids(&none), Vec::<i64>::new());
    let (_, planned) = service.get("/api/v1/runs?status=planned&app=main").await;
    assert_eq!(ids(&planned).len(), 1);

    // Pages of one, newest first, each pointing at the next.
    let (_, page1) = service.get("/api/v1/runs?limit=1").await;
    let before = page1["next_before"].as_i64().expect("a next page");
    let (_, page2) = service
        .get(&format!("/api/v1/runs?limit=1&before={before}"))
        .await;
    let (_, page3) = service
        .get(&format!(
            "/api/v1/runs?limit=1&before={}",
            page2["next_before"].as_i64().expect("next")
        ))
        .await;
    assert_eq!(page3["next_before"], Value::Null);
    let mut seen = [ids(&page1), ids(&page2), ids(&page3)].concat();
    seen.dedup();
    assert_eq!(seen, ids(&all));
    let (status, body) = service.get("/api/v1/runs?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "limit");

    // The operations of a run, as CSV: a header and one line per operation.
    let response = service
        .http
        .get(service.url(&format!(
            "/api/v1/runs/{}/operations?format=csv",
            first.run_id
        )))
        .bearer_auth(&service.token)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    let csv = response.text().await.expect("text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,target,kind,subject,status,error,duration_ms,reason"
    );
    let (_, json_ops) = service
        .get(&format!("/api/v1/runs/{}/operations", first.run_id))
        .await;
    let count = json_ops["operations"].as_array().map_or(0, Vec::len);
    assert!(count >= 6, "{json_ops}");
    assert_eq!(lines.len(), count + 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("jira,create_user,alice@contoso.com,done")),
        "{csv}"
    );
    let (status, body) = service
        .get(&format!(
            "/api/v1/runs/{}/operations?format=xml",
            first.run_id
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "format");
    service.running.shutdown().await;
}

#[tokio::test]
async fn metrics_count_runs_and_operations() {
    // A name of its own: the recorder is shared by every service this test binary starts.
    let (_tenant, w, config) = into_jira(&THREE_USERS, "metered", "").await;
    // Jira throttles once: the wait before the retry is counted.
    w.atl
        .kit()
        .inject(sim_kit::FaultRule::once(sim_kit::FaultKind::Status {
            status: 429,
            retry_after: Some(0),
            body: None,
        }));
    let service = Service::start(&w, &config).await;
    let mut events = service.running.coordinator.subscribe();
    service.post("/api/v1/apps/metered/runs", json!({})).await;
    assert_eq!(
        next_finished(&mut events)
            .await
            .outcome
            .expect("works")
            .status,
        RunStatus::Done
    );
    service
        .assert_metrics(&[
            "idsync_runs_total{app=\"metered\",trigger=\"manual\",status=\"done\"} 1",
            "idsync_operations_total{target=\"jira\",kind=\"create_user\",result=\"done\"}",
            "idsync_last_success_timestamp_seconds{app=\"metered\"}",
            "idsync_run_duration_seconds_bucket{app=\"metered\",trigger=\"manual\"",
            "idsync_http_requests_total{service=\"graph\",instance=\"metered\"}",
            "idsync_http_requests_total{service=\"jira-dc\",instance=\"jira\"}",
            "idsync_http_throttle_waits_total{service=\"jira-dc\",instance=\"jira\"}",
            "idsync_http_retry_wait_seconds_count{service=\"jira-dc\",instance=\"jira\"}",
        ])
        .await;
    service.running.shutdown().await;
}

#[tokio::test]
async fn a_run_still_waiting_for_its_app_at_a_stop_applies_nothing() {
    let (_tenant, w, config) = three_users_into_jira("").await;
    let store = w.store(&config).await.clone();
    let service = Service::start(&w, &config).await;
    let lease = store.lock_app("main", false).await.expect("lock");
    service.post("/api/v1/apps/main/runs", json!({})).await;
    let stop = tokio::spawn(service.running.shutdown());
    // The stop waits for the run, which waits for the lock.
    tokio::task::yield_now().await;
    assert!(!stop.is_finished());
    drop(lease);
    assert!(
        stop.await.expect("joins"),
        "the run ended within the grace period"
    );
    let runs = store.find_runs(&filter_all()).await.expect("history");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "interrupted");
    assert!(
        w.usernames(TargetKind::JiraDc).is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_stop_in_the_middle_of_a_run_ends_it_interrupted_and_the_next_run_finishes_it() {
    let tenant = tenant().await;
    for i in 0..40 {
        add_user(&tenant, &format!("user{i}@contoso.com"));
    }
    let mut w = World::new(&[TargetKind::JiraDc]).await;
    // One operation at a time, each slow: the run is still applying when the stop comes.
    w.target_toml.insert("jira", "concurrency = 1".into());
    let config = w.write_config(&[App::new(&tenant, "")]);
    let store = w.store(&config).await.clone();
    w.atl.kit().set_latency(Duration::from_millis(30));
    let service = Service::start(&w, &config).await;
    let mut events = service.running.coordinator.subscribe();
    service.post("/api/v1/apps/main/runs", json!({})).await;
    // Wait (bounded) until a few accounts exist: the run is applying.
    for _ in 0..1000 {
        if w.usernames(TargetKind::JiraDc).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        w.usernames(TargetKind::JiraDc).len() >= 3,
        "the run started applying"
    );
    let coordinator = service.running.coordinator.clone();
    assert!(
        service.running.shutdown().await,
        "the run stopped within the grace period"
    );
    let stopped = next_finished(&mut events)
        .await
        .outcome
        .expect("the run ends");
    assert_eq!(stopped.status, RunStatus::Interrupted);
    let created = w.usernames(TargetKind::JiraDc).len();
    assert!(
        created < 40,
        "the rest was not sent: {created} of 40 created"
    );
    let run = store
        .run(stopped.run_id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(run.status, "interrupted");
    let operations = store.operations(stopped.run_id).await.expect("read");
    let skipped = operations.iter().filter(|o| o.status == "skipped").count();
    let done = operations.iter().filter(|o| o.status == "done").count();
    assert!(skipped > 0 && done > 0, "{done} done, {skipped} skipped");
    assert!(
        operations
            .iter()
            .filter(|o| o.status == "skipped")
            .all(|o| o.error.as_deref().is_some_and(|e| e.contains("stopping")))
    );
    // A stopped coordinator refuses new work.
    assert!(matches!(
        coordinator.trigger("main", Request::new(Trigger::Manual)),
        Err(idsync_server::TriggerError::Stopping)
    ));

    // The next run (the next start of the service) does what was left.
    w.atl.kit().set_latency(Duration::ZERO);
    let next = w.sync_ok(&config, "main").await;
    assert_eq!(next.status, RunStatus::Done);
    assert_eq!(w.usernames(TargetKind::JiraDc).len(), 40);
    w.assert_converged(&config).await;
}

#[tokio::test]
async fn two_entra_tenants_feed_one_target_each_on_its_own_schedule() {
    let first = tenant().await;
    let second = tenant().await;
    add_user(&first, "ada@contoso.com");
    add_user(&second, "ada@contoso.com");
    add_user(&second, "bea@fabrikam.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[
        App::new(&first, "schedule = \"30m\"\n").named("contoso"),
        App::new(&second, "schedule = \"0 * * * *\"\n").named("fabrikam"),
    ]);
    let start = time::OffsetDateTime::now_utc();
    let clock = ManualClock::new(start);
    let service = Service::start_with(&w, &config, on_clock(&clock)).await;
    let mut events = service.running.coordinator.subscribe();

    let (_, idps) = service.get("/api/v1/idps").await;
    let apps: Vec<&str> = idps["idps"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["app"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(apps, ["contoso", "fabrikam"], "{idps}");

    // The interval app has never run: it runs at once. The cron app waits for the hour.
    let first_run = next_finished(&mut events).await;
    assert_eq!(first_run.app, "contoso");
    assert_eq!(first_run.outcome.expect("works").status, RunStatus::Done);
    let (_, fabrikam) = service.get("/api/v1/apps/fabrikam").await;
    let next_hour = start
        .replace_minute(0)
        .expect("minute")
        .replace_second(0)
        .expect("second")
        .replace_nanosecond(0)
        .expect("nanosecond")
        + Duration::from_secs(3600);
    assert_eq!(fabrikam["next_run"], idsync_server::api::rfc3339(next_hour));
    clock.advance(Duration::try_from(next_hour - start).expect("positive"));
    // Within the hour contoso's 30 minutes may come round too: wait for fabrikam's run.
    let mut second_run = next_finished(&mut events).await;
    if second_run.app == "contoso" {
        second_run = next_finished(&mut events).await;
    }
    assert_eq!(second_run.app, "fabrikam");
    let report = second_run.outcome.expect("works");
    assert_eq!(report.status, RunStatus::Done);
    // First owner wins: ada's account belongs to contoso; fabrikam adds only bea.
    assert_eq!(
        w.usernames(TargetKind::JiraDc),
        vec!["ada@contoso.com", "bea@fabrikam.com"]
    );
    let (_, history) = service
        .get("/api/v1/runs?trigger=schedule&app=fabrikam")
        .await;
    assert_eq!(history["runs"].as_array().map_or(0, Vec::len), 1);
    service.running.shutdown().await;
}

#[tokio::test]
async fn with_a_certificate_and_key_the_service_speaks_https_only() {
    let (_tenant, w, config) = into_jira(&[], "main", "").await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let tls = idsync_server::tls::TlsFiles {
        cert: fixtures.join("tls-cert.pem"),
        key: fixtures.join("tls-key.pem"),
    };
    let service = Service::start_with(
        &w,
        &config,
        ServeOptions {
            tls: Some(tls.clone()),
            ..ServeOptions::default()
        },
    )
    .await;
    let port = service.running.addr.port();
    let pem = std::fs::read(&tls.cert).expect("certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let response = client
        .get(format!("https://localhost:{port}/api/v1/apps"))
        .bearer_auth(&service.token)
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(response.status(), StatusCode::OK);
    // Plain HTTP to the same port gets no answer.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
    service.running.shutdown().await;

    // A key that is not there stops the start, naming the file.
    let store = w.store(&config).await.clone();
    let missing = idsync_server::start(
        Arc::new(config.clone()),
        None,
        store,
        ServeOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            tls: Some(idsync_server::tls::TlsFiles {
                cert: tls.cert.clone(),
                key: fixtures.join("no-such-key.pem"),
            }),
            ..ServeOptions::default()
        },
    )
    .await;
    let error = match missing {
        Ok(_) => panic!("started without its key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("no-such-key.pem"), "{error}");
}

#[tokio::test]
async fn a_sign_in_syncs_one_user_answers_repeats_from_memory_and_is_busy_behind_a_run() {
    // A name of its own (the metrics recorder is shared by every service this binary starts),
    // and no waiting for the lock, so that the busy answer comes at once.
    let (_tenant, w, config) =
        into_jira(&THREE_USERS, "signin", "login_sync_wait_seconds = 0\n").await;
    let store = w.store(&config).await.clone();
    let service = Service::start(&w, &config).await;

    let path = "/api/v1/apps/signin/users/alice@contoso.com/sync";
    let (status, body) = service.post(path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cached"], false);
    assert_eq!(body["outcome"], "synced");
    assert_eq!(body["resolved_by"], "user_principal_name");
    assert_eq!(body["run"]["trigger"], "login");
    assert_eq!(body["run"]["status"], "done");
    let ops = &body["run"]["targets"][0]["operations"];
    assert_eq!(ops[0]["op"], "create_user", "{body}");
    assert_eq!(ops[0]["user"], "alice@contoso.com");
    assert_eq!(ops[0]["status"], "done");
    assert!(
        ops[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert!(w.user(TargetKind::JiraDc, "alice@contoso.com").is_some());
    // Nobody else was created.
    assert!(w.user(TargetKind::JiraDc, "bob@contoso.com").is_none());
    let run_id = body["run"]["run_id"].clone();

    // Again within login_sync_cache_seconds, in other case: from memory, no second run.
    let (status, again) = service
        .post(
            "/api/v1/apps/signin/users/ALICE@contoso.com/sync",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["cached"], true);
    assert_eq!(again["run"]["run_id"], run_id);
    let (_, runs) = service.get("/api/v1/runs?trigger=login").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");

    // Unknown users and apps.
    let (status, body) = service
        .post(
            "/api/v1/apps/signin/users/nobody@contoso.com/sync",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_user", "{body}");
    let (status, _) = service
        .post("/api/v1/apps/nope/users/alice@contoso.com/sync", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A run holds the app: busy, with the run named, and nothing done.
    let lease = store.lock_app("signin", false).await.expect("lock");
    let (status, body) = service
        .post("/api/v1/apps/signin/users/bob@contoso.com/sync", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    assert!(w.user(TargetKind::JiraDc, "bob@contoso.com").is_none());
    drop(lease);
    let (status, body) = service
        .post("/api/v1/apps/signin/users/bob@contoso.com/sync", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cached"], false);

    service
        .assert_metrics(&[
            "idsync_login_sync_duration_seconds_bucket{app=\"signin\"",
            "idsync_login_sync_duration_seconds_count{app=\"signin\"} 4",
            "idsync_runs_total{app=\"signin\",trigger=\"login\",status=\"done\"} 2",
        ])
        .await;
    service.running.shutdown().await;
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused_before_it_is_read() {
    let (_tenant, w, config) = into_jira(&[], "main", "").await;
    let service = Service::start(&w, &config).await;
    // 64 KiB is far more than any entry or run request needs.
    let big = json!({ "name": "x".repeat(70 * 1024) });
    let (status, body) = service.post("/api/v1/apps", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    // Nothing was created.
    let (_, apps) = service.get("/api/v1/apps").await;
    assert_eq!(apps["apps"].as_array().map_or(0, Vec::len), 1);
    service.running.shutdown().await;
}

#[tokio::test]
async fn readyz_answers_503_naming_the_store_once_its_file_is_gone() {
    let (_tenant, w, config) = into_jira(&[], "main", "").await;
    let service = Service::start(&w, &config).await;
    let (status, ready) = service.readyz().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready, json!({"store": "ok", "config": "loaded", "apps": 1}));

    // The store's file goes (a volume unmounted, a clean-up too eager). SQLite goes on with
    // the open file, so every query still works: only the check of the file tells that
    // nothing recorded now would outlive the process.
    let db = config.data_dir.join("idsync.db");
    std::fs::remove_file(&db).expect("the database file removed");
    let (status, body) = service.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&db.display().to_string()), "{message}");
    // The process itself is up.
    assert_eq!(service.get_open("/healthz").await.0, StatusCode::OK);
    service.running.shutdown().await;
}

#[tokio::test]
async fn once_stopping_no_sync_dry_run_or_sign_in_sync_starts_while_the_api_still_answers() {
    let (tenant, w, config) = three_users_into_jira("").await;
    let store = w.store(&config).await.clone();
    let service = Service::start(&w, &config).await;
    // A run waits for the app (held as an `idsync sync` would hold it): the stop waits for
    // that run, and the API answers meanwhile.
    let lease = store.lock_app("main", false).await.expect("lock");
    let (status, body) = service.post("/api/v1/apps/main/runs", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let Service { running, api } = service;
    let stop = tokio::spawn(running.shutdown());
    // Wait (bounded) for the stop to begin: /readyz says so, for a load balancer to see.
    let mut ready = api.readyz().await;
    for _ in 0..1000 {
        if ready.0 != StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = api.readyz().await;
    }
    assert_eq!(ready.0, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.1);
    assert_eq!(ready.1["error"]["code"], "stopping", "{}", ready.1);

    let graph_requests = tenant.kit().count("total");
    for (path, body) in [
        ("/api/v1/apps/main/runs", json!({})),
        ("/api/v1/apps/main/runs", json!({"dry_run": true})),
        ("/api/v1/apps/main/users/alice@contoso.com/sync", json!({})),
        // Refused before anything is approved (no run 1 is held: it would be a 404 or 409).
        ("/api/v1/runs/1/approve", json!({})),
        // Connection tests read the source and the targets: work a stop would wait for.
        ("/api/v1/apps/main/test", json!({})),
        ("/api/v1/targets/jira/test", json!({})),
    ] {
        let (status, answer) = api.post(path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} {body}: {answer}"
        );
        assert_eq!(
            answer["error"]["code"], "stopping",
            "{path} {body}: {answer}"
        );
    }
    // What starts nothing is still answered.
    assert_eq!(api.get("/api/v1/runs").await.0, StatusCode::OK);
    assert!(!stop.is_finished(), "the stop waits for the run");
    // Nothing refused read the source.
    assert_eq!(tenant.kit().count("total"), graph_requests);

    drop(lease);
    assert!(stop.await.expect("joins"), "the run ended within the grace");
    // Only the run started before the stop is in the history, and it did nothing.
    let runs = store.find_runs(&filter_all()).await.expect("history");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, "interrupted");
    assert!(!runs[0].dry_run);
    assert!(w.usernames(TargetKind::JiraDc).is_empty());
}

#[tokio::test]
async fn a_stop_during_a_throttled_source_read_ends_the_run_at_once_with_nothing_planned() {
    let (tenant, w, config) = three_users_into_jira("").await;
    let store = w.store(&config).await.clone();
    // Graph throttles every read, asking for an hour: the run would wait out its retries.
    tenant.kit().inject(
        sim_kit::FaultRule::once(sim_kit::FaultKind::Status {
            status: 429,
            retry_after: Some(3600),
            body: None,
        })
        .on_path("/v1.0/")
        .times(0),
    );
    let service = Service::start(&w, &config).await;
    let mut events = service.running.coordinator.subscribe();
    let (status, body) = service.post("/api/v1/apps/main/runs", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Wait (bounded) for Graph to have throttled a read: the run waits to retry it.
    for _ in 0..1000 {
        if tenant.kit().count_matching("/v1.0/") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let graph_requests = tenant.kit().count_matching("/v1.0/");
    assert!(graph_requests > 0, "the run read the source");

    assert!(
        service.running.shutdown().await,
        "the run ended within the grace"
    );
    let stopped = next_finished(&mut events)
        .await
        .outcome
        .expect("the run ends");
    assert_eq!(stopped.status, RunStatus::Interrupted);
    let run = store
        .run(stopped.run_id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(run.status, "interrupted");
    let error = run.error.unwrap_or_default();
    assert!(error.contains("while the run read its source"), "{error}");
    // A read cut short plans nothing (above all, no deactivations), sends nothing, and is
    // not kept as the baseline of the next read.
    assert!(
        store
            .operations(stopped.run_id)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(w.usernames(TargetKind::JiraDc).is_empty());
    assert!(store.source_state("main").await.expect("read").is_none());
    assert_eq!(tenant.kit().count_matching("/v1.0/"), graph_requests);

    // Graph answers again: the next run (the next start) reads and syncs everyone.
    tenant.kit().clear_faults();
    let next = w.sync_ok(&config, "main").await;
    assert_eq!(next.status, RunStatus::Done);
    assert_eq!(w.usernames(TargetKind::JiraDc).len(), 3);
}
