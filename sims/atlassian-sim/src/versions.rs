//! Product versions. The simulator runs each product at a version (by default a current one;
//! `AtlassianSim::set_version`, `PUT /_sim/{product}/version` or `--version`), reports it where
//! the product does, and serves only the REST resources that version has: what arrived later
//! answers 404, as the product answers for a resource it does not know.
//!
//! When each resource arrived: api-contracts.md C and D ("Version gates"): Confluence's
//! disable/enable/delete in 8.2 (CONFSERVER-54928), create user and `/user/list` in 8.4
//! (CONFSERVER-87291/87292), user-group membership changes and user update in 9.0 (first in
//! the 9.x references), `/server-information` in 9.1 (its model class says "since 9.1.0");
//! Jira's `/user/list` in 10.3.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::common::json_response;
use crate::{Inner, Product};

/// `major.minor.patch`.
pub type Version = (u32, u32, u32);

/// The version each product runs at unless told otherwise.
pub(crate) fn default_version(product: Product) -> Version {
    match product {
        Product::Jira => (10, 3, 0),
        Product::Confluence => (9, 2, 0),
        Product::Bitbucket => (9, 4, 0),
        Product::Scim => (0, 0, 0),
    }
}

/// Reads `"8.3.1"`, `"9.0"`.
pub fn parse(text: &str) -> Option<Version> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

pub(crate) fn text((major, minor, patch): Version) -> String {
    format!("{major}.{minor}.{patch}")
}

/// (method, matched route, the version that brought it).
const SINCE: [(&str, &str, Version); 10] = [
    (
        "PUT",
        "/confluence/rest/api/admin/user/{username}/disable",
        (8, 2, 0),
    ),
    (
        "PUT",
        "/confluence/rest/api/admin/user/{username}/enable",
        (8, 2, 0),
    ),
    (
        "DELETE",
        "/confluence/rest/api/admin/user/{username}",
        (8, 2, 0),
    ),
    ("POST", "/confluence/rest/api/admin/user", (8, 4, 0)),
    ("GET", "/confluence/rest/api/user/list", (8, 4, 0)),
    (
        "PUT",
        "/confluence/rest/api/admin/user/{username}",
        (9, 0, 0),
    ),
    (
        "PUT",
        "/confluence/rest/api/user/{username}/group/{groupName}",
        (9, 0, 0),
    ),
    (
        "DELETE",
        "/confluence/rest/api/user/{username}/group/{groupName}",
        (9, 0, 0),
    ),
    ("GET", "/confluence/rest/api/server-information", (9, 1, 0)),
    ("GET", "/jira/rest/api/2/user/list", (10, 3, 0)),
];

/// Whether `product` at `version` has the resource `method route` (a matched route).
pub(crate) fn has(version: Version, method: &Method, route: &str) -> bool {
    SINCE
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .is_none_or(|(_, _, since)| version >= *since)
}

/// `GET /rest/api/2/serverInfo`.
/// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-serverinfo/#api-api-2-serverinfo-get
pub(crate) async fn jira_server_info(State(sim): State<Arc<Inner>>) -> Response {
    let (major, minor, patch) = version_of(&sim, Product::Jira);
    let base = crate::lock(&sim.base_url).clone();
    json_response(
        StatusCode::OK,
        json!({
            "baseUrl": format!("{base}/jira"),
            "version": text((major, minor, patch)),
            "versionNumbers": [major, minor, patch],
            "deploymentType": "Server",
            "buildNumber": major * 100_000 + minor * 1000 + patch,
            "serverTitle": "Jira (simulated)",
        }),
    )
}

/// `GET /rest/api/server-information` (Confluence 9.1+).
/// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-server-information/
pub(crate) async fn confluence_server_information(State(sim): State<Arc<Inner>>) -> Response {
    let version = version_of(&sim, Product::Confluence);
    let base = crate::lock(&sim.base_url).clone();
    json_response(
        StatusCode::OK,
        json!({
            "baseUrl": format!("{base}/confluence"),
            "version": text(version),
            "buildNumber": 9000,
            "marketplaceBuildNumber": 9000,
            "buildDate": "2026-01-01",
        }),
    )
}

/// `GET /rest/applinks/1.0/manifest`, which every Atlassian server product serves for
/// application links; [U] its JSON shape beyond `version`, `typeId` and `name`.
pub(crate) async fn confluence_manifest(State(sim): State<Arc<Inner>>) -> Response {
    let version = version_of(&sim, Product::Confluence);
    json_response(
        StatusCode::OK,
        json!({
            "id": "00000000-0000-0000-0000-00000000c0f1",
            "name": "Confluence (simulated)",
            "typeId": "confluence",
            "version": text(version),
            "buildNumber": 9000,
        }),
    )
}

/// `GET /rest/api/1.0/application-properties` (no authentication needed): Bitbucket DC's
/// OpenAPI document, `getApplicationProperties`.
pub(crate) async fn bitbucket_application_properties(State(sim): State<Arc<Inner>>) -> Response {
    let version = version_of(&sim, Product::Bitbucket);
    json_response(
        StatusCode::OK,
        json!({
            "version": text(version),
            "buildNumber": "9004000",
            "buildDate": "1767225600000",
            "displayName": "Bitbucket",
        }),
    )
}

fn version_of(sim: &Inner, product: Product) -> Version {
    crate::lock(&sim.state).version(product)
}

#[derive(Deserialize)]
pub(crate) struct VersionBody {
    version: String,
}

/// `PUT /_sim/{product}/version` `{"version":"8.3.0"}`.
pub(crate) async fn set_version(
    State(sim): State<Arc<Inner>>,
    Path(product): Path<String>,
    Json(body): Json<VersionBody>,
) -> Response {
    let Some(product) = Product::from_slug(&product) else {
        return (StatusCode::NOT_FOUND, format!("no product {product:?}")).into_response();
    };
    let Some(version) = parse(&body.version) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a version such as 8.3.0", body.version),
        )
            .into_response();
    };
    crate::lock(&sim.state).versions.insert(product, version);
    StatusCode::NO_CONTENT.into_response()
}
