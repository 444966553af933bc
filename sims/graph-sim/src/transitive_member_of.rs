//! `GET /v1.0/users/{id | userPrincipalName}/transitiveMemberOf` —
//! <https://learn.microsoft.com/graph/api/user-list-transitivememberof?view=graph-rest-1.0>
//!
//! The groups a user is a member of directly or through nested groups, as directoryObjects with
//! their `@odata.type` (directory roles and administrative units are not simulated). Plain, with
//! `$select` and `$top` (default page 100, at most 999, as documented); the OData cast
//! (`/microsoft.graph.group`), `$filter`, `$search` and `$count` are advanced queries
//! (`ConsistencyLevel: eventual`), which this simulator does not implement.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::GraphSim;
use crate::graph::{after_key, list_page, user_relation};
use crate::http::{GraphError, render};
use crate::permissions::Roles;
use crate::schema::ObjectKind;
use crate::store::{Life, Tenant};

/// The active groups `object` is in, directly or through groups nested in them, each once
/// (cycles end). A group with hidden membership the token may not see the members of is
/// neither listed nor gone through, as `/memberOf` leaves it out (see `graph::list_member_of`)
/// [U: what Graph does for nesting through such a group is not documented].
fn transitive_groups(tenant: &Tenant, object: u32, roles: &Roles) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<u32> = tenant.obj(object).member_of.iter().copied().collect();
    while let Some(g) = stack.pop() {
        let group = tenant.obj(g);
        if group.life != Life::Active
            || group.kind != ObjectKind::Group
            || !roles.sees_members_of(group)
            || !found.insert(g)
        {
            continue;
        }
        stack.extend(group.member_of.iter().copied());
    }
    found
}

pub(crate) async fn list_transitive_member_of(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let (user, spec) = user_relation(&sim, &id, "transitiveMemberOf")?;
    list_page(&sim, &headers, raw.as_deref(), spec, move |t, _, s, a| {
        let groups = transitive_groups(t, user, &roles).split_off(&after_key(a));
        Box::new(
            groups
                .into_iter()
                .map(move |g| (u64::from(g), render(t.obj(g), s, true))),
        )
    })
}
