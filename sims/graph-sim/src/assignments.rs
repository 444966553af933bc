//! Enterprise applications: service principals by `appId` and who is assigned to them
//! (`appRoleAssignedTo`), the source of an app's `enterprise_app` scope.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value};

use crate::GraphSim;
use crate::graph::{ListSpec, check_guid, get_entity, list_page};
use crate::http::*;
use crate::schema::ObjectKind;
use crate::store::{Life, Tenant};

const ASSIGNMENT_PROPS: &[&str] = &[
    "appRoleId",
    "createdDateTime",
    "deletedDateTime",
    "principalDisplayName",
    "principalId",
    "principalType",
    "resourceDisplayName",
    "resourceId",
];

/// `servicePrincipals(appId='{appId}')` → the service principal's arena index.
fn parse_sp_segment(tenant: &Tenant, segment: &str) -> Result<u32, GraphError> {
    let not_segment = || {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    };
    let inner = segment
        .strip_prefix("servicePrincipals(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(not_segment)?;
    let (by_app_id, value) = match inner.split_once('=') {
        Some((key, value)) if key.trim() == "appId" => (true, value),
        Some(_) => return Err(not_segment()),
        None => (false, inner),
    };
    let value = value.trim().trim_matches('\'');
    let found = if by_app_id {
        tenant.lookup_app_id(value)
    } else {
        tenant.lookup(value)
    };
    found
        .filter(|i| {
            let o = tenant.obj(*i);
            o.kind == ObjectKind::ServicePrincipal && o.life == Life::Active
        })
        .ok_or_else(|| GraphError::not_found(value))
}

fn list_assignments(
    sim: &GraphSim,
    headers: &HeaderMap,
    raw: Option<&str>,
    sp: u32,
    path: String,
) -> Result<Response, GraphError> {
    let sp_id = sim.read().obj(sp).id.clone();
    let spec = ListSpec {
        resource: format!("appRoleAssignedTo:{sp}"),
        path,
        entity_set: format!("servicePrincipals('{sp_id}')/appRoleAssignedTo"),
        kinds: &[],
        extra_select: ASSIGNMENT_PROPS,
        type_name: "microsoft.graph.appRoleAssignment",
        filter_props: &[],
    };
    list_page(sim, headers, raw, spec, move |t, _, s, a| {
        Box::new(
            t.obj(sp)
                .assignments
                .iter()
                .filter(move |x| a.is_none_or(|after| x.seq > after))
                .filter(|x| t.obj(x.principal).life == Life::Active)
                .map(move |x| (x.seq, assignment_row(t, sp, x, s))),
        )
    })
}

fn assignment_row(
    t: &Tenant,
    sp: u32,
    a: &crate::store::Assignment,
    select: Option<&[String]>,
) -> Map<String, Value> {
    let principal = t.obj(a.principal);
    let resource = t.obj(sp);
    let mut full = Map::new();
    full.insert("id".into(), Value::String(a.id.clone()));
    full.insert("deletedDateTime".into(), Value::Null);
    full.insert("appRoleId".into(), Value::String(a.app_role_id.clone()));
    full.insert("createdDateTime".into(), Value::String(a.created.clone()));
    full.insert(
        "principalDisplayName".into(),
        Value::String(principal.display_name().to_owned()),
    );
    full.insert("principalId".into(), Value::String(principal.id.clone()));
    full.insert(
        "principalType".into(),
        Value::String(principal.kind.principal_type().to_owned()),
    );
    full.insert(
        "resourceDisplayName".into(),
        Value::String(resource.display_name().to_owned()),
    );
    full.insert("resourceId".into(), Value::String(resource.id.clone()));
    match select {
        None => full,
        Some(names) => full
            .into_iter()
            .filter(|(k, _)| k == "id" || names.iter().any(|n| n == k))
            .collect(),
    }
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo` —
/// <https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto?view=graph-rest-1.0>
pub(crate) async fn sp_assignments_by_id(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    check_guid(&id)?;
    let sp = sim
        .read()
        .visible(&id, ObjectKind::ServicePrincipal)
        .ok_or_else(|| GraphError::not_found(&id))?;
    list_assignments(
        &sim,
        &headers,
        raw.as_deref(),
        sp,
        format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo"),
    )
}

/// `GET /v1.0/servicePrincipals(appId='{appId}')/appRoleAssignedTo` —
/// <https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto?view=graph-rest-1.0>
pub(crate) async fn sp_assignments_by_segment(
    State(sim): State<GraphSim>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let sp = parse_sp_segment(&sim.read(), &segment)?;
    // Links reuse the path exactly as the client sent it.
    list_assignments(&sim, &headers, raw.as_deref(), sp, uri.path().to_owned())
}

/// `GET /v1.0/servicePrincipals(appId='{appId}')` —
/// <https://learn.microsoft.com/graph/api/serviceprincipal-get?view=graph-rest-1.0>
pub(crate) async fn sp_by_segment(
    State(sim): State<GraphSim>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let id = {
        let t = sim.read();
        let sp = parse_sp_segment(&t, &segment)?;
        t.obj(sp).id.clone()
    };
    get_entity(
        &sim,
        &headers,
        raw.as_deref(),
        &id,
        ObjectKind::ServicePrincipal,
        "servicePrincipals",
    )
}
