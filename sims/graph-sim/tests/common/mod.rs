//! Helpers shared by the integration tests: a started simulator and a small Graph client that
//! speaks plain HTTP through reqwest, as the product's client does.
#![allow(dead_code)]

use graph_sim::{GraphSim, RunningGraphSim, TenantSpec};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Harness {
    pub sim: RunningGraphSim,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
    }

    pub fn values(&self) -> &Vec<Value> {
        self.body["value"].as_array().expect("a collection page")
    }

    pub fn next_link(&self) -> Option<String> {
        self.body["@odata.nextLink"].as_str().map(str::to_owned)
    }

    pub fn delta_link(&self) -> Option<String> {
        self.body["@odata.deltaLink"].as_str().map(str::to_owned)
    }
}

pub async fn start(spec: &TenantSpec) -> Harness {
    start_sim(GraphSim::new(spec)).await
}

pub async fn start_sim(sim: GraphSim) -> Harness {
    let sim = sim.start().await.expect("simulator starts");
    let http = reqwest::Client::new();
    let mut h = Harness {
        sim,
        http,
        token: String::new(),
    };
    h.token = h.fetch_token().await;
    h
}

impl Harness {
    pub fn token_url(&self) -> String {
        self.sim.token_url()
    }

    pub async fn token_request(&self, url: &str, form: &[(&str, &str)]) -> Reply {
        let resp = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .expect("token request sent");
        reply(resp).await
    }

    pub async fn fetch_token(&self) -> String {
        let c = self.sim.credentials();
        let r = self
            .token_request(
                &self.token_url(),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &c.client_id),
                    ("client_secret", &c.client_secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "token: {}", r.body);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// GET a path (relative to the base URL) or an absolute link, with the bearer token.
    pub async fn get(&self, path_or_url: &str) -> Reply {
        self.get_with(path_or_url, &[]).await
    }

    pub async fn get_with(&self, path_or_url: &str, headers: &[(&str, &str)]) -> Reply {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.sim.base_url, path_or_url)
        };
        let mut req = self.http.get(&url).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.expect("request sent")).await
    }

    /// Follows nextLinks verbatim; returns all items and the pages' sizes.
    pub async fn get_all(&self, first: &str) -> (Vec<Value>, Vec<usize>) {
        let mut items = Vec::new();
        let mut sizes = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next {
            let r = self.get(&url).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
            sizes.push(r.values().len());
            items.extend(r.values().iter().cloned());
            next = r.next_link();
            assert!(sizes.len() < 100_000, "paging does not end");
        }
        (items, sizes)
    }

    /// Runs one delta round from `first` to its deltaLink, checking that every page has
    /// exactly one of nextLink / deltaLink. Returns the items and the deltaLink.
    pub async fn delta_round(&self, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut url = first.to_owned();
        for _ in 0..100_000 {
            let r = self.get_with(&url, headers).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
            items.extend(r.values().iter().cloned());
            match (r.next_link(), r.delta_link()) {
                (Some(next), None) => url = next,
                (None, Some(delta)) => return (items, delta),
                other => panic!("page must have exactly one link, got {other:?}"),
            }
        }
        panic!("delta round does not end");
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.sim.base_url, path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("control request sent")).await
    }
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}
