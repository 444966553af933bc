//! What a run's results mean for idsync's own records: which links to write or drop and which
//! memberships it now manages. Kept pure so that the runner, the tests and a crash-and-rerun all
//! agree on the bookkeeping.

use std::collections::BTreeSet;

use idsync_model::Operation;

use crate::executor::OpResult;
use crate::planner::{Link, ManagedMembership, TargetPlan};

/// Changes to the store after (part of) a plan was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    pub upsert_links: Vec<Link>,
    /// (source id or key) of links to drop: by account key.
    pub remove_links: Vec<String>,
    pub add_managed: BTreeSet<ManagedMembership>,
    pub remove_managed: BTreeSet<ManagedMembership>,
}

/// What follows from the plan itself whatever the results: adoptions become links, memberships
/// already as desired become managed, links to vanished accounts are dropped.
pub fn from_plan(app: &str, plan: &TargetPlan) -> Bookkeeping {
    let mut b = Bookkeeping::default();
    for a in &plan.adoptions {
        b.upsert_links.push(Link {
            app: app.to_owned(),
            source_id: a.source_id.clone(),
            key: a.key.clone(),
            username: a.user.clone(),
        });
    }
    b.add_managed
        .extend(plan.claimed_memberships.iter().cloned());
    b.remove_links
        .extend(plan.dropped_links.iter().map(|l| l.key.clone()));
    b
}

/// What follows from one operation's result.
pub fn from_result(app: &str, result: &OpResult, into: &mut Bookkeeping) {
    if !result.succeeded() {
        return;
    }
    let source_id = result.planned.source_id.clone();
    match &result.planned.op {
        Operation::CreateUser { user, .. } => {
            if let (Some(key), Some(source_id)) = (&result.key, source_id) {
                into.upsert_links.push(Link {
                    app: app.to_owned(),
                    source_id,
                    key: key.clone(),
                    username: user.clone(),
                });
            }
        }
        Operation::RenameUser {
            key, new_username, ..
        } => {
            if let Some(source_id) = source_id {
                into.upsert_links.push(Link {
                    app: app.to_owned(),
                    source_id,
                    key: key.clone(),
                    username: new_username.clone(),
                });
            }
        }
        Operation::DeleteUser { key, .. } => into.remove_links.push(key.clone()),
        Operation::AddMembership { group, .. } => {
            if let Some(key) = &result.key {
                into.add_managed.insert((group.to_lowercase(), key.clone()));
            }
        }
        Operation::RemoveMembership { group, key, .. } => {
            into.remove_managed
                .insert((group.to_lowercase(), key.clone()));
        }
        _ => {}
    }
}
