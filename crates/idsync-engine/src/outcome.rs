//! What a run's results mean for idsync's own records: which links to write or drop and which
//! memberships it now manages. Kept pure so that the runner, the tests and a crash-and-rerun all
//! agree on the bookkeeping.

use idsync_model::name::name_key;
use std::collections::{HashMap, HashSet};

use idsync_model::{ActualState, Operation, PlannedOperation, TargetErrorKind, TargetUser};

use crate::executor::{OpResult, OpStatus};
use crate::planner::{Link, TargetPlan};

// The store writes these down: in the model, so that it stands without the engine.
pub use idsync_model::bookkeeping::{Bookkeeping, CreateIntent, Intentions};

/// The intentions of a phase about to be sent.
pub fn intentions(app: &str, operations: &[PlannedOperation]) -> Intentions {
    let mut i = Intentions::default();
    for planned in operations {
        match &planned.op {
            Operation::CreateUser { user, email, .. } => {
                if let Some(source_id) = &planned.source_id {
                    i.creates.push(CreateIntent {
                        app: app.to_owned(),
                        source_id: source_id.clone(),
                        username: user.clone(),
                        email: email.clone(),
                    });
                }
            }
            Operation::AddMembership { group, key, .. } if !key.is_empty() => {
                i.claims.insert((name_key(group), key.clone()));
            }
            _ => {}
        }
    }
    i
}

/// True when the operation surely left the target as it was: skipped, or refused for a reason
/// that is not a timeout, an outage or an answer that could not be read.
fn changed_nothing(result: &OpResult) -> bool {
    match result.status {
        OpStatus::Skipped => true,
        OpStatus::Failed => matches!(
            result.error_kind,
            Some(kind) if !matches!(
                kind,
                TargetErrorKind::RateLimited
                    | TargetErrorKind::Unavailable
                    | TargetErrorKind::MalformedResponse
            )
        ),
        OpStatus::Planned | OpStatus::Done | OpStatus::AlreadyDone => false,
    }
}

/// What follows from the plan itself whatever the results: adoptions become links, memberships
/// already as desired become managed (the planner claims them under `enforce` only), links to
/// vanished accounts are dropped.
pub fn from_plan(app: &str, plan: &TargetPlan) -> Bookkeeping {
    let mut b = Bookkeeping::default();
    for a in &plan.adoptions {
        b.upsert_links.push(Link {
            app: app.to_owned(),
            source_id: a.source_id.clone(),
            key: a.key.clone(),
            username: a.user.clone(),
            kept_username: a.kept_username.clone(),
            rename_reported: None,
        });
    }
    b.upsert_links.extend(plan.rename_reports.iter().cloned());
    b.add_managed
        .extend(plan.claimed_memberships.iter().cloned());
    b.remove_links
        .extend(plan.dropped_links.iter().map(|l| l.key.clone()));
    b
}

/// What follows from one operation's result, given that [`intentions`] were recorded before
/// its phase was sent.
pub fn from_result(app: &str, result: &OpResult, into: &mut Bookkeeping) {
    if !result.succeeded() {
        // What the journal recorded before sending is taken back when nothing happened; an
        // uncertain failure keeps it, for the next run to settle.
        if changed_nothing(result) {
            match &result.planned.op {
                Operation::CreateUser { user, .. } => {
                    into.settled_creates.push(name_key(user));
                }
                Operation::AddMembership { group, key, .. } if !key.is_empty() => {
                    into.remove_managed.insert((name_key(group), key.clone()));
                }
                _ => {}
            }
        }
        return;
    }
    let source_id = result.planned.source_id.clone();
    match &result.planned.op {
        Operation::CreateUser { user, email, .. } => {
            if let (Some(key), Some(source_id)) = (&result.key, source_id) {
                into.upsert_links
                    .push(Link::new(app, source_id, key.clone(), user.clone()));
                into.settled_creates.push(name_key(user));
                // An account the creation met and took over (already done) never got it.
                if let Some(email) = email
                    && result.status == OpStatus::Done
                {
                    into.sent_emails.push((key.clone(), email.clone()));
                }
            }
        }
        Operation::UpdateUser { key, changes, .. } => {
            if let Some(email) = &changes.email {
                into.sent_emails.push((key.clone(), email.clone()));
            }
        }
        Operation::RenameUser {
            key, new_username, ..
        } => {
            if let Some(source_id) = source_id {
                into.upsert_links.push(Link::new(
                    app,
                    source_id,
                    key.clone(),
                    new_username.clone(),
                ));
            }
        }
        Operation::DeleteUser { key, .. } => into.remove_links.push(key.clone()),
        // Managed from before it was sent (see `intentions`): nothing more to keep.
        Operation::AddMembership { .. } => {}
        Operation::RemoveMembership { group, key, .. } => {
            into.remove_managed.insert((name_key(group), key.clone()));
        }
        _ => {}
    }
}

/// Settles the creations that a run recorded and did not see through (it was killed, or the
/// target's answer was lost), from a full read of the target: an account found under the
/// intended username, linked to nobody and (when an e-mail was sent) with that e-mail, is the one
/// idsync created, and is linked to its source user; any other intent is dropped (the creation
/// never happened, or the name now belongs to someone else). Returns the bookkeeping and a note
/// per intent that could not be honoured.
pub fn claim_interrupted_creations(
    intents: &[CreateIntent],
    actual: &ActualState,
    links: &[Link],
) -> (Bookkeeping, Vec<String>) {
    let mut b = Bookkeeping::default();
    let mut notes = Vec::new();
    if intents.is_empty() {
        return (b, notes);
    }
    let linked_keys: HashSet<&str> = links.iter().map(|l| l.key.as_str()).collect();
    let by_username: HashMap<String, &TargetUser> = actual
        .users
        .iter()
        .map(|u| (name_key(&u.username), u))
        .collect();
    for intent in intents {
        let lower = name_key(&intent.username);
        let account = by_username.get(&lower);
        b.settled_creates.push(lower);
        let Some(account) = account else {
            continue;
        };
        // A target that does not show e-mails leaves the username to decide.
        let same_email = match (&intent.email, &account.email) {
            (Some(sent), Some(found)) => sent.eq_ignore_ascii_case(found),
            (Some(_), None) | (None, _) => true,
        };
        if linked_keys.contains(account.key.as_str()) {
            // Linked meanwhile (by this app's own bookkeeping, or another app): nothing to do.
            continue;
        }
        if !same_email {
            notes.push(format!(
                "account {:?} was not claimed: an interrupted run meant to create it, but it holds another e-mail",
                account.username
            ));
            continue;
        }
        b.upsert_links.push(Link::new(
            intent.app.clone(),
            intent.source_id.clone(),
            account.key.clone(),
            account.username.clone(),
        ));
        if let Some(email) = &intent.email {
            b.sent_emails.push((account.key.clone(), email.clone()));
        }
    }
    (b, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_model::UserChanges;

    fn result(op: Operation, status: OpStatus) -> OpResult {
        OpResult {
            planned: PlannedOperation {
                target: "wiki".into(),
                op,
                reason: String::new(),
                source_id: Some("id-1".into()),
            },
            status,
            error: None,
            error_kind: None,
            key: Some("K1".into()),
            duration_ms: 0,
        }
    }

    fn create(email: &str) -> Operation {
        Operation::CreateUser {
            user: "ada".into(),
            email: Some(email.into()),
            display_name: None,
            attributes: Default::default(),
            external_id: None,
        }
    }

    /// Only an address that surely reached the account is remembered: not one of a creation
    /// that met an existing account, nor one of a failed update.
    #[test]
    fn emails_are_remembered_only_when_sent() {
        let update = |email: &str| Operation::UpdateUser {
            key: "K1".into(),
            user: "ada".into(),
            changes: UserChanges {
                email: Some(email.into()),
                display_name: None,
            },
        };
        let mut books = Bookkeeping::default();
        for r in [
            result(create("created@x"), OpStatus::Done),
            result(create("met@x"), OpStatus::AlreadyDone),
            result(update("updated@x"), OpStatus::Done),
            result(update("refused@x"), OpStatus::Failed),
        ] {
            from_result("hr", &r, &mut books);
        }
        assert_eq!(
            books.sent_emails,
            vec![
                ("K1".to_owned(), "created@x".to_owned()),
                ("K1".to_owned(), "updated@x".to_owned()),
            ]
        );
    }
}
