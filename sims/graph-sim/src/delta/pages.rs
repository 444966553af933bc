//! One page of a round: initial rounds read current state from a cursor, incremental rounds
//! render the merged items of the log window; groups carry `members@delta` within the page's
//! budget of member references.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::http::render;
use crate::schema::ObjectKind;
use crate::store::{Life, Tenant};

use super::{Budget, DeltaItem, DeltaQuery, PageOut, PageToken};

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

pub(super) fn users_initial(tenant: &Tenant, page: &PageToken, budget: Budget<'_>) -> PageOut {
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

pub(super) fn users_incremental(
    tenant: &Tenant,
    page: &PageToken,
    items: &[DeltaItem],
    budget: Budget<'_>,
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

pub(super) fn groups_initial(tenant: &Tenant, page: &PageToken, budget: Budget<'_>) -> PageOut {
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
        if page.q.mem && budget.roles.sees_members_of(obj) {
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

pub(super) fn groups_incremental(
    tenant: &Tenant,
    page: &PageToken,
    items: &[DeltaItem],
    budget: Budget<'_>,
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
        let member_changes = if page.q.mem && budget.roles.sees_members_of(obj) {
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
