//! Retries over real loopback HTTP, with faults scripted through sim-kit.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use idsync_http::{HttpClient, HttpError, RequestCounter, RetryPolicy, build_client};
use sim_kit::{FaultKind, FaultRule, SimKit};

async fn server() -> (Arc<SimKit>, sim_kit::Served) {
    let kit = SimKit::new(Arc::new(|_| serde_json::json!({"error": "fault"})));
    let router = Router::new().route("/ok", get(|| async { "fine" })).layer(
        axum::middleware::from_fn_with_state(kit.clone(), sim_kit::middleware),
    );
    let served = sim_kit::serve(router, sim_kit::loopback_any_port())
        .await
        .expect("bind loopback");
    (kit, served)
}

fn client(max_attempts: usize) -> HttpClient {
    let policy = RetryPolicy {
        max_attempts,
        ..RetryPolicy::fast()
    };
    HttpClient::new(
        build_client(&Default::default()).expect("client"),
        policy,
        RequestCounter::new(),
    )
}

#[tokio::test]
async fn throttled_then_served_honours_retry_after() {
    let (kit, served) = server().await;
    kit.inject(
        FaultRule::once(FaultKind::Status {
            status: 429,
            retry_after: Some(1),
            body: None,
        })
        .times(2),
    );
    let http = client(5);
    let url = format!("{}/ok", served.base_url());
    let started = std::time::Instant::now();
    let response = http
        .send("ok", &url, |c| c.get(&url))
        .await
        .expect("served after the throttling");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "fine");
    assert_eq!(http.counter().get("ok"), 3, "two 429s then the answer");
    // Retry-After: 1 was obeyed twice (the fast backoff alone would take milliseconds).
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

#[tokio::test]
async fn dropped_connections_are_retried_then_reported() {
    let (kit, served) = server().await;
    kit.inject(FaultRule::once(FaultKind::Drop).times(0));
    let http = client(3);
    let url = format!("{}/ok", served.base_url());
    let error = http
        .send("ok", &url, |c| c.get(&url))
        .await
        .expect_err("every attempt is cut short");
    assert!(
        matches!(error, HttpError::Transport { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(http.counter().get("ok"), 3);
}

#[tokio::test]
async fn server_errors_exhaust_the_attempts() {
    let (kit, served) = server().await;
    kit.inject(
        FaultRule::once(FaultKind::Status {
            status: 500,
            retry_after: None,
            body: None,
        })
        .times(0),
    );
    let http = client(4);
    let url = format!("{}/ok", served.base_url());
    let error = http
        .send("ok", &url, |c| c.get(&url))
        .await
        .expect_err("always 500");
    match error {
        HttpError::Exhausted {
            status, attempts, ..
        } => {
            assert_eq!(status, 500);
            assert_eq!(attempts, 4);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn client_errors_are_returned_not_retried() {
    let (kit, served) = server().await;
    kit.inject(FaultRule::once(FaultKind::Status {
        status: 404,
        retry_after: None,
        body: None,
    }));
    let http = client(4);
    let url = format!("{}/ok", served.base_url());
    let response = http
        .send("ok", &url, |c| c.get(&url))
        .await
        .expect("a 404 is an answer");
    assert_eq!(response.status, 404);
    assert_eq!(http.counter().get("ok"), 1);
}
