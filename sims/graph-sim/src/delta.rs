//! `GET /users/delta` and `GET /groups/delta`.
//!
//! A round is a window `[from, to)` of the change log (`from` absent for the initial round).
//! `to` is fixed when the round starts and becomes the position in the final deltaLink, so a
//! change made while a client pages through a round shows up (again) in the next round — the
//! replays the docs tell clients to expect. Incremental rounds are computed once per window
//! and cached; initial rounds read current state with a key-based cursor.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::GraphSim;
use crate::http::{
    Filter, GraphError, Prefer, allow_options, base_url, context, link, parse_prefer, parse_query,
    parse_select, refuse_non_directory, render,
};
use crate::permissions::{MEMBER_READ_HIDDEN, Roles, hidden_membership};
use crate::schema::{Key, ObjectKind};
use crate::store::{Change, DirObject, Life, Tenant};

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

fn request_query(
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
fn query_params(q: &DeltaQuery) -> Vec<(String, String)> {
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
    // Decode first: a forced resync answers with a Location that keeps the client's query.
    enum Start {
        Page(PageToken),
        Latest(DeltaQuery),
        Initial(DeltaQuery),
        From(DeltaQuery, usize),
    }
    let start: Result<Start, GraphError> = if let Some(skip) = params.get("$skiptoken") {
        crate::token::decode::<PageToken>(skip)
            .filter(|t| t.q.k == res)
            .map(Start::Page)
            .ok_or_else(bad_token)
    } else {
        match params.get("$deltatoken").map(String::as_str) {
            Some("latest") => request_query(&params, res, epoch).map(Start::Latest),
            // An empty $deltatoken (the Location of a 410) starts over.
            None | Some("") => {
                allow_options(&params, &["$select", "$filter", "$expand", "$deltatoken"])?;
                request_query(&params, res, epoch).map(Start::Initial)
            }
            Some(token) => crate::token::decode::<LinkToken>(token)
                .filter(|t| t.q.k == res)
                .map(|t| Start::From(t.q, t.pos))
                .ok_or_else(bad_token),
        }
    };
    if sim.take_resync(res) {
        let q = match &start {
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
        let location = link(&base, res.path(), &refs);
        let mut error = GraphError::new(
            StatusCode::GONE,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
        );
        if let Ok(value) = HeaderValue::from_str(&location) {
            error.headers.push((header::LOCATION, value));
        }
        return Err(error);
    }
    let page = match start? {
        Start::Page(p) => {
            if p.q.ep != epoch || p.to > log_len {
                return Err(sync_state_not_found());
            }
            if sim.page_token_expired(p.at) {
                return Err(GraphError::expired_page_token());
            }
            p
        }
        Start::Latest(q) => {
            let token = crate::token::encode(&LinkToken { q, pos: log_len });
            let body = json!({
                "@odata.context": context(&base, res.name(), &None),
                "@odata.deltaLink": link(&base, res.path(), &[("$deltatoken", &token)]),
                "value": [],
            });
            return Ok(Json(body).into_response());
        }
        Start::Initial(q) => PageToken {
            q,
            from: None,
            to: log_len,
            cur: 0,
            moff: 0,
            e: false,
            rp: 0,
            at: 0,
        },
        Start::From(q, pos) => {
            if q.ep != epoch || pos > log_len {
                return Err(sync_state_not_found());
            }
            PageToken {
                q,
                from: Some(pos),
                to: log_len,
                cur: 0,
                moff: 0,
                e: false,
                rp: sim.take_replay(res),
                at: 0,
            }
        }
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
    let max_refs = knobs.groups_delta_max_member_refs.max(1);

    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(&base, res.name(), &page.q.sel)),
    );
    let (values, next) = if knobs.empty_pages && !page.e {
        (Vec::new(), Some((page.cur, page.moff, true)))
    } else {
        let tenant = sim.read();
        let budget = Budget {
            objects: max_objects,
            refs: max_refs,
            minimal: prefer.minimal,
            see_hidden: roles.has(MEMBER_READ_HIDDEN),
        };
        let (values, next) = match page.from {
            None => match res {
                Resource::Users => users_initial(&tenant, &page, budget),
                Resource::Groups => groups_initial(&tenant, &page, budget),
            },
            Some(from) => {
                let items = sim.delta_items(&tenant, res, from, page.to, page.rp);
                match res {
                    Resource::Users => users_incremental(&tenant, &page, &items, budget),
                    Resource::Groups => groups_incremental(&tenant, &page, &items, budget),
                }
            }
        };
        (values, next.map(|(c, m)| (c, m, false)))
    };
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
                Value::String(link(&base, res.path(), &[("$skiptoken", &token)])),
            );
        }
        None => {
            let token = crate::token::encode(&LinkToken {
                q: page.q,
                pos: page.to,
            });
            body.insert(
                "@odata.deltaLink".into(),
                Value::String(link(&base, res.path(), &[("$deltatoken", &token)])),
            );
        }
    }
    let mut response = Json(Value::Object(body)).into_response();
    if let Some(applied) = preference_applied(&prefer, max_objects) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("preference-applied"), applied);
    }
    Ok(response)
}

use axum::http::HeaderName;

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

#[derive(Debug, Clone, Copy)]
struct Budget {
    objects: usize,
    refs: usize,
    minimal: bool,
    /// The token holds Member.Read.Hidden.
    see_hidden: bool,
}

impl Budget {
    /// Whether the members of this group may be reported.
    fn members_of(&self, group: &DirObject) -> bool {
        self.see_hidden || !hidden_membership(group)
    }
}

type PageOut = (Vec<Value>, Option<(u64, u64)>);

fn removed(id: &str, reason: &str) -> Value {
    json!({"id": id, "@removed": {"reason": reason}})
}

fn wanted(q: &DeltaQuery, id: &str) -> bool {
    q.ids
        .as_ref()
        .is_none_or(|ids| ids.iter().any(|i| i.eq_ignore_ascii_case(id)))
}

/// Candidates of an initial round: the filtered ids (sorted) or the whole set from `cur`.
fn initial_candidates<'t>(
    tenant: &'t Tenant,
    q: &DeltaQuery,
    set: &'t BTreeSet<u32>,
    kind: ObjectKind,
    cur: u32,
) -> Box<dyn Iterator<Item = u32> + 't> {
    match &q.ids {
        Some(ids) => {
            let mut idxs: Vec<u32> = ids
                .iter()
                .filter_map(|id| tenant.lookup(id))
                .filter(|i| tenant.obj(*i).kind == kind && *i >= cur)
                .collect();
            idxs.sort_unstable();
            idxs.dedup();
            Box::new(idxs.into_iter())
        }
        None => Box::new(set.range(cur..).copied()),
    }
}

fn cursor(cur: u64) -> u32 {
    u32::try_from(cur).unwrap_or(u32::MAX)
}

fn users_initial(tenant: &Tenant, page: &PageToken, budget: Budget) -> PageOut {
    let mut values = Vec::new();
    let candidates = initial_candidates(
        tenant,
        &page.q,
        &tenant.users,
        ObjectKind::User,
        cursor(page.cur),
    );
    for idx in candidates {
        let obj = tenant.obj(idx);
        let value = match obj.life {
            Life::Active => Value::Object(render(obj, page.q.sel.as_deref(), false)),
            // Deleted objects may show up in an initial round too (delta-query-overview.md).
            Life::SoftDeleted => removed(&obj.id, "changed"),
            Life::HardDeleted => continue,
        };
        if values.len() == budget.objects {
            return (values, Some((u64::from(idx), 0)));
        }
        values.push(value);
    }
    (values, None)
}

/// Selected property names (the default set when there is no `$select`).
fn selected(q: &DeltaQuery, kind: ObjectKind) -> Vec<&str> {
    match &q.sel {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => kind.default_select().to_vec(),
    }
}

fn minimal_row(obj: &crate::store::DirObject, changed: &[&str]) -> Map<String, Value> {
    let owned: Vec<String> = changed.iter().map(|s| (*s).to_owned()).collect();
    render(obj, Some(&owned), false)
}

fn users_incremental(
    tenant: &Tenant,
    page: &PageToken,
    items: &[DeltaItem],
    budget: Budget,
) -> PageOut {
    let mut values = Vec::new();
    let sel = selected(&page.q, ObjectKind::User);
    let mut i = usize::try_from(page.cur).unwrap_or(usize::MAX);
    while let Some(item) = items.get(i) {
        if values.len() == budget.objects {
            return (values, Some((i as u64, 0)));
        }
        i += 1;
        let obj = tenant.obj(item.obj);
        if !wanted(&page.q, &obj.id) {
            continue;
        }
        let value = match obj.life {
            Life::HardDeleted => removed(&obj.id, "deleted"),
            Life::SoftDeleted => removed(&obj.id, "changed"),
            Life::Active if item.fresh => Value::Object(render(obj, page.q.sel.as_deref(), false)),
            Life::Active => {
                let changed: Vec<&str> = sel
                    .iter()
                    .copied()
                    .filter(|n| item.props.contains(*n))
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                if budget.minimal {
                    Value::Object(minimal_row(obj, &changed))
                } else {
                    Value::Object(render(obj, page.q.sel.as_deref(), false))
                }
            }
        };
        values.push(value);
    }
    (values, None)
}

fn member_ref(tenant: &Tenant, member: u32, added: bool) -> Value {
    let o = tenant.obj(member);
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        Value::String(o.kind.odata_type().into()),
    );
    m.insert("id".into(), Value::String(o.id.clone()));
    if !added {
        m.insert("@removed".into(), json!({"reason": "deleted"}));
    }
    Value::Object(m)
}

fn id_only(id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_owned()));
    m
}

fn groups_initial(tenant: &Tenant, page: &PageToken, budget: Budget) -> PageOut {
    let mut values = Vec::new();
    let mut refs = 0usize;
    let candidates = initial_candidates(
        tenant,
        &page.q,
        &tenant.groups,
        ObjectKind::Group,
        cursor(page.cur),
    );
    for g in candidates {
        let start = if u64::from(g) == page.cur {
            page.moff
        } else {
            0
        };
        if values.len() == budget.objects {
            return (values, Some((u64::from(g), start)));
        }
        let obj = tenant.obj(g);
        if obj.life != Life::Active {
            continue;
        }
        let head = start == 0;
        let mut entry = if head {
            render(obj, page.q.sel.as_deref(), false)
        } else {
            id_only(&obj.id)
        };
        if page.q.mem && budget.members_of(obj) {
            let mut members = obj
                .members
                .range(cursor(start)..)
                .copied()
                .filter(|m| tenant.obj(*m).life == Life::Active)
                .peekable();
            if members.peek().is_some() {
                let room = budget.refs - refs;
                if room == 0 {
                    return (values, Some((u64::from(g), start)));
                }
                let chunk: Vec<u32> = members.by_ref().take(room).collect();
                let more = members.peek().is_some();
                refs += chunk.len();
                let last = chunk.last().copied().unwrap_or(0);
                entry.insert(
                    "members@delta".into(),
                    Value::Array(
                        chunk
                            .into_iter()
                            .map(|m| member_ref(tenant, m, true))
                            .collect(),
                    ),
                );
                values.push(Value::Object(entry));
                if more {
                    // The same group continues on the next page with more members@delta.
                    return (values, Some((u64::from(g), u64::from(last) + 1)));
                }
                continue;
            } else if !head {
                continue;
            }
        }
        values.push(Value::Object(entry));
    }
    (values, None)
}

fn groups_incremental(
    tenant: &Tenant,
    page: &PageToken,
    items: &[DeltaItem],
    budget: Budget,
) -> PageOut {
    let mut values = Vec::new();
    let mut refs = 0usize;
    let sel = selected(&page.q, ObjectKind::Group);
    let mut i = usize::try_from(page.cur).unwrap_or(usize::MAX);
    let mut moff = usize::try_from(page.moff).unwrap_or(0);
    while let Some(item) = items.get(i) {
        let obj = tenant.obj(item.obj);
        if !wanted(&page.q, &obj.id) {
            i += 1;
            moff = 0;
            continue;
        }
        if values.len() == budget.objects {
            return (values, Some((i as u64, moff as u64)));
        }
        if obj.life == Life::HardDeleted {
            if moff == 0 {
                values.push(removed(&obj.id, "deleted"));
            }
            i += 1;
            moff = 0;
            continue;
        }
        let member_changes = if page.q.mem && budget.members_of(obj) {
            &item.members[..]
        } else {
            &[]
        };
        let mut entry = if moff > 0 {
            id_only(&obj.id)
        } else {
            let changed: Vec<&str> = sel
                .iter()
                .copied()
                .filter(|n| item.props.contains(*n))
                .collect();
            if item.fresh {
                render(obj, page.q.sel.as_deref(), false)
            } else if !changed.is_empty() {
                if budget.minimal {
                    minimal_row(obj, &changed)
                } else {
                    render(obj, page.q.sel.as_deref(), false)
                }
            } else if !member_changes.is_empty() {
                if budget.minimal {
                    id_only(&obj.id)
                } else {
                    render(obj, page.q.sel.as_deref(), false)
                }
            } else {
                i += 1;
                continue;
            }
        };
        if moff < member_changes.len() {
            let room = budget.refs - refs;
            if room == 0 {
                return (values, Some((i as u64, moff as u64)));
            }
            let end = member_changes.len().min(moff + room);
            entry.insert(
                "members@delta".into(),
                Value::Array(
                    member_changes[moff..end]
                        .iter()
                        .map(|(m, added)| member_ref(tenant, *m, *added))
                        .collect(),
                ),
            );
            refs += end - moff;
            values.push(Value::Object(entry));
            if end < member_changes.len() {
                return (values, Some((i as u64, end as u64)));
            }
        } else {
            values.push(Value::Object(entry));
        }
        i += 1;
        moff = 0;
    }
    (values, None)
}

/// Merges the log window `[from, to)` into one item per object, in order of first change.
pub(crate) fn compute_items(
    tenant: &Tenant,
    res: Resource,
    from: usize,
    to: usize,
    replay: usize,
) -> Vec<DeltaItem> {
    let kind = res.kind();
    let mut items: Vec<DeltaItem> = Vec::new();
    let mut pos: HashMap<u32, usize> = HashMap::new();
    let mut member_pos: HashMap<(u32, u32), usize> = HashMap::new();
    let mut item = |items: &mut Vec<DeltaItem>, obj: u32| -> usize {
        *pos.entry(obj).or_insert_with(|| {
            items.push(DeltaItem {
                obj,
                fresh: false,
                props: BTreeSet::new(),
                members: Vec::new(),
            });
            items.len() - 1
        })
    };
    let window = tenant.log.get(from..to).unwrap_or(&[]);
    for change in window {
        match change {
            Change::Created(o) | Change::Restored(o) if tenant.obj(*o).kind == kind => {
                let k = item(&mut items, *o);
                items[k].fresh = true;
            }
            Change::Updated(o, props) if tenant.obj(*o).kind == kind => {
                let k = item(&mut items, *o);
                items[k].props.extend(props.iter().cloned());
            }
            Change::SoftDeleted(o) | Change::HardDeleted(o) if tenant.obj(*o).kind == kind => {
                item(&mut items, *o);
            }
            Change::MemberAdded { group, member } | Change::MemberRemoved { group, member }
                if res == Resource::Groups =>
            {
                let added = matches!(change, Change::MemberAdded { .. });
                let k = item(&mut items, *group);
                match member_pos.get(&(*group, *member)) {
                    Some(p) => items[k].members[*p].1 = added,
                    None => {
                        member_pos.insert((*group, *member), items[k].members.len());
                        items[k].members.push((*member, added));
                    }
                }
            }
            _ => {}
        }
    }
    // Replays: objects the client already has, sent again in full (idempotence testing).
    let set = match res {
        Resource::Users => &tenant.users,
        Resource::Groups => &tenant.groups,
    };
    for o in set
        .iter()
        .copied()
        .filter(|o| tenant.obj(*o).life == Life::Active)
        .take(replay)
    {
        let members = if res == Resource::Groups {
            tenant
                .obj(o)
                .members
                .iter()
                .copied()
                .filter(|m| tenant.obj(*m).life == Life::Active)
                .map(|m| (m, true))
                .collect()
        } else {
            Vec::new()
        };
        items.push(DeltaItem {
            obj: o,
            fresh: true,
            props: BTreeSet::new(),
            members,
        });
    }
    items
}

pub(crate) type DeltaCache = HashMap<DeltaCacheKey, Arc<Vec<DeltaItem>>>;
