//! Helpers shared by the integration tests: a started simulator and authenticated clients.
#![allow(dead_code)]

use atlassian_sim::{AtlassianSim, RunningAtlassianSim, SimConfig};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

pub async fn start() -> RunningAtlassianSim {
    AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("simulator starts")
}

pub fn client() -> Client {
    Client::new()
}

pub fn jira(sim: &RunningAtlassianSim, builder: RequestBuilder) -> RequestBuilder {
    builder.bearer_auth(&sim.config().jira_token)
}

/// Basic auth of the administrator: Bitbucket refuses HTTP access tokens on `/admin/`.
pub fn bitbucket(sim: &RunningAtlassianSim, builder: RequestBuilder) -> RequestBuilder {
    builder.basic_auth(&sim.config().admin_user, Some(&sim.config().admin_password))
}

pub fn confluence(sim: &RunningAtlassianSim, builder: RequestBuilder) -> RequestBuilder {
    builder.bearer_auth(&sim.config().confluence_token)
}

pub fn scim(sim: &RunningAtlassianSim, builder: RequestBuilder) -> RequestBuilder {
    builder.bearer_auth(&sim.config().scim_token)
}

/// Status and JSON body (Null when empty).
pub async fn parts(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub async fn send(builder: RequestBuilder) -> (u16, Value) {
    parts(builder.send().await.expect("request sent")).await
}
