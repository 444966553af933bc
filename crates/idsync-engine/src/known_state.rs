//! What a target holds after a run, worked out from what it held before and what the run did to
//! it. A run that keeps this can plan the next one from it instead of reading the whole target
//! again: at 100k users that is thousands of requests saved on every incremental run.
//!
//! The update mirrors what each operation does to the target as its full read would report it
//! (Bitbucket's licensed groups included), so that planning from the known state and planning
//! from a fresh read agree. When a result leaves the target's state in doubt, the known state is
//! given up and the next run reads the target in full.

use idsync_model::name::name_key;
use std::collections::{BTreeSet, HashMap};

use idsync_model::{
    ActualState, Capabilities, Deprovisioning, Operation, TargetErrorKind, TargetUser,
};

use crate::executor::{OpResult, OpStatus};
use crate::planner::{FastMap, fast_map};

/// Why the state after a run cannot be known without reading the target again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InDoubt(pub String);

/// The target's state once `results` have been applied to `before`.
pub fn state_after(
    before: ActualState,
    capabilities: &Capabilities,
    results: &[OpResult],
) -> Result<ActualState, InDoubt> {
    let mut replay = Replay::new(before, capabilities);
    for result in results {
        if applied(result)? {
            replay.apply(result)?;
        }
    }
    Ok(replay.finish())
}

/// Whether a result changed the target (`Ok(false)`: it surely did not), or `InDoubt` when
/// what it did cannot be told.
fn applied(result: &OpResult) -> Result<bool, InDoubt> {
    match result.status {
        OpStatus::Done => Ok(true),
        OpStatus::Planned | OpStatus::Skipped => Ok(false),
        OpStatus::AlreadyDone => Err(InDoubt(format!(
            "{} found the target already changed: it is not as idsync last knew it",
            result.planned.op.kind()
        ))),
        OpStatus::Failed => {
            if refused_untouched(result.error_kind) {
                return Ok(false);
            }
            if result.error_kind == Some(TargetErrorKind::Conflict) {
                return Err(InDoubt(format!(
                    "{} found the target not as idsync last knew it (a name already taken)",
                    result.planned.op.kind()
                )));
            }
            Err(InDoubt(format!(
                "{} failed in a way that leaves the target's state unknown",
                result.planned.op.kind()
            )))
        }
    }
}

/// The target's state as results are applied to it, one at a time, with the indexes that
/// finding an account or a group in it takes.
struct Replay<'c> {
    state: ActualState,
    capabilities: &'c Capabilities,
    /// Account key → its place in `state.users`.
    position: FastMap<String, usize>,
    /// Group names compare without case on every Atlassian product; keep the target's
    /// spelling: lower-case name → name as the target spells it.
    group_names: HashMap<String, String>,
    /// Accounts deleted: taken out of `state.users` at the end, so that positions hold.
    deleted: BTreeSet<String>,
}

impl<'c> Replay<'c> {
    fn new(state: ActualState, capabilities: &'c Capabilities) -> Self {
        let mut position: FastMap<String, usize> = fast_map(state.users.len());
        for (i, u) in state.users.iter().enumerate() {
            position.insert(u.key.clone(), i);
        }
        let group_names: HashMap<String, String> = state
            .groups
            .iter()
            .chain(state.memberships.keys())
            .map(|g| (name_key(g), g.clone()))
            .collect();
        Replay {
            state,
            capabilities,
            position,
            group_names,
            deleted: BTreeSet::new(),
        }
    }

    /// The group's name as the target spells it (as first seen, when the target had no such
    /// group yet).
    fn group_name(&mut self, group: &str) -> String {
        self.group_names
            .entry(name_key(group))
            .or_insert_with(|| group.to_owned())
            .clone()
    }

    /// Where the account `op` changed is in `state.users`; an account idsync did not know puts
    /// the state in doubt.
    fn user_at(&self, op: &Operation, key: &str) -> Result<usize, InDoubt> {
        self.position.get(key).copied().ok_or_else(|| {
            InDoubt(format!(
                "{} changed account {key:?}, which idsync did not know",
                op.kind()
            ))
        })
    }

    /// Applies one result that changed the target.
    fn apply(&mut self, result: &OpResult) -> Result<(), InDoubt> {
        let op = &result.planned.op;
        match op {
            Operation::CreateUser { .. } => self.create_user(op, result.key.clone()),
            Operation::RenameUser { .. }
            | Operation::UpdateUser { .. }
            | Operation::SetAttribute { .. }
            | Operation::ReactivateUser { .. }
            | Operation::DeactivateUser { .. }
            | Operation::DeleteUser { .. } => self.change_account(op),
            Operation::CreateGroup { .. }
            | Operation::DeleteGroup { .. }
            | Operation::AddMembership { .. }
            | Operation::RemoveMembership { .. }
            | Operation::HandOverLead { .. } => {
                self.change_groups(op);
                Ok(())
            }
        }
    }

    /// A new account, under the key the target gave it (a creation that did not say which is
    /// in doubt).
    fn create_user(&mut self, op: &Operation, key: Option<String>) -> Result<(), InDoubt> {
        let Operation::CreateUser {
            user,
            email,
            display_name,
            attributes,
            external_id,
        } = op
        else {
            return Ok(());
        };
        let Some(key) = key else {
            return Err(InDoubt(format!(
                "the target did not say which key it gave account {user:?}"
            )));
        };
        self.position.insert(key.clone(), self.state.users.len());
        self.state.users.push(TargetUser {
            key: key.clone(),
            username: user.clone(),
            email: email.clone().filter(|_| self.capabilities.reads_email),
            display_name: display_name.clone().or_else(|| Some(user.clone())),
            active: true,
            attributes: attributes.clone(),
            external_id: external_id.clone(),
        });
        if let Deprovisioning::RemoveLicensedGroups {
            reactivate_group, ..
        } = &self.capabilities.deprovisioning
        {
            // Bitbucket's create call adds the user to the default (licensed) group.
            let name = self.group_name(reactivate_group);
            add_member(&mut self.state, name, key);
        }
        Ok(())
    }

    /// An existing account renamed, updated, reactivated, deactivated or deleted.
    fn change_account(&mut self, op: &Operation) -> Result<(), InDoubt> {
        let capabilities = self.capabilities;
        match op {
            Operation::RenameUser {
                key, new_username, ..
            } => {
                let i = self.user_at(op, key)?;
                self.state.users[i].username = new_username.clone();
            }
            Operation::UpdateUser { key, changes, .. } => {
                let i = self.user_at(op, key)?;
                let u = &mut self.state.users[i];
                if let Some(email) = &changes.email
                    && capabilities.reads_email
                {
                    u.email = Some(email.clone());
                }
                if let Some(name) = &changes.display_name {
                    u.display_name = Some(name.clone());
                }
            }
            Operation::SetAttribute {
                key, name, value, ..
            } => {
                let i = self.user_at(op, key)?;
                let attributes = &mut self.state.users[i].attributes;
                match value {
                    Some(v) => attributes.insert(name.clone(), v.clone()),
                    None => attributes.remove(name),
                };
            }
            Operation::ReactivateUser { key, .. } => {
                let i = self.user_at(op, key)?;
                self.state.users[i].active = true;
                if let Deprovisioning::RemoveLicensedGroups {
                    reactivate_group, ..
                } = &capabilities.deprovisioning
                {
                    let name = self.group_name(reactivate_group);
                    add_member(&mut self.state, name, key.clone());
                }
            }
            Operation::DeactivateUser { key, .. } => {
                let i = self.user_at(op, key)?;
                self.state.users[i].active = false;
                if let Deprovisioning::RemoveLicensedGroups { groups, .. } =
                    &capabilities.deprovisioning
                {
                    for group in groups {
                        let name = self.group_name(group);
                        if let Some(members) = self.state.memberships.get_mut(&name) {
                            members.remove(key);
                        }
                    }
                }
            }
            Operation::DeleteUser { key, .. } => {
                self.user_at(op, key)?;
                self.deleted.insert(key.clone());
                for members in self.state.memberships.values_mut() {
                    members.remove(key);
                }
            }
            // Not about one existing account: see `apply`.
            _ => {}
        }
        Ok(())
    }

    /// A group created or deleted, a membership added or removed, a lead handed over.
    fn change_groups(&mut self, op: &Operation) {
        match op {
            Operation::CreateGroup { group } => {
                let name = self.group_name(group);
                self.state.groups.insert(name);
            }
            Operation::DeleteGroup { group } => {
                let name = self.group_name(group);
                self.state.groups.remove(&name);
                self.state.memberships.remove(&name);
            }
            Operation::AddMembership { group, key, .. } => {
                let name = self.group_name(group);
                add_member(&mut self.state, name, key.clone());
            }
            Operation::RemoveMembership { group, key, .. } => {
                let name = self.group_name(group);
                if let Some(members) = self.state.memberships.get_mut(&name) {
                    members.remove(key);
                }
            }
            Operation::HandOverLead {
                kind, id, new_lead, ..
            } => {
                for lead in &mut self.state.leads {
                    if lead.kind == *kind && &lead.id == id {
                        lead.lead = new_lead.clone();
                    }
                }
            }
            // Changes an account: see `apply`.
            _ => {}
        }
    }

    /// The state, without the accounts deleted.
    fn finish(mut self) -> ActualState {
        if !self.deleted.is_empty() {
            self.state.users.retain(|u| !self.deleted.contains(&u.key));
        }
        self.state
    }
}

fn add_member(state: &mut ActualState, group: String, key: String) {
    state.groups.insert(group.clone());
    state.memberships.entry(group).or_default().insert(key);
}

/// Says who holds the name a failed rename found taken, as far as `before` (what idsync knew
/// of the target when it planned) tells: a per-user problem that names both accounts, not just
/// the refusal.
pub fn explain_conflicts(before: &ActualState, results: &mut [OpResult]) {
    let is_conflict = |r: &OpResult| {
        r.status == OpStatus::Failed && r.error_kind == Some(TargetErrorKind::Conflict)
    };
    if !results.iter().any(is_conflict) {
        return;
    }
    // Usernames compare without case on every Atlassian product.
    let by_name: HashMap<String, &TargetUser> = before
        .users
        .iter()
        .map(|u| (name_key(&u.username), u))
        .collect();
    for result in results.iter_mut() {
        if !is_conflict(result) {
            continue;
        }
        let (wanted, subject) = match &result.planned.op {
            Operation::RenameUser {
                user, new_username, ..
            } => (new_username, format!("account '{user}' cannot be renamed")),
            // A creation that meets an account says so itself (see the executor).
            _ => continue,
        };
        let holder = by_name.get(&name_key(wanted));
        let who = match holder {
            Some(h) => format!(
                "another account, '{}' (key {}), holds the name '{wanted}'",
                h.username, h.key
            ),
            None => format!(
                "another account holds the name '{wanted}' (one idsync did not know of: made or \
                 renamed in the product since its last full read of the target)"
            ),
        };
        let said = format!(
            "{subject}: {who}; the next run reads the target in full and reports it until the \
             name is freed or the source username changed"
        );
        result.error = Some(match result.error.take() {
            Some(answer) => format!("{said}. The target answered: {answer}"),
            None => said,
        });
    }
}

/// Failures where the target refused the request outright, so nothing changed. Anything else
/// (a timeout, a 5xx, an answer that could not be read) may or may not have been applied.
fn refused_untouched(kind: Option<TargetErrorKind>) -> bool {
    matches!(
        kind,
        Some(
            TargetErrorKind::Unauthorized
                | TargetErrorKind::Forbidden
                | TargetErrorKind::LicenceLimit
                | TargetErrorKind::ReadOnlyDirectory
                | TargetErrorKind::Rejected
                | TargetErrorKind::Unsupported
        )
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use idsync_model::PlannedOperation;

    use super::*;

    fn caps(deprovisioning: Deprovisioning) -> Capabilities {
        Capabilities {
            deprovisioning,
            custom_attributes: false,
            bulk_membership: false,
            leads: false,
            ..Capabilities::FULL
        }
    }

    fn bitbucket() -> Capabilities {
        caps(Deprovisioning::RemoveLicensedGroups {
            groups: BTreeSet::from(["stash-users".to_owned()]),
            reactivate_group: "stash-users".to_owned(),
        })
    }

    fn result(op: Operation, status: OpStatus, key: Option<&str>) -> OpResult {
        OpResult {
            planned: PlannedOperation {
                target: "t".into(),
                op,
                reason: String::new(),
                source_id: None,
            },
            status,
            error: None,
            error_kind: None,
            key: key.map(str::to_owned),
            duration_ms: 0,
        }
    }

    fn one_user() -> ActualState {
        ActualState {
            users: vec![TargetUser {
                key: "1".into(),
                username: "ada".into(),
                email: None,
                display_name: Some("Ada".into()),
                active: true,
                attributes: BTreeMap::new(),
                external_id: None,
            }],
            groups: BTreeSet::from(["Stash-Users".to_owned()]),
            memberships: BTreeMap::from([(
                "Stash-Users".to_owned(),
                BTreeSet::from(["1".to_owned()]),
            )]),
            leads: Vec::new(),
        }
    }

    #[test]
    fn bitbucket_licences_follow_creation_and_deprovisioning() {
        let create = result(
            Operation::CreateUser {
                user: "bob".into(),
                email: Some("bob@x".into()),
                display_name: None,
                attributes: BTreeMap::new(),
                external_id: None,
            },
            OpStatus::Done,
            Some("2"),
        );
        let deactivate = result(
            Operation::DeactivateUser {
                key: "1".into(),
                user: "ada".into(),
            },
            OpStatus::Done,
            None,
        );
        let after = state_after(one_user(), &bitbucket(), &[create, deactivate]).expect("known");
        // The target's spelling of the group is kept; the new user holds the licence, ada
        // lost it.
        assert_eq!(
            after.memberships.get("Stash-Users"),
            Some(&BTreeSet::from(["2".to_owned()]))
        );
        assert_eq!(after.groups.len(), 1);
        let bob = after.users.iter().find(|u| u.key == "2").expect("bob");
        assert_eq!(bob.display_name.as_deref(), Some("bob"));
        assert!(!after.users[0].active);
    }

    #[test]
    fn refusals_change_nothing_and_doubts_give_up() {
        let op = Operation::AddMembership {
            group: "devs".into(),
            key: "1".into(),
            user: "ada".into(),
        };
        let mut refused = result(op.clone(), OpStatus::Failed, None);
        refused.error_kind = Some(TargetErrorKind::LicenceLimit);
        let skipped = result(op.clone(), OpStatus::Skipped, None);
        assert_eq!(
            state_after(one_user(), &bitbucket(), &[refused, skipped]),
            Ok(one_user())
        );
        let mut timed_out = result(op.clone(), OpStatus::Failed, None);
        timed_out.error_kind = Some(TargetErrorKind::Unavailable);
        assert!(state_after(one_user(), &bitbucket(), &[timed_out]).is_err());
        let already = result(op, OpStatus::AlreadyDone, None);
        assert!(state_after(one_user(), &bitbucket(), &[already]).is_err());
        let unknown_account = result(
            Operation::RenameUser {
                key: "9".into(),
                user: "x".into(),
                new_username: "y".into(),
            },
            OpStatus::Done,
            None,
        );
        assert!(state_after(one_user(), &bitbucket(), &[unknown_account]).is_err());
    }

    #[test]
    fn deleted_accounts_leave_their_groups() {
        let delete = result(
            Operation::DeleteUser {
                key: "1".into(),
                user: "ada".into(),
            },
            OpStatus::Done,
            None,
        );
        let after =
            state_after(one_user(), &caps(Deprovisioning::Deactivate), &[delete]).expect("known");
        assert!(after.users.is_empty());
        assert_eq!(after.memberships.get("Stash-Users"), Some(&BTreeSet::new()));
    }

    #[test]
    fn a_name_found_taken_gives_up_the_state_and_names_both_accounts() {
        let mut before = ActualState::default();
        for (key, name) in [("K1", "ada"), ("K2", "ada.byron")] {
            before.users.push(TargetUser {
                key: key.into(),
                username: name.into(),
                email: None,
                display_name: None,
                active: true,
                attributes: BTreeMap::new(),
                external_id: None,
            });
        }
        let rename = |new_username: &str| OpResult {
            planned: PlannedOperation {
                target: "jira".into(),
                op: Operation::RenameUser {
                    key: "K1".into(),
                    user: "ada".into(),
                    new_username: new_username.into(),
                },
                reason: String::new(),
                source_id: None,
            },
            status: OpStatus::Failed,
            error: Some("HTTP 400: A user with that username already exists".into()),
            error_kind: Some(TargetErrorKind::Conflict),
            key: None,
            duration_ms: 0,
        };
        let mut results = vec![rename("Ada.Byron"), rename("ada.lovelace")];
        explain_conflicts(&before, &mut results);
        let known = results[0].error.as_deref().unwrap_or_default();
        assert!(
            known.contains("'ada'") && known.contains("'ada.byron' (key K2)"),
            "{known}"
        );
        assert!(
            known.contains("already exists"),
            "the answer is kept: {known}"
        );
        let unknown = results[1].error.as_deref().unwrap_or_default();
        assert!(unknown.contains("did not know"), "{unknown}");
        let caps = caps(Deprovisioning::Deactivate);
        let why = state_after(before, &caps, &results).expect_err("in doubt");
        assert!(why.0.contains("not as idsync last knew it"), "{why}");
    }
}
