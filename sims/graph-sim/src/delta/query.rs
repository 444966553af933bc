//! The query a delta round is started with: `$select`, `$expand=members` and `$filter` on ids
//! read from the request, and written back into a Location or nextLink.

use axum::http::StatusCode;

use crate::http::{Filter, GraphError, parse_select, refuse_non_directory};

use super::{DeltaQuery, Resource};

pub(super) fn request_query(
    params: &std::collections::BTreeMap<String, String>,
    res: Resource,
    epoch: u64,
) -> Result<DeltaQuery, GraphError> {
    let extra: &[&str] = match res {
        Resource::Users => &[],
        Resource::Groups => &["members"],
    };
    let mut sel = parse_select(params, &[res.kind()], extra, res.kind().type_name())?;
    if res == Resource::Users {
        refuse_outside_delta(&sel)?;
    }
    refuse_non_directory(&sel)?;
    let expand_members = match params.get("$expand").map(String::as_str) {
        None => false,
        Some("members") if res == Resource::Groups => true,
        Some(other) => {
            return Err(GraphError::unsupported(format!(
                "'$expand={other}' is not supported on {} delta.",
                res.name()
            )));
        }
    };
    let mem = res == Resource::Groups
        && (expand_members
            || sel.is_none()
            || sel
                .as_ref()
                .is_some_and(|s| s.iter().any(|n| n == "members")));
    if let Some(names) = sel.as_mut() {
        names.retain(|n| n != "members");
    }
    let ids = match params.get("$filter") {
        None => None,
        Some(f) => {
            let ids = Filter::parse(f)?.delta_ids().ok_or_else(|| {
                GraphError::unsupported(
                    "Delta queries only support $filter on id: \"id eq '...'\" clauses combined with 'or'.",
                )
            })?;
            if ids.len() > 50 {
                return Err(GraphError::unsupported(
                    "A delta $filter can name at most 50 ids.",
                ));
            }
            Some(ids)
        }
    };
    Ok(DeltaQuery {
        k: res,
        sel,
        ids,
        mem,
        ep: epoch,
    })
}

/// A users delta `$select` naming properties change tracking does not support: Graph's 400,
/// naming them (see [`crate::schema::USER_NOT_IN_DELTA`] for the sources).
fn refuse_outside_delta(select: &Option<Vec<String>>) -> Result<(), GraphError> {
    let Some(names) = select else {
        return Ok(());
    };
    let refused: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| crate::schema::USER_NOT_IN_DELTA.contains(n))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!(
            "Invalid request for delta query: for this entity set, $expand/$select is not supported for the following properties: {}",
            refused.join(",")
        ),
    ))
}

/// Query parameters that reproduce `q` in a Location or nextLink.
pub(super) fn query_params(q: &DeltaQuery) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(sel) = &q.sel {
        let mut names = sel.clone();
        if q.mem {
            names.push("members".into());
        }
        out.push(("$select".to_owned(), names.join(",")));
    } else if q.mem && q.k == Resource::Groups {
        // The default group delta already carries members; nothing to add.
    }
    if let Some(ids) = &q.ids {
        let clause = ids
            .iter()
            .map(|id| format!("id eq '{id}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        out.push(("$filter".to_owned(), clause));
    }
    out
}
