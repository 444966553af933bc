//! `POST /v1.0/$batch`: per-item statuses, dependsOn, limits, per-item throttling.

mod common;

use graph_sim::TenantSpec;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Harness, Reply, start};

async fn post_batch(h: &Harness, body: Value) -> Reply {
    let resp = h
        .http
        .post(format!("{}/v1.0/$batch", h.sim.base_url))
        .bearer_auth(&h.token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    common::reply(resp).await
}

fn by_id(r: &Reply) -> std::collections::BTreeMap<String, Value> {
    r.body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|x| (x["id"].as_str().expect("id").to_owned(), x.clone()))
        .collect()
}

#[tokio::test]
async fn items_answer_individually() {
    let h = start(&TenantSpec::default()).await;
    let user = h.sim.user_ids()[0].clone();
    let group = h.sim.group_ids()[0].clone();
    let r = post_batch(
        &h,
        json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{user}?$select=id,accountEnabled")},
            {"id": "2", "method": "GET", "url": format!("groups/{group}/members?$select=id"),
             "headers": {"ConsistencyLevel": "eventual"}},
            {"id": "3", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
            {"id": "4", "dependsOn": ["3"], "method": "GET", "url": "/users"},
        ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = by_id(&r);
    assert_eq!(got.len(), 4);
    assert_eq!(got["1"]["status"], 200);
    assert_eq!(got["1"]["body"]["id"], user.as_str());
    assert!(got["1"]["body"]["accountEnabled"].is_boolean());
    assert_eq!(got["2"]["status"], 200);
    assert!(got["2"]["body"]["value"].is_array());
    assert_eq!(got["3"]["status"], 404);
    assert_eq!(
        got["3"]["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(got["4"]["status"], 424);
}

#[tokio::test]
async fn malformed_batches_fail_as_a_whole() {
    let h = start(&TenantSpec::default()).await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let r = post_batch(&h, json!({ "requests": many })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post_batch(
        &h,
        json!({"requests": [
            {"id": "a", "method": "GET", "url": "/users"},
            {"id": "A", "method": "GET", "url": "/groups"},
        ]}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "ids are case-insensitive"
    );
    let r = post_batch(&h, json!({"nope": []})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn items_are_throttled_on_their_own() {
    let h = start(&TenantSpec::default()).await;
    h.sim.kit().inject(
        graph_sim::sim_kit::FaultRule::once(graph_sim::sim_kit::FaultKind::Status {
            status: 429,
            retry_after: Some(3),
            body: None,
        })
        .on_path("/v1.0/groups"),
    );
    let r = post_batch(
        &h,
        json!({"requests": [
            {"id": "u", "method": "GET", "url": "/users?$top=1"},
            {"id": "g", "method": "GET", "url": "/groups?$top=1"},
        ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let got = by_id(&r);
    assert_eq!(got["u"]["status"], 200);
    assert_eq!(got["g"]["status"], 429);
    assert_eq!(got["g"]["headers"]["Retry-After"], "3");
    assert_eq!(got["g"]["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(h.sim.kit().count("POST /v1.0/$batch"), 1);
    assert_eq!(h.sim.kit().count("GET /v1.0/users"), 1);
}
