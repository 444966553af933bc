//! `POST /v1.0/$batch` — <https://learn.microsoft.com/graph/json-batching>
//!
//! Each inner request is dispatched through the simulator's own router, so it is
//! authenticated, counted and subject to injected faults on its own (a fault on
//! `/v1.0/users` makes that inner request answer 429 with `Retry-After` in its headers, as
//! Graph throttles batch items individually). Responses come back in shuffled order.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::GraphSim;
use crate::http::{GraphError, error_body};

const MAX_REQUESTS: usize = 20;

struct Inner {
    id: String,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn batch_error(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn parse(doc: &Value) -> Result<Vec<Inner>, GraphError> {
    let requests = doc
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| batch_error("Invalid batch payload format: 'requests' is missing."))?;
    if requests.is_empty() {
        return Err(batch_error("A batch must contain at least one request."));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(batch_error(format!(
            "The number of requests in a batch cannot exceed {MAX_REQUESTS}."
        )));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in requests {
        let text = |key: &str| -> Result<String, GraphError> {
            r.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| batch_error(format!("Each batch request needs a string '{key}'.")))
        };
        let id = text("id")?;
        let lowered = id.to_lowercase();
        if seen.contains(&lowered) {
            return Err(batch_error(format!(
                "Batch request id '{id}' is not unique."
            )));
        }
        let method = Method::from_bytes(text("method")?.to_uppercase().as_bytes())
            .map_err(|_| batch_error("Invalid method in a batch request."))?;
        let url = text("url")?;
        let headers: Vec<(String, String)> = match r.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            Some(_) => return Err(batch_error("'headers' must be an object.")),
        };
        let body = r.get("body").cloned().filter(|b| !b.is_null());
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            return Err(batch_error(format!(
                "Request '{id}' has a body but no Content-Type header."
            )));
        }
        let depends_on: Vec<String> = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_str().map(str::to_lowercase))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| batch_error("'dependsOn' must list request ids."))?,
            Some(_) => return Err(batch_error("'dependsOn' must be an array.")),
        };
        // Requests run in order, so a dependency must come earlier in the batch.
        if let Some(missing) = depends_on.iter().find(|d| !seen.contains(d)) {
            return Err(batch_error(format!(
                "Request '{id}' depends on '{missing}', which is not an earlier request of the batch."
            )));
        }
        seen.push(lowered);
        out.push(Inner {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    Ok(out)
}

/// `/users?$top=1`, `users?...` or an absolute Graph URL → `/v1.0/users?$top=1`.
fn inner_path(url: &str) -> String {
    let rest = match url.find("/v1.0/") {
        Some(i) => &url[i + "/v1.0".len()..],
        None => url,
    };
    if rest.starts_with('/') {
        format!("/v1.0{rest}")
    } else {
        format!("/v1.0/{rest}")
    }
}

async fn dispatch(
    sim: &GraphSim,
    outer: &HeaderMap,
    inner: &Inner,
) -> (u16, Map<String, Value>, Value) {
    let path = inner_path(&inner.url);
    if path.starts_with("/v1.0/$batch") {
        let body = error_body("BadRequest", "A batch cannot contain another batch.");
        return (400, Map::new(), body);
    }
    let mut builder = Request::builder().method(inner.method.clone()).uri(&path);
    for name in [header::AUTHORIZATION, header::HOST] {
        if let Some(v) = outer.get(&name) {
            builder = builder.header(name, v.clone());
        }
    }
    for (k, v) in &inner.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = inner
        .body
        .as_ref()
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let request = match builder.body(body) {
        Ok(r) => r,
        Err(_) => {
            let body = error_body("BadRequest", "Invalid request URL or headers.");
            return (400, Map::new(), body);
        }
    };
    let response = call(sim, request).await;
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for name in [
        "content-type",
        "retry-after",
        "location",
        "preference-applied",
    ] {
        if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            let key = match name {
                "content-type" => "Content-Type",
                "retry-after" => "Retry-After",
                "location" => "Location",
                _ => "Preference-Applied",
            };
            headers.insert(key.into(), Value::String(v.to_owned()));
        }
    }
    let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
        Ok(bytes) if bytes.is_empty() => Value::Null,
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        // A fault that breaks the body off: the batch service reports a gateway timeout.
        Err(_) => {
            let body = error_body("gatewayTimeout", "The inner request did not complete.");
            return (504, headers, body);
        }
    };
    (status, headers, body)
}

async fn call(sim: &GraphSim, request: Request) -> Response {
    use tower_service::Service;
    let mut router = sim.router();
    let ready =
        std::future::poll_fn(|cx| <axum::Router as Service<Request>>::poll_ready(&mut router, cx))
            .await;
    match ready {
        Ok(()) => match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    }
}

pub(crate) async fn batch(
    State(sim): State<GraphSim>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|_| batch_error("Invalid batch payload format: the body is not JSON."))?;
    let requests = parse(&doc)?;
    let mut failed: HashMap<String, bool> = HashMap::new();
    let mut responses = Vec::with_capacity(requests.len());
    for inner in &requests {
        let (status, headers_out, body) = if inner
            .depends_on
            .iter()
            .any(|d| failed.get(d) == Some(&true))
        {
            (
                424,
                Map::new(),
                error_body(
                    "FailedDependency",
                    "The request was not run because a request it depends on failed.",
                ),
            )
        } else {
            dispatch(&sim, &headers, inner).await
        };
        failed.insert(inner.id.to_lowercase(), status >= 400);
        let mut r = Map::new();
        r.insert("id".into(), Value::String(inner.id.clone()));
        r.insert("status".into(), json!(status));
        r.insert("headers".into(), Value::Object(headers_out));
        r.insert("body".into(), body);
        responses.push(Value::Object(r));
    }
    // The order of responses is arbitrary in Graph; shuffle so clients match on id.
    let mut rng = crate::generate::Rng::new(uuid::Uuid::new_v4().as_u64_pair().0);
    for i in (1..responses.len()).rev() {
        let j = rng.below(i + 1);
        responses.swap(i, j);
    }
    let mut response = Json(json!({ "responses": responses })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
