//! Every request the Bitbucket target sends, checked against the official Bitbucket Data
//! Center 8.14 OpenAPI document (`shared/specs/bitbucket-dc-8.14-openapi.yaml`, beside the
//! repository): the method exists for the path template, required query parameters are
//! present and no undeclared ones are sent, and JSON bodies have the schema's required
//! properties and no property the schema does not name.

use std::path::PathBuf;

use atlassian_sim::{Product, RecordedRequest, SimUser};
use serde_json::Value;

use crate::bitbucket::lifecycle;
use crate::common::*;

fn spec_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/specs/bitbucket-dc-8.14-openapi.yaml"
    ))
}

fn load_spec() -> Value {
    let path = spec_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the Bitbucket 8.14 OpenAPI document is needed at {} (shared/specs beside the repository): {e}",
            path.display()
        )
    });
    serde_saphyr::from_str(&text).expect("the OpenAPI document parses")
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..16 {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return current;
        };
        let pointer = reference.trim_start_matches('#');
        current = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    current
}

/// The document's path template for a request path: `/bitbucket/rest/api/1.0/admin/users`
/// is `/api/latest/admin/users` (the server URL ends in `/rest`; `1.0` and `latest` are the
/// same API). Literal segments win over `{parameters}`.
fn template_for<'a>(spec: &'a Value, path: &str) -> Option<&'a str> {
    let rest = path.strip_prefix("/bitbucket/rest")?;
    let rest = match rest.strip_prefix("/api/1.0/") {
        Some(tail) => format!("/api/latest/{tail}"),
        None => rest.to_owned(),
    };
    let wanted: Vec<&str> = rest.split('/').collect();
    let paths = spec.get("paths")?.as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != wanted.len() {
                return None;
            }
            let mut literal = 0;
            for (p, w) in parts.iter().zip(&wanted) {
                if p.starts_with('{') && p.ends_with('}') {
                    continue;
                }
                if p != w {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn json_type_ok(schema: &Value, value: &Value) -> bool {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    }
}

/// Checks a JSON value against a schema: types, required properties, and that every property
/// sent is one the schema names (recursively through objects and arrays).
fn check_body(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if !json_type_ok(schema, value) {
        problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let (Some(props), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                problems.push(format!("{at}: required property '{required}' missing"));
            }
        }
        for (name, v) in object {
            match props.get(name) {
                Some(sub) => check_body(spec, sub, v, &format!("{at}.{name}"), problems),
                None => problems.push(format!("{at}: property '{name}' is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            check_body(spec, items, v, &format!("{at}[{i}]"), problems);
        }
    }
}

/// Everything wrong with one request, by the document.
fn check_request(spec: &Value, request: &RecordedRequest) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(template) = template_for(spec, &request.path) else {
        return vec![format!("path {} is not in the document", request.path)];
    };
    if let Some(sim_path) = &request.spec_path {
        assert_eq!(
            sim_path, template,
            "the simulator and this check map {} differently",
            request.path
        );
    }
    let path_item = &spec["paths"][template];
    let method = request.method.to_lowercase();
    let Some(operation) = path_item.get(&method) else {
        return vec![format!(
            "{} {template} is not in the document",
            request.method
        )];
    };
    let parameters: Vec<&Value> = path_item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(|p| resolve(spec, p))
        .collect();
    let query_params: Vec<&Value> = parameters
        .iter()
        .copied()
        .filter(|p| p["in"] == "query")
        .collect();
    for param in &query_params {
        let name = param["name"].as_str().unwrap_or_default();
        if param["required"] == true && !request.query.iter().any(|(k, _)| k == name) {
            problems.push(format!("required query parameter '{name}' missing"));
        }
    }
    for (name, value) in &request.query {
        match query_params.iter().find(|p| p["name"] == name.as_str()) {
            None => problems.push(format!("query parameter '{name}' is not in the document")),
            Some(param) => {
                let schema = resolve(spec, &param["schema"]);
                let ok = match schema.get("type").and_then(Value::as_str) {
                    Some("boolean") => value == "true" || value == "false",
                    Some("integer") => value.parse::<i64>().is_ok(),
                    _ => true,
                };
                if !ok {
                    problems.push(format!(
                        "query parameter '{name}'='{value}' is not a {}",
                        schema["type"]
                    ));
                }
            }
        }
    }
    let request_body = operation.get("requestBody").map(|b| resolve(spec, b));
    match (&request.body, request_body) {
        (Some(body), Some(declared)) => {
            match declared.pointer("/content/application~1json/schema") {
                Some(schema) => check_body(spec, schema, body, "body", &mut problems),
                None => problems.push("a JSON body was sent; the document takes none".into()),
            }
        }
        (Some(_), None) => problems.push("a body was sent; the operation takes none".into()),
        (None, Some(declared)) if declared["required"] == true => {
            problems.push("the operation requires a body; none was sent".into())
        }
        (None, _) => {}
    }
    problems
}

#[tokio::test]
async fn every_bitbucket_request_matches_the_8_14_openapi_document() {
    let spec = load_spec();
    let sim = start().await;

    // The whole lifecycle, plus paging, retries, adoption and the delete policy.
    lifecycle(&sim).await;
    for i in 0..30 {
        sim.seed_user(Product::Bitbucket, SimUser::new(&format!("p{i:02}")));
    }
    throttle_once(&sim, "/bitbucket/rest/api/1.0/admin/users", None);
    let bb = target(&sim, idsync_model::TargetKind::BitbucketDc);
    // What `idsync check` asks, too.
    assert!(bb.probe().await.ok());
    bb.read_state(&[]).await.expect("read state");
    ok(bb.as_ref(), create_user("p00")).await;
    let mut delete_policy = config(&sim, idsync_model::TargetKind::BitbucketDc);
    delete_policy.deprovision = idsync_config::BitbucketDeprovision::Delete;
    let deleting = build(&delete_policy);
    let key = create_and_key(deleting.as_ref(), create_user("gone")).await;
    ok(deleting.as_ref(), deactivate(&key, "gone")).await;

    let requests = sim.bitbucket_requests();
    assert!(requests.len() > 30, "the lifecycle sent {}", requests.len());
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        seen.insert(format!(
            "{} {}",
            request.method,
            template_for(&spec, &request.path).unwrap_or("?")
        ));
        let problems = check_request(&spec, request);
        if !problems.is_empty() {
            failures.push(format!(
                "{} {} {:?} {}: {}",
                request.method,
                request.path,
                request.query.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                request
                    .body
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default(),
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The check covered every kind of call the target makes.
    for call in [
        "GET /api/latest/admin/users",
        "POST /api/latest/admin/users",
        "PUT /api/latest/admin/users",
        "DELETE /api/latest/admin/users",
        "POST /api/latest/admin/users/rename",
        "GET /api/latest/admin/users/more-members",
        "GET /api/latest/admin/groups",
        "POST /api/latest/admin/groups",
        "DELETE /api/latest/admin/groups",
        "POST /api/latest/admin/groups/add-users",
        "POST /api/latest/admin/groups/remove-user",
        "GET /api/latest/admin/groups/more-members",
        "GET /api/latest/application-properties",
        "GET /api/latest/users",
        "GET /api/latest/admin/license",
    ] {
        assert!(seen.contains(call), "{call} was not exercised: {seen:?}");
    }
}

#[test]
fn the_check_catches_what_the_document_forbids() {
    let spec = load_spec();
    let request =
        |method: &str, path: &str, query: &[(&str, &str)], body: Option<Value>| RecordedRequest {
            method: method.into(),
            path: path.into(),
            spec_path: None,
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
            status: 200,
        };
    let good = request(
        "POST",
        "/bitbucket/rest/api/1.0/admin/users",
        &[
            ("name", "a"),
            ("displayName", "A"),
            ("emailAddress", "a@x"),
            ("password", "p"),
        ],
        None,
    );
    assert_eq!(check_request(&spec, &good), Vec::<String>::new());
    let missing = request(
        "POST",
        "/bitbucket/rest/api/1.0/admin/users",
        &[("name", "a"), ("foo", "1")],
        None,
    );
    let problems = check_request(&spec, &missing).join("; ");
    assert!(problems.contains("'displayName' missing"), "{problems}");
    assert!(
        problems.contains("'foo' is not in the document"),
        "{problems}"
    );
    let bad_body = request(
        "POST",
        "/bitbucket/rest/api/1.0/admin/groups/add-users",
        &[],
        Some(serde_json::json!({"group": "g", "user": ["x"]})),
    );
    let problems = check_request(&spec, &bad_body).join("; ");
    assert!(problems.contains("'users' missing"), "{problems}");
    assert!(
        problems.contains("'user' is not in the schema"),
        "{problems}"
    );
    let no_such = request("PATCH", "/bitbucket/rest/api/1.0/admin/users", &[], None);
    assert!(!check_request(&spec, &no_such).is_empty());
    let deactivate = request(
        "POST",
        "/bitbucket/rest/api/1.0/admin/users/deactivate",
        &[],
        None,
    );
    assert!(!check_request(&spec, &deactivate).is_empty());
}
