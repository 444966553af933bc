//! The admin API's OpenAPI document, snapshot-tested: any change to a route, a parameter or a
//! schema shows up as a diff of `tests/snapshots/openapi.json` to review. After a deliberate
//! change, `IDSYNC_UPDATE_SNAPSHOTS=1 cargo test -p idsync-server --test openapi` rewrites it.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let document = idsync_server::api::openapi::document();
    let text = serde_json::to_string_pretty(&document).expect("the document serializes") + "\n";
    let path = snapshot_path();
    if std::env::var_os("IDSYNC_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).expect("snapshot written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == text,
        "the OpenAPI document changed; review the diff below and, if it is intended, run IDSYNC_UPDATE_SNAPSHOTS=1 cargo test -p idsync-server --test openapi\n--- snapshot\n+++ now\n{}",
        diff(&expected, &text)
    );
}

/// The lines that differ, enough to see what changed.
fn diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut out = String::new();
    for i in 0..old.len().max(new.len()) {
        let (a, b) = (old.get(i), new.get(i));
        if a != b {
            if let Some(a) = a {
                out += &format!("-{a}\n");
            }
            if let Some(b) = b {
                out += &format!("+{b}\n");
            }
        }
        if out.len() > 4000 {
            out += "…\n";
            break;
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_1_and_every_operation_needs_the_token() {
    let document = serde_json::to_value(idsync_server::api::openapi::document()).expect("json");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("item") {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"admin_token": []}]),
                "{method} {path}"
            );
            assert!(operation["operationId"].is_string(), "{method} {path}");
        }
    }
}
