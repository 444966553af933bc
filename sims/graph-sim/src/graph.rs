//! Graph collection and entity routes (everything but delta, which lives in `delta.rs`).

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::GraphSim;
use crate::http::{
    Filter, GraphError, allow_options, base_url, context, link, parse_query, parse_select,
    parse_top, refuse_non_directory, render,
};
use crate::permissions::Roles;
use crate::schema::ObjectKind;
use crate::store::{Life, Tenant};

pub(crate) type Rows<'t> = Box<dyn Iterator<Item = (u64, Map<String, Value>)> + 't>;

/// State of a paged collection read, carried in `$skiptoken`: the original query and where the
/// last page stopped (a key, not an offset, so pages stay correct while the directory changes).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ListToken {
    r: String,
    sel: Option<Vec<String>>,
    f: Option<String>,
    top: Option<usize>,
    after: Option<u64>,
    e: bool,
    /// When the page that handed this token out was served (Unix ms), for expiry by age.
    #[serde(default)]
    at: u64,
}

pub(crate) struct ListSpec<'a> {
    /// Scope of the token (a users token cannot page groups).
    pub(crate) resource: String,
    pub(crate) path: String,
    pub(crate) entity_set: String,
    pub(crate) kinds: &'a [ObjectKind],
    /// Names `$select` may use besides the properties of `kinds`.
    pub(crate) extra_select: &'a [&'a str],
    /// Type named in "Could not find a property" errors.
    pub(crate) type_name: &'a str,
    /// Properties `$filter` may name; empty: `$filter` unsupported on this route.
    pub(crate) filter_props: &'a [&'a str],
}

const USER_FILTERS: &[&str] = &[
    "accountEnabled",
    "displayName",
    "userPrincipalName",
    "mail",
    "mailNickname",
    "employeeId",
    "userType",
    "givenName",
    "surname",
    "department",
    "jobTitle",
];
const GROUP_FILTERS: &[&str] = &[
    "displayName",
    "mail",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "onPremisesSyncEnabled",
];
const SP_FILTERS: &[&str] = &["appId", "displayName", "servicePrincipalType"];
pub(crate) const DIRECTORY_OBJECTS: &[ObjectKind] = &[
    ObjectKind::User,
    ObjectKind::Group,
    ObjectKind::Device,
    ObjectKind::OrgContact,
    ObjectKind::ServicePrincipal,
];

/// Pages any collection. `source` yields `(cursor key, rendered row)` in key order for keys
/// after the given one, with the filter and `$select` already applied.
pub(crate) fn list_page<F>(
    sim: &GraphSim,
    headers: &HeaderMap,
    raw: Option<&str>,
    spec: ListSpec<'_>,
    source: F,
) -> Result<Response, GraphError>
where
    F: for<'t> Fn(&'t Tenant, Option<&'t Filter>, Option<&'t [String]>, Option<u64>) -> Rows<'t>,
{
    let params = parse_query(raw)?;
    let base = base_url(headers);
    let state = match params.get("$skiptoken") {
        Some(token) => crate::token::decode::<ListToken>(token)
            .filter(|t| t.r == spec.resource)
            .ok_or_else(|| {
                GraphError::bad_request("The specified page token value has expired or is invalid.")
            })
            .and_then(|t| {
                if sim.page_token_expired(t.at) {
                    Err(GraphError::expired_page_token())
                } else {
                    Ok(t)
                }
            })?,
        None => {
            allow_options(&params, &["$select", "$filter", "$top"])?;
            let sel = parse_select(&params, spec.kinds, spec.extra_select, spec.type_name)?;
            refuse_non_directory(&sel)?;
            let top = params.get("$top").map(|_| parse_top(&params)).transpose()?;
            if let Some(f) = params.get("$filter") {
                if spec.filter_props.is_empty() {
                    return Err(GraphError::unsupported(
                        "$filter on this collection needs an advanced query (ConsistencyLevel: eventual), which this simulator does not implement.",
                    ));
                }
                Filter::parse(f)?.check(spec.filter_props)?;
            }
            ListToken {
                r: spec.resource.clone(),
                sel,
                f: params.get("$filter").cloned(),
                top,
                after: None,
                e: false,
                at: 0,
            }
        }
    };
    let filter = state.f.as_deref().map(Filter::parse).transpose()?;
    let knobs = sim.knobs_now();
    let size = state
        .top
        .unwrap_or(100)
        .min(knobs.page_cap.unwrap_or(usize::MAX))
        .max(1);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(&base, &spec.entity_set, &state.sel)),
    );
    let next = if knobs.empty_pages && !state.e {
        // An empty page that only points further, which Graph may send at any time.
        body.insert("value".into(), Value::Array(Vec::new()));
        Some(ListToken {
            e: true,
            at: crate::http::now_ms(),
            ..state.clone()
        })
    } else {
        let tenant = sim.read();
        let mut rows = source(&tenant, filter.as_ref(), state.sel.as_deref(), state.after);
        let mut values = Vec::new();
        let mut last = None;
        for (key, row) in rows.by_ref().take(size) {
            values.push(Value::Object(row));
            last = Some(key);
        }
        let more = rows.next().is_some();
        body.insert("value".into(), Value::Array(values));
        more.then(|| ListToken {
            after: last,
            e: false,
            at: crate::http::now_ms(),
            ..state.clone()
        })
    };
    if let Some(next) = next {
        let select = state.sel.as_ref().map(|s| s.join(","));
        let top = state.top.map(|t| t.to_string());
        let token = crate::token::encode(&next);
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &select {
            params.push(("$select", s));
        }
        if let Some(f) = &state.f {
            params.push(("$filter", f));
        }
        if let Some(t) = &top {
            params.push(("$top", t));
        }
        params.push(("$skiptoken", &token));
        body.insert(
            "@odata.nextLink".into(),
            Value::String(link(&base, &spec.path, &params)),
        );
    }
    Ok(Json(Value::Object(body)).into_response())
}

/// Indexed candidates when the filter pins ids or UPNs; `None` means "scan in order".
fn pinned(tenant: &Tenant, filter: Option<&Filter>, kind: ObjectKind) -> Option<Vec<u32>> {
    let (prop, values) = filter?.pinned()?;
    let mut idxs: Vec<u32> = values
        .iter()
        .filter_map(|v| match prop {
            "id" => tenant.lookup(v),
            _ => tenant.lookup_upn(v),
        })
        .filter(|i| tenant.obj(*i).kind == kind)
        .collect();
    idxs.sort_unstable();
    idxs.dedup();
    Some(idxs)
}

pub(crate) fn after_key(after: Option<u64>) -> u32 {
    after.map_or(0, |a| u32::try_from(a + 1).unwrap_or(u32::MAX))
}

/// Visible objects of one kind from the arena, filtered and rendered.
fn object_rows<'t>(
    tenant: &'t Tenant,
    set: &'t BTreeSet<u32>,
    kind: ObjectKind,
    filter: Option<&'t Filter>,
    select: Option<&'t [String]>,
    after: Option<u64>,
    typed: bool,
) -> Rows<'t> {
    let start = after_key(after);
    let candidates: Box<dyn Iterator<Item = u32> + 't> = match pinned(tenant, filter, kind) {
        Some(list) => Box::new(list.into_iter().filter(move |i| *i >= start)),
        None => Box::new(set.range(start..).copied()),
    };
    Box::new(
        candidates
            .map(|i| (i, tenant.obj(i)))
            .filter(|(_, o)| o.life == Life::Active)
            .filter(move |(_, o)| filter.is_none_or(|f| f.matches(o)))
            .map(move |(i, o)| (u64::from(i), render(o, select, typed))),
    )
}

/// `GET /v1.0/users` — <https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0>
pub(crate) async fn list_users(
    State(sim): State<GraphSim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let spec = ListSpec {
        resource: "users".into(),
        path: "/v1.0/users".into(),
        entity_set: "users".into(),
        kinds: &[ObjectKind::User],
        extra_select: &[],
        type_name: "microsoft.graph.user",
        filter_props: USER_FILTERS,
    };
    list_page(&sim, &headers, raw.as_deref(), spec, |t, f, s, a| {
        object_rows(t, &t.users, ObjectKind::User, f, s, a, false)
    })
}

/// `GET /v1.0/groups` — <https://learn.microsoft.com/graph/api/group-list?view=graph-rest-1.0>
pub(crate) async fn list_groups(
    State(sim): State<GraphSim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let spec = ListSpec {
        resource: "groups".into(),
        path: "/v1.0/groups".into(),
        entity_set: "groups".into(),
        kinds: &[ObjectKind::Group],
        extra_select: &[],
        type_name: "microsoft.graph.group",
        filter_props: GROUP_FILTERS,
    };
    list_page(&sim, &headers, raw.as_deref(), spec, |t, f, s, a| {
        object_rows(t, &t.groups, ObjectKind::Group, f, s, a, false)
    })
}

/// `GET /v1.0/servicePrincipals` —
/// <https://learn.microsoft.com/graph/api/serviceprincipal-list?view=graph-rest-1.0>
pub(crate) async fn list_service_principals(
    State(sim): State<GraphSim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let spec = ListSpec {
        resource: "servicePrincipals".into(),
        path: "/v1.0/servicePrincipals".into(),
        entity_set: "servicePrincipals".into(),
        kinds: &[ObjectKind::ServicePrincipal],
        extra_select: &[],
        type_name: "microsoft.graph.servicePrincipal",
        filter_props: SP_FILTERS,
    };
    list_page(&sim, &headers, raw.as_deref(), spec, |t, f, s, a| {
        object_rows(t, &t.sps, ObjectKind::ServicePrincipal, f, s, a, false)
    })
}

pub(crate) fn get_entity(
    sim: &GraphSim,
    headers: &HeaderMap,
    raw: Option<&str>,
    id: &str,
    kind: ObjectKind,
    entity_set: &str,
) -> Result<Response, GraphError> {
    let params = parse_query(raw)?;
    allow_options(&params, &["$select"])?;
    let sel = parse_select(&params, &[kind], &[], kind.type_name())?;
    let base = base_url(headers);
    let tenant = sim.read();
    let idx = tenant
        .visible(id, kind)
        .or_else(|| {
            // Users may also be addressed by userPrincipalName.
            (kind == ObjectKind::User)
                .then(|| tenant.lookup_upn(id))
                .flatten()
                .filter(|i| tenant.obj(*i).life == Life::Active)
        })
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut row = render(tenant.obj(idx), sel.as_deref(), false);
    row.insert(
        "@odata.context".into(),
        Value::String(format!("{}/$entity", context(&base, entity_set, &sel))),
    );
    Ok(Json(Value::Object(row)).into_response())
}

/// `GET /v1.0/users/{id | userPrincipalName}` —
/// <https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0>
pub(crate) async fn get_user(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    get_entity(
        &sim,
        &headers,
        raw.as_deref(),
        &id,
        ObjectKind::User,
        "users",
    )
}

/// `GET /v1.0/groups/{id}` — <https://learn.microsoft.com/graph/api/group-get?view=graph-rest-1.0>
pub(crate) async fn get_group(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    check_guid(&id)?;
    get_entity(
        &sim,
        &headers,
        raw.as_deref(),
        &id,
        ObjectKind::Group,
        "groups",
    )
}

/// `GET /v1.0/servicePrincipals/{id}` —
/// <https://learn.microsoft.com/graph/api/serviceprincipal-get?view=graph-rest-1.0>
pub(crate) async fn get_service_principal(
    State(sim): State<GraphSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    check_guid(&id)?;
    get_entity(
        &sim,
        &headers,
        raw.as_deref(),
        &id,
        ObjectKind::ServicePrincipal,
        "servicePrincipals",
    )
}

pub(crate) fn check_guid(id: &str) -> Result<(), GraphError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| GraphError::bad_request(format!("Invalid object identifier '{id}'.")))
}

fn group_for_members(sim: &GraphSim, id: &str) -> Result<u32, GraphError> {
    check_guid(id)?;
    sim.read()
        .visible(id, ObjectKind::Group)
        .ok_or_else(|| GraphError::not_found(id))
}

/// `GET /v1.0/groups/{id}/members` —
/// <https://learn.microsoft.com/graph/api/group-list-members?view=graph-rest-1.0>
///
/// A group with hidden membership lists no members unless the token holds Member.Read.Hidden.
/// The docs only say the permission "is required"; what Graph answers without it is not
/// documented. Reported behaviour of the neighbouring APIs is a silent omission, not a 403
/// (`/users/{id}/memberOf` and `checkMemberGroups` leave hidden-membership groups out:
/// microsoftgraph/microsoft-graph-docs#12552 and #12285), and Graph's general rule for objects
/// an app may not read is a 200 with less in it ("limited information returned for inaccessible
/// member objects", permissions-reference). So the simulator answers 200 with an empty list,
/// the reading that tells a client least [U].
pub(crate) async fn list_members(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let group = group_for_members(&sim, &id)?;
    let spec = ListSpec {
        resource: format!("members:{group}"),
        path: format!("/v1.0/groups/{id}/members"),
        entity_set: "directoryObjects".into(),
        kinds: DIRECTORY_OBJECTS,
        extra_select: &[],
        type_name: "microsoft.graph.directoryObject",
        filter_props: &[],
    };
    list_page(&sim, &headers, raw.as_deref(), spec, move |t, _, s, a| {
        let obj = t.obj(group);
        let members: Box<dyn Iterator<Item = u32> + '_> =
            if obj.life == Life::Active && roles.sees_members_of(obj) {
                Box::new(obj.members.range(after_key(a)..).copied())
            } else {
                Box::new(std::iter::empty())
            };
        Box::new(
            members
                .map(|m| (m, t.obj(m)))
                .filter(|(_, o)| o.life == Life::Active)
                .map(move |(m, o)| (u64::from(m), render(o, s, true))),
        )
    })
}

/// All objects reachable from `group` through active nested groups, the group itself excluded.
/// Cycle-safe: each group is expanded once. A group with hidden membership is not expanded
/// unless `roles` may see its members (it still shows up as a member of its parent) [U: the
/// docs say Member.Read.Hidden is required for transitiveMembers too, not what is left out].
pub(crate) fn transitive(tenant: &Tenant, group: u32, roles: &Roles) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut expanded = BTreeSet::new();
    let mut stack = vec![group];
    while let Some(g) = stack.pop() {
        if !expanded.insert(g) || !roles.sees_members_of(tenant.obj(g)) {
            continue;
        }
        for m in &tenant.obj(g).members {
            let o = tenant.obj(*m);
            if o.life != Life::Active {
                continue;
            }
            if *m != group {
                out.insert(*m);
            }
            if o.kind == ObjectKind::Group {
                stack.push(*m);
            }
        }
    }
    out
}

/// `GET /v1.0/groups/{id}/transitiveMembers` —
/// <https://learn.microsoft.com/graph/api/group-list-transitivemembers?view=graph-rest-1.0>
pub(crate) async fn list_transitive_members(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let group = group_for_members(&sim, &id)?;
    let spec = ListSpec {
        resource: format!("transitiveMembers:{group}"),
        path: format!("/v1.0/groups/{id}/transitiveMembers"),
        entity_set: "directoryObjects".into(),
        kinds: DIRECTORY_OBJECTS,
        extra_select: &[],
        type_name: "microsoft.graph.directoryObject",
        filter_props: &[],
    };
    list_page(&sim, &headers, raw.as_deref(), spec, move |t, _, s, a| {
        let start = after_key(a);
        let all: Vec<u32> = transitive(t, group, &roles)
            .into_iter()
            .filter(|m| *m >= start)
            .collect();
        Box::new(
            all.into_iter()
                .map(move |m| (u64::from(m), render(t.obj(m), s, true))),
        )
    })
}

/// The user `id` names (object id or UPN) and the paging spec of one of their relations
/// (`memberOf`, `transitiveMemberOf`): both list directoryObjects the same way.
pub(crate) fn user_relation(
    sim: &GraphSim,
    id: &str,
    relation: &str,
) -> Result<(u32, ListSpec<'static>), GraphError> {
    let user = {
        let t = sim.read();
        t.visible(id, ObjectKind::User)
            .or_else(|| t.lookup_upn(id).filter(|i| t.obj(*i).life == Life::Active))
            .ok_or_else(|| GraphError::not_found(id))?
    };
    let spec = ListSpec {
        resource: format!("{relation}:{user}"),
        path: format!("/v1.0/users/{id}/{relation}"),
        entity_set: "directoryObjects".into(),
        kinds: DIRECTORY_OBJECTS,
        extra_select: &[],
        type_name: "microsoft.graph.directoryObject",
        filter_props: &[],
    };
    Ok((user, spec))
}

/// `GET /v1.0/users/{id}/memberOf` (groups only; directory roles are not simulated) —
/// <https://learn.microsoft.com/graph/api/user-list-memberof?view=graph-rest-1.0>
///
/// Groups with hidden membership are left out unless the token holds Member.Read.Hidden, as
/// observed in microsoftgraph/microsoft-graph-docs#12552 (application permissions; "the results
/// does not contain groups that have visibility HiddenMembership until you add ... Member.Read.Hidden").
pub(crate) async fn list_member_of(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let (user, spec) = user_relation(&sim, &id, "memberOf")?;
    list_page(&sim, &headers, raw.as_deref(), spec, move |t, _, s, a| {
        let roles = roles.clone();
        Box::new(
            t.obj(user)
                .member_of
                .range(after_key(a)..)
                .map(move |g| (*g, t.obj(*g)))
                .filter(|(_, o)| o.life == Life::Active)
                .filter(move |(_, o)| roles.sees_members_of(o))
                .map(move |(g, o)| (u64::from(g), render(o, s, true))),
        )
    })
}

/// Unknown Graph paths, as Graph answers them.
pub(crate) async fn unknown_segment(uri: Uri) -> GraphError {
    let segment = uri
        .path()
        .trim_start_matches("/v1.0/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}
