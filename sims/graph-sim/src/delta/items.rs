//! Incremental rounds: the change-log window merged into one item per object (computed once
//! per window and cached by `GraphSim`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::store::{Change, Life, Tenant};

use super::{DeltaCacheKey, DeltaItem, Resource};

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
