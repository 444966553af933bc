//! The discovery endpoints (RFC 7643 §5–7), trimmed to what Atlassian supports:
//! ServiceProviderConfig, Schemas and ResourceTypes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::filter::list_response;
use super::{
    ATLASSIAN_SCHEMA, DirPath, ENTERPRISE_SCHEMA, GROUP_SCHEMA, MAX_COUNT, PREFIX, Res,
    USER_SCHEMA, base_url, check_directory, not_found, path_id, scim_json,
};
use crate::Inner;
use crate::common::Params;

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-service-provider-configuration/
        .route(
            &format!("{PREFIX}/ServiceProviderConfig"),
            get(service_provider_config),
        )
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-schemas/
        .route(&format!("{PREFIX}/Schemas"), get(schemas))
        .route(&format!("{PREFIX}/Schemas/{{id}}"), get(schema))
        // https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-resource-types/
        .route(&format!("{PREFIX}/ResourceTypes"), get(resource_types))
        .route(
            &format!("{PREFIX}/ResourceTypes/{{id}}"),
            get(resource_type),
        )
}

async fn service_provider_config(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    let base = base_url(&sim);
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/intro/",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with the directory API key as a bearer token",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        }),
    ))
}

fn attribute(name: &str, kind: &str, multi: bool, required: bool) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    })
}

fn schema_documents(base: &str) -> Vec<Value> {
    let user_attrs = vec![
        {
            let mut a = attribute("userName", "string", false, true);
            a["uniqueness"] = json!("server");
            a
        },
        attribute("name", "complex", false, false),
        attribute("displayName", "string", false, false),
        attribute("nickName", "string", false, false),
        attribute("title", "string", false, false),
        attribute("preferredLanguage", "string", false, false),
        attribute("department", "string", false, false),
        attribute("organization", "string", false, false),
        attribute("timezone", "string", false, false),
        attribute("active", "boolean", false, false),
        attribute("emails", "complex", true, true),
        attribute("phoneNumbers", "complex", true, false),
        {
            let mut a = attribute("groups", "complex", true, false);
            a["mutability"] = json!("readOnly");
            a
        },
    ];
    let group_attrs = vec![
        attribute("displayName", "string", false, true),
        attribute("members", "complex", true, false),
    ];
    // Only what Atlassian documents for the enterprise extension (see ENTERPRISE_DOCUMENTED).
    let enterprise_attrs = vec![
        attribute("organization", "string", false, false),
        attribute("department", "string", false, false),
    ];
    [
        (USER_SCHEMA, "User", "User Account", user_attrs),
        (GROUP_SCHEMA, "Group", "Group", group_attrs),
        (
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Enterprise User",
            enterprise_attrs,
        ),
    ]
    .into_iter()
    .map(|(id, name, description, attributes)| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id,
            "name": name,
            "description": description,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    })
    .collect()
}

async fn schemas(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>, params: Params) -> Res {
    check_directory(&sim, &path)?;
    list_response(&params, schema_documents(&base_url(&sim)))
}

async fn schema(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    one_of(schema_documents(&base_url(&sim)), &path_id(&path), "Schema")
}

fn resource_type_documents(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": USER_SCHEMA,
            "schemaExtensions": [
                {"schema": ENTERPRISE_SCHEMA, "required": false},
                {"schema": ATLASSIAN_SCHEMA, "required": false},
            ],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group", "schema": GROUP_SCHEMA, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

async fn resource_types(
    State(sim): State<Arc<Inner>>,
    Path(path): Path<DirPath>,
    params: Params,
) -> Res {
    check_directory(&sim, &path)?;
    list_response(&params, resource_type_documents(&base_url(&sim)))
}

async fn resource_type(State(sim): State<Arc<Inner>>, Path(path): Path<DirPath>) -> Res {
    check_directory(&sim, &path)?;
    one_of(
        resource_type_documents(&base_url(&sim)),
        &path_id(&path),
        "ResourceType",
    )
}

/// The discovery document with the id in the path, or 404.
fn one_of(documents: Vec<Value>, id: &str, what: &str) -> Res {
    documents
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id))
        .map(|s| scim_json(StatusCode::OK, s))
        .ok_or_else(|| not_found(what, id))
}
