//! `GET /users/delta` and `GET /groups/delta`.
//!
//! A round is a window `[from, to)` of the change log (`from` absent for the initial round).
//! `to` is fixed when the round starts and becomes the position in the final deltaLink, so a
//! change made while a client pages through a round shows up (again) in the next round — the
//! replays the docs tell clients to expect. Incremental rounds are computed once per window
//! and cached; initial rounds read current state with a key-based cursor.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::GraphSim;
use crate::http::{
    GraphError, Prefer, allow_options, base_url, context, link, parse_prefer, parse_query,
};
use crate::permissions::Roles;
use crate::schema::{Key, ObjectKind};

mod items;
mod pages;
mod query;

use pages::{groups_incremental, groups_initial, users_incremental, users_initial};
use query::{query_params, request_query};

pub(crate) use items::{DeltaCache, compute_items};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Resource {
    Users,
    Groups,
}

impl Resource {
    fn kind(self) -> ObjectKind {
        match self {
            Resource::Users => ObjectKind::User,
            Resource::Groups => ObjectKind::Group,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Resource::Users => "users",
            Resource::Groups => "groups",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Resource::Users => "/v1.0/users/delta",
            Resource::Groups => "/v1.0/groups/delta",
        }
    }
}

/// The query a delta sequence was started with; carried by every token of the sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DeltaQuery {
    k: Resource,
    sel: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    /// Groups: report `members@delta`.
    mem: bool,
    ep: u64,
}

/// `$deltatoken`: the log position the next round starts from.
#[derive(Debug, Serialize, Deserialize)]
struct LinkToken {
    q: DeltaQuery,
    pos: usize,
}

/// `$skiptoken`: a round in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PageToken {
    q: DeltaQuery,
    from: Option<usize>,
    to: usize,
    /// Initial rounds: arena index to resume at; incremental: item index.
    cur: u64,
    /// Groups: initial rounds, member arena index to resume at (0 = group start);
    /// incremental, offset into the item's member changes.
    moff: u64,
    /// This page is the data page after an injected empty one.
    e: bool,
    /// Objects replayed at the end of this incremental round.
    rp: usize,
    /// When the page that handed this token out was served (Unix ms), for expiry by age.
    #[serde(default)]
    at: u64,
}

/// One object of an incremental round, merged over the window.
#[derive(Debug, Clone)]
pub(crate) struct DeltaItem {
    obj: u32,
    /// Created or restored in the window: report every selected property.
    fresh: bool,
    props: BTreeSet<Key>,
    /// Net membership changes, `true` = added.
    members: Vec<(u32, bool)>,
}

pub(crate) type DeltaCacheKey = (Resource, usize, usize, usize);

fn sync_state_not_found() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

fn bad_token() -> GraphError {
    GraphError::bad_request("The specified delta or skip token is invalid.")
}

/// `GET /v1.0/users/delta` — <https://learn.microsoft.com/graph/api/user-delta?view=graph-rest-1.0>
pub(crate) async fn users_delta(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    delta(&sim, &roles, &headers, raw.as_deref(), Resource::Users)
}

/// `GET /v1.0/groups/delta` — <https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0>
/// (membership tracking: <https://learn.microsoft.com/graph/delta-query-groups>)
///
/// A group with hidden membership comes without `members@delta` unless the token holds
/// Member.Read.Hidden: in the initial round it looks like a group without members, and in
/// later rounds its membership changes are not reported at all (a group whose only change was
/// its membership does not show up). Graph documents the permission as required for hidden
/// memberships, not what delta sends without it; this is the reading that tells a client least,
/// in line with how memberOf leaves such groups out (see `graph::list_members`) [U].
pub(crate) async fn groups_delta(
    State(sim): State<GraphSim>,
    Extension(roles): Extension<Roles>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    delta(&sim, &roles, &headers, raw.as_deref(), Resource::Groups)
}

/// How a request starts or continues a round, decoded before anything else: a forced resync
/// answers with a Location that keeps the client's query.
enum Start {
    Page(PageToken),
    Latest(DeltaQuery),
    Initial(DeltaQuery),
    From(DeltaQuery, usize),
}

fn delta(
    sim: &GraphSim,
    roles: &Roles,
    headers: &HeaderMap,
    raw: Option<&str>,
    res: Resource,
) -> Result<Response, GraphError> {
    let params = parse_query(raw)?;
    let base = base_url(headers);
    let prefer = parse_prefer(headers);
    let (epoch, log_len) = {
        let t = sim.read();
        (t.epoch, t.log.len())
    };
    if params.contains_key("$skiptoken") && params.contains_key("$deltatoken") {
        return Err(bad_token());
    }
    let start = decode_start(&params, res, epoch);
    if sim.take_resync(res) {
        return Err(resync_required(&base, res, &start));
    }
    let page = match start? {
        Start::Latest(q) => {
            let token = crate::token::encode(&LinkToken { q, pos: log_len });
            let body = json!({
                "@odata.context": context(&base, res.name(), &None),
                "@odata.deltaLink": link(&base, res.path(), &[("$deltatoken", &token)]),
                "value": [],
            });
            return Ok(Json(body).into_response());
        }
        start => page_token(sim, res, start, epoch, log_len)?,
    };
    let knobs = sim.knobs_now();
    let cap = knobs.page_cap.unwrap_or(usize::MAX);
    let default_objects = match res {
        Resource::Users => knobs.users_delta_page_size,
        Resource::Groups => knobs.groups_delta_max_groups,
    };
    // The preference is honoured up to the service's own page size, never beyond it.
    let service_objects = default_objects.max(1);
    let max_objects = prefer
        .max_page_size
        .unwrap_or(service_objects)
        .clamp(1, service_objects)
        .min(cap)
        .max(1);
    let (values, next) = if knobs.empty_pages && !page.e {
        (Vec::new(), Some((page.cur, page.moff, true)))
    } else {
        let budget = Budget {
            objects: max_objects,
            refs: knobs.groups_delta_max_member_refs.max(1),
            minimal: prefer.minimal,
            roles,
        };
        let (values, next) = page_values(sim, res, &page, budget);
        (values, next.map(|(c, m)| (c, m, false)))
    };
    let mut response = Json(page_body(&base, res, page, values, next)).into_response();
    if let Some(applied) = preference_applied(&prefer, max_objects) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("preference-applied"), applied);
    }
    Ok(response)
}

fn decode_start(
    params: &std::collections::BTreeMap<String, String>,
    res: Resource,
    epoch: u64,
) -> Result<Start, GraphError> {
    if let Some(skip) = params.get("$skiptoken") {
        return crate::token::decode::<PageToken>(skip)
            .filter(|t| t.q.k == res)
            .map(Start::Page)
            .ok_or_else(bad_token);
    }
    match params.get("$deltatoken").map(String::as_str) {
        Some("latest") => request_query(params, res, epoch).map(Start::Latest),
        // An empty $deltatoken (the Location of a 410) starts over.
        None | Some("") => {
            allow_options(params, &["$select", "$filter", "$expand", "$deltatoken"])?;
            request_query(params, res, epoch).map(Start::Initial)
        }
        Some(token) => crate::token::decode::<LinkToken>(token)
            .filter(|t| t.q.k == res)
            .map(|t| Start::From(t.q, t.pos))
            .ok_or_else(bad_token),
    }
}

/// The 410 of a forced resync, its Location keeping the client's query.
fn resync_required(base: &str, res: Resource, start: &Result<Start, GraphError>) -> GraphError {
    let q = match start {
        Ok(Start::Page(p)) => Some(p.q.clone()),
        Ok(Start::Latest(q) | Start::Initial(q) | Start::From(q, _)) => Some(q.clone()),
        Err(_) => None,
    };
    let mut pairs = q.as_ref().map(query_params).unwrap_or_default();
    pairs.push(("$deltatoken".into(), String::new()));
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let location = link(base, res.path(), &refs);
    let mut error = GraphError::new(
        StatusCode::GONE,
        "resyncRequired",
        "The delta token is no longer valid, and the app must reset the sync state.",
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        error.headers.push((header::LOCATION, value));
    }
    error
}

/// The page to serve: the one a `$skiptoken` names, or the first of a round (`Latest` is
/// answered before this).
fn page_token(
    sim: &GraphSim,
    res: Resource,
    start: Start,
    epoch: u64,
    log_len: usize,
) -> Result<PageToken, GraphError> {
    let first = |q, from, rp| PageToken {
        q,
        from,
        to: log_len,
        cur: 0,
        moff: 0,
        e: false,
        rp,
        at: 0,
    };
    match start {
        Start::Page(p) => {
            if p.q.ep != epoch || p.to > log_len {
                return Err(sync_state_not_found());
            }
            if sim.page_token_expired(p.at) {
                return Err(GraphError::expired_page_token());
            }
            Ok(p)
        }
        Start::Initial(q) | Start::Latest(q) => Ok(first(q, None, 0)),
        Start::From(q, pos) => {
            if q.ep != epoch || pos > log_len {
                return Err(sync_state_not_found());
            }
            Ok(first(q, Some(pos), sim.take_replay(res)))
        }
    }
}

/// The objects of one page, and where the next page resumes (`None`: the round is over).
fn page_values(sim: &GraphSim, res: Resource, page: &PageToken, budget: Budget<'_>) -> PageOut {
    let tenant = sim.read();
    match page.from {
        None => match res {
            Resource::Users => users_initial(&tenant, page, budget),
            Resource::Groups => groups_initial(&tenant, page, budget),
        },
        Some(from) => {
            let items = sim.delta_items(&tenant, res, from, page.to, page.rp);
            match res {
                Resource::Users => users_incremental(&tenant, page, &items, budget),
                Resource::Groups => groups_incremental(&tenant, page, &items, budget),
            }
        }
    }
}

/// The page's body: its values and a nextLink to resume at `next`, or the round's deltaLink.
fn page_body(
    base: &str,
    res: Resource,
    page: PageToken,
    values: Vec<Value>,
    next: Option<(u64, u64, bool)>,
) -> Value {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(base, res.name(), &page.q.sel)),
    );
    body.insert("value".into(), Value::Array(values));
    match next {
        Some((cur, moff, e)) => {
            let token = crate::token::encode(&PageToken {
                cur,
                moff,
                e,
                at: crate::http::now_ms(),
                ..page
            });
            body.insert(
                "@odata.nextLink".into(),
                Value::String(link(base, res.path(), &[("$skiptoken", &token)])),
            );
        }
        None => {
            let token = crate::token::encode(&LinkToken {
                q: page.q,
                pos: page.to,
            });
            body.insert(
                "@odata.deltaLink".into(),
                Value::String(link(base, res.path(), &[("$deltatoken", &token)])),
            );
        }
    }
    Value::Object(body)
}

fn preference_applied(prefer: &Prefer, max_objects: usize) -> Option<HeaderValue> {
    let mut parts = Vec::new();
    if prefer.max_page_size.is_some() {
        parts.push(format!("odata.maxpagesize={max_objects}"));
    }
    if prefer.minimal {
        parts.push("return=minimal".to_owned());
    }
    (!parts.is_empty())
        .then(|| HeaderValue::from_str(&parts.join(",")).ok())
        .flatten()
}

/// What one page may hold, and the token's roles (which groups' members it may see).
#[derive(Debug, Clone, Copy)]
struct Budget<'r> {
    objects: usize,
    refs: usize,
    minimal: bool,
    roles: &'r Roles,
}

type PageOut = (Vec<Value>, Option<(u64, u64)>);
