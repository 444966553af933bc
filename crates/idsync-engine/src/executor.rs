//! The executor: applies a target's plan in order, with bounded concurrency inside each kind of
//! operation, retries for transient failures, and a record of every result. One failure never
//! stops the run; operations that depend on a failed one are skipped and say why.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use idsync_model::{
    Applied, Operation, OperationKind, PlannedOperation, Target, TargetError, TargetErrorKind,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// In a dry run or a held plan: not applied.
    Planned,
    Done,
    /// The target already was as asked (e.g. already a member).
    AlreadyDone,
    Failed,
    /// Not attempted because an operation it depends on failed.
    Skipped,
}

/// What happened to one planned operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    #[serde(flatten)]
    pub planned: PlannedOperation,
    pub status: OpStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure, when it failed at the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<TargetErrorKind>,
    /// The account key, once known (for created users: the new key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub duration_ms: u64,
}

impl OpResult {
    pub fn succeeded(&self) -> bool {
        matches!(self.status, OpStatus::Done | OpStatus::AlreadyDone)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Operations in flight at once on this target.
    pub concurrency: usize,
    /// Extra attempts for an operation that failed with a transient error (the HTTP layer
    /// already retries throttling; this covers errors that outlast it).
    pub retries: u32,
    pub retry_delay: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: 4,
            retries: 2,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Applies `ops` (already in plan order) to `target`. `on_result` sees each result as it comes,
/// for progress display and for recording links as the run goes (so a run killed half way
/// leaves a store that matches what was done).
pub async fn execute(
    target: &dyn Target,
    ops: Vec<PlannedOperation>,
    options: ExecOptions,
    mut on_result: impl FnMut(&OpResult),
) -> Vec<OpResult> {
    let mut results = Vec::with_capacity(ops.len());
    // username (lower case) → key of accounts created in this run
    let mut created: HashMap<String, String> = HashMap::new();
    let mut failed_users: HashSet<String> = HashSet::new();
    let mut failed_groups: HashSet<String> = HashSet::new();
    // new username (lower case) → old username, for renames that failed
    let mut failed_renames: HashMap<String, String> = HashMap::new();

    let mut phase_start = 0;
    while phase_start < ops.len() {
        let kind = ops[phase_start].op.kind();
        let phase_end = ops[phase_start..]
            .iter()
            .position(|o| o.op.kind() != kind)
            .map_or(ops.len(), |n| phase_start + n);
        let mut runnable = Vec::new();
        for planned in &ops[phase_start..phase_end] {
            let mut planned = planned.clone();
            match prepare(
                &mut planned,
                &created,
                &failed_users,
                &failed_groups,
                &failed_renames,
            ) {
                Ok(()) => runnable.push(planned),
                Err(why) => {
                    let result = OpResult {
                        planned,
                        status: OpStatus::Skipped,
                        error: Some(why),
                        error_kind: None,
                        key: None,
                        duration_ms: 0,
                    };
                    on_result(&result);
                    results.push(result);
                }
            }
        }
        let mut stream = futures::stream::iter(runnable)
            .map(|planned| apply_with_retries(target, planned, options))
            .buffer_unordered(options.concurrency.max(1));
        while let Some(result) = stream.next().await {
            match (&result.planned.op, result.succeeded()) {
                (Operation::CreateUser { user, .. }, true) => {
                    if let Some(key) = &result.key {
                        created.insert(user.to_lowercase(), key.clone());
                    }
                }
                (Operation::CreateUser { user, .. }, false) => {
                    failed_users.insert(user.to_lowercase());
                }
                (Operation::CreateGroup { group }, false) => {
                    failed_groups.insert(group.to_lowercase());
                }
                (
                    Operation::RenameUser {
                        user, new_username, ..
                    },
                    false,
                ) => {
                    failed_renames.insert(new_username.to_lowercase(), user.clone());
                }
                _ => {}
            }
            on_result(&result);
            results.push(result);
        }
        phase_start = phase_end;
    }
    results
}

/// Fills in what earlier operations produced, or says why the operation cannot run.
fn prepare(
    planned: &mut PlannedOperation,
    created: &HashMap<String, String>,
    failed_users: &HashSet<String>,
    failed_groups: &HashSet<String>,
    failed_renames: &HashMap<String, String>,
) -> Result<(), String> {
    if let Some(group) = planned.op.group()
        && planned.op.kind() != OperationKind::CreateGroup
        && failed_groups.contains(&group.to_lowercase())
    {
        return Err(format!("group {group:?} could not be created"));
    }
    let (key, user) = match &mut planned.op {
        Operation::AddMembership { key, user, .. }
        | Operation::RemoveMembership { key, user, .. }
        | Operation::UpdateUser { key, user, .. }
        | Operation::SetAttribute { key, user, .. }
        | Operation::ReactivateUser { key, user }
        | Operation::DeactivateUser { key, user }
        | Operation::DeleteUser { key, user }
        | Operation::RenameUser { key, user, .. } => (key, user),
        _ => return Ok(()),
    };
    let lower = user.to_lowercase();
    if let Some(old) = failed_renames.get(&lower) {
        // The rename did not happen: the account still answers to its old name.
        *user = old.clone();
    }
    if key.is_empty() {
        if failed_users.contains(&lower) {
            return Err(format!("account {user:?} could not be created"));
        }
        match created.get(&lower) {
            Some(k) => *key = k.clone(),
            None => return Err(format!("account {user:?} does not exist yet")),
        }
    }
    Ok(())
}

async fn apply_with_retries(
    target: &dyn Target,
    planned: PlannedOperation,
    options: ExecOptions,
) -> OpResult {
    let started = Instant::now();
    let mut attempt = 0;
    let outcome: Result<Applied, TargetError> = loop {
        match target.apply(&planned.op).await {
            Err(e) if e.is_transient() && attempt < options.retries => {
                attempt += 1;
                tracing::warn!(target = %planned.target, op = %planned.op.kind(), attempt, error = %e, "retrying");
                tokio::time::sleep(options.retry_delay * attempt).await;
            }
            other => break other,
        }
    };
    let existing_key = match &planned.op {
        Operation::CreateUser { .. }
        | Operation::CreateGroup { .. }
        | Operation::DeleteGroup { .. }
        | Operation::HandOverLead { .. } => None,
        Operation::RenameUser { key, .. }
        | Operation::UpdateUser { key, .. }
        | Operation::SetAttribute { key, .. }
        | Operation::ReactivateUser { key, .. }
        | Operation::AddMembership { key, .. }
        | Operation::RemoveMembership { key, .. }
        | Operation::DeactivateUser { key, .. }
        | Operation::DeleteUser { key, .. } => Some(key.clone()),
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(applied) => {
            let (status, key) = match applied {
                Applied::Done => (OpStatus::Done, existing_key),
                Applied::AlreadyDone => (OpStatus::AlreadyDone, existing_key),
                Applied::UserKey(k) => (OpStatus::Done, Some(k)),
                Applied::Adopted(k) => (OpStatus::AlreadyDone, Some(k)),
            };
            OpResult {
                planned,
                status,
                error: None,
                error_kind: None,
                key,
                duration_ms,
            }
        }
        Err(e) => OpResult {
            planned,
            status: OpStatus::Failed,
            error: Some(e.message),
            error_kind: Some(e.kind),
            key: existing_key,
            duration_ms,
        },
    }
}
