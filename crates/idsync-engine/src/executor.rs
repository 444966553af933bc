//! The executor: applies a target's plan in order, with bounded concurrency inside each kind of
//! operation, retries for transient failures, and a record of every result. One failure never
//! stops the run; operations that depend on a failed one are skipped and say why.
//!
//! What it does is made durable as it goes, through a [`Journal`]: before a phase (one kind of
//! operation) is sent, the journal records what a crash during the phase must not lose (the
//! accounts about to be created, the memberships about to be added); results are recorded in
//! batches as they come, and every batch of a phase before the next phase starts, since later
//! phases depend on earlier ones (memberships of new accounts). A run killed at any point thus
//! leaves a store that knows every account and membership it may have written.

use idsync_model::name::name_key;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use idsync_model::{
    Applied, Operation, OperationKind, PlannedOperation, Target, TargetError, TargetErrorKind,
};

// The store writes results to the history: in the model, so that it stands without the engine.
pub use idsync_model::op_result::{OpResult, OpStatus};

/// Where the executor makes its progress durable (the state store, in the runner).
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// Called before a phase's operations are sent, with them as they will be sent (keys of
    /// accounts created earlier in the run filled in). Nothing is sent until it returns `Ok`.
    async fn before_phase(&self, operations: &[PlannedOperation]) -> Result<(), String>;
    /// Results, in the order they came, at most [`ExecOptions::record_every`] at a time; every
    /// result of a phase is recorded before the next phase starts.
    async fn record(&self, results: &[OpResult]) -> Result<(), String>;
    /// Whether idsync is stopping (a service asked to shut down): operations not sent yet are
    /// then skipped, and those in flight finish and are recorded.
    fn stopping(&self) -> bool {
        false
    }
}

/// A journal that keeps nothing: for plans applied where no crash can matter (tests, tools).
pub struct NoJournal;

#[async_trait::async_trait]
impl Journal for NoJournal {
    async fn before_phase(&self, _operations: &[PlannedOperation]) -> Result<(), String> {
        Ok(())
    }
    async fn record(&self, _results: &[OpResult]) -> Result<(), String> {
        Ok(())
    }
}

/// How [`execute`] applies one target's plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Operations in flight at once on this target.
    pub concurrency: usize,
    /// Extra attempts for an operation that failed with a transient error (the HTTP layer
    /// already retries throttling; this covers errors that outlast it).
    pub retries: u32,
    /// Wait before the first retry; each further retry waits that much longer again.
    pub retry_delay: Duration,
    /// A creation that finds an account of that name already there (made since idsync last
    /// read the target) takes it over: only when the app adopts by username. Otherwise the
    /// creation fails as a conflict, and the account is left alone.
    pub adopt_on_create_conflict: bool,
    /// Results handed to the journal at once at most: what a crash can leave unrecorded is at
    /// most this many results (plus what is in flight), which the next run finds again.
    pub record_every: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: 4,
            retries: 2,
            retry_delay: Duration::from_millis(500),
            adopt_on_create_conflict: false,
            record_every: 500,
        }
    }
}

/// Why an operation was not sent once the journal failed.
/// Why an operation was not sent when idsync was stopping.
pub const STOPPING: &str =
    "not sent: idsync was stopping (the run is marked interrupted); the next run does it";

fn journal_failed(why: &str) -> String {
    format!(
        "not sent: idsync could not record its progress in the state store ({why}); the next run takes over"
    )
}

/// Applies `ops` (already in plan order) to `target`, making its progress durable through
/// `journal` (see the module docs). `on_result` sees each result as it comes (progress display).
/// Once the journal fails, nothing more is sent: what is left is skipped and says why.
pub async fn execute(
    target: &dyn Target,
    ops: Vec<PlannedOperation>,
    options: ExecOptions,
    journal: &dyn Journal,
    mut on_result: impl FnMut(&OpResult),
) -> Vec<OpResult> {
    let mut progress = Progress {
        results: Vec::with_capacity(ops.len()),
        earlier: Earlier::default(),
        journal_error: None,
    };
    let record_every = options.record_every.max(1);
    // One phase is a run of operations of one kind.
    let mut phase_start = 0;
    while phase_start < ops.len() {
        let kind = ops[phase_start].op.kind();
        let phase_end = ops[phase_start..]
            .iter()
            .position(|o| o.op.kind() != kind)
            .map_or(ops.len(), |n| phase_start + n);
        let (runnable, skipped) =
            progress.prepare_phase(&ops[phase_start..phase_end], journal.stopping());
        let (runnable, skipped) = progress.announce(journal, runnable, skipped).await;
        // Skipped operations changed nothing; they are recorded with the phase's first batch.
        let mut pending: Vec<OpResult> = Vec::with_capacity(record_every.min(ops.len()));
        for result in skipped {
            on_result(&result);
            pending.push(result);
        }
        let units = if kind == OperationKind::AddMembership && target.capabilities().bulk_membership
        {
            by_group(runnable)
        } else {
            runnable.into_iter().map(Unit::One).collect()
        };
        let pending = progress
            .send_phase(target, units, options, journal, pending, &mut on_result)
            .await;
        // The next phase may depend on this one: all of it is recorded first.
        progress.record_rest(journal, pending, record_every).await;
        phase_start = phase_end;
    }
    progress.results
}

/// Where a run of [`execute`] stands: its results so far, what earlier phases produced or
/// failed to, and whether the journal failed.
struct Progress {
    /// Results recorded (or, once the journal failed, that could not be), in order.
    results: Vec<OpResult>,
    earlier: Earlier,
    /// Set once the journal fails: nothing more is sent.
    journal_error: Option<String>,
}

impl Progress {
    /// A phase's operations as they will be sent (keys of accounts created earlier filled in),
    /// and results for those that cannot run.
    fn prepare_phase(
        &self,
        ops: &[PlannedOperation],
        stopping: bool,
    ) -> (Vec<PlannedOperation>, Vec<OpResult>) {
        let mut runnable = Vec::new();
        let mut skipped = Vec::new();
        for planned in ops {
            let mut planned = planned.clone();
            let verdict = match &self.journal_error {
                Some(why) => Err(journal_failed(why)),
                None if stopping => Err(STOPPING.to_owned()),
                None => prepare(&mut planned, &self.earlier),
            };
            match verdict {
                Ok(()) => runnable.push(planned),
                Err(why) => skipped.push(skip(planned, why)),
            }
        }
        (runnable, skipped)
    }

    /// Has the journal record what a crash during the phase must not lose, before anything is
    /// sent; if it cannot, the whole phase is skipped and nothing more is sent.
    async fn announce(
        &mut self,
        journal: &dyn Journal,
        mut runnable: Vec<PlannedOperation>,
        mut skipped: Vec<OpResult>,
    ) -> (Vec<PlannedOperation>, Vec<OpResult>) {
        if !runnable.is_empty()
            && let Err(why) = journal.before_phase(&runnable).await
        {
            skipped.extend(
                runnable
                    .drain(..)
                    .map(|planned| skip(planned, journal_failed(&why))),
            );
            self.journal_error = Some(why);
        }
        (runnable, skipped)
    }

    /// Sends a phase's units, `options.concurrency` at a time, and records results while the
    /// next ones come in: one batch at a time, of whatever arrived while the previous batch was
    /// being recorded (at most `record_every`). A kill thus loses little history, and the
    /// target never waits for the store. Returns the results not recorded yet.
    async fn send_phase<F: FnMut(&OpResult)>(
        &mut self,
        target: &dyn Target,
        units: Vec<Unit>,
        options: ExecOptions,
        journal: &dyn Journal,
        mut pending: Vec<OpResult>,
        on_result: &mut F,
    ) -> Vec<OpResult> {
        let record_every = options.record_every.max(1);
        // Once the journal fails mid-phase, units not yet started are not sent either.
        let stopped = AtomicBool::new(self.journal_error.is_some());
        let stream = send_units(target, units, options, &stopped, journal);
        // Accounts created without a key wait for one lookup of all of them, at the end of
        // the phase; every other result is recorded as it comes.
        let mut keyless = Vec::new();
        let mut stream = std::pin::pin!(stream);
        let mut later = Vec::new().into_iter();
        let mut recording: Option<Recording<'_>> = None;
        loop {
            if recording.is_none() && self.journal_error.is_none() && !pending.is_empty() {
                let take = pending.len().min(record_every);
                let batch: Vec<OpResult> = pending.drain(..take).collect();
                recording = Some(Box::pin(async move {
                    let outcome = journal.record(&batch).await;
                    (outcome, batch)
                }));
            }
            let next = tokio::select! {
                biased;
                (outcome, batch) = async {
                    match recording.as_mut() {
                        Some(r) => r.await,
                        None => std::future::pending().await,
                    }
                }, if recording.is_some() => {
                    recording = None;
                    self.recorded(outcome, batch);
                    stopped.store(self.journal_error.is_some(), Ordering::Relaxed);
                    continue;
                }
                next = stream.next() => next,
            };
            let result = match next {
                Some(r) if created_without_key(&r) => {
                    keyless.push(r);
                    continue;
                }
                Some(r) => r,
                None if !keyless.is_empty() => {
                    later = learn_keys(target, options, std::mem::take(&mut keyless))
                        .await
                        .into_iter();
                    continue;
                }
                None => match later.next() {
                    Some(r) => r,
                    None => break,
                },
            };
            self.earlier.learn(&result);
            on_result(&result);
            pending.push(result);
        }
        if let Some(r) = recording.take() {
            let (outcome, batch) = r.await;
            self.recorded(outcome, batch);
        }
        pending
    }

    /// Records what is left of a phase, batch by batch, before the next phase starts (once the
    /// journal failed, the results are kept without it).
    async fn record_rest(
        &mut self,
        journal: &dyn Journal,
        mut pending: Vec<OpResult>,
        record_every: usize,
    ) {
        while !pending.is_empty() {
            let take = pending.len().min(record_every);
            let batch: Vec<OpResult> = pending.drain(..take).collect();
            let outcome = if self.journal_error.is_none() {
                journal.record(&batch).await
            } else {
                Ok(())
            };
            self.recorded(outcome, batch);
        }
    }

    /// Takes a recorded batch into the results. A journal that failed stops the sending of
    /// anything more (the results themselves stand: they happened).
    fn recorded(&mut self, outcome: Result<(), String>, mut batch: Vec<OpResult>) {
        if let Err(why) = outcome
            && self.journal_error.is_none()
        {
            tracing::error!(error = %why, "recording the run's progress failed; nothing more is sent");
            self.journal_error = Some(why);
        }
        self.results.append(&mut batch);
    }
}

/// The results of `units`, sent `options.concurrency` at a time, in the order they come; units
/// not started yet once `stopped` is set (the journal failed) or idsync is stopping are
/// skipped instead.
fn send_units<'a>(
    target: &'a dyn Target,
    units: Vec<Unit>,
    options: ExecOptions,
    stopped: &'a AtomicBool,
    journal: &'a dyn Journal,
) -> impl futures::Stream<Item = OpResult> + 'a {
    futures::stream::iter(units)
        .map(move |unit| async move {
            let why = if stopped.load(Ordering::Relaxed) {
                Some(journal_failed("see the first error"))
            } else if journal.stopping() {
                Some(STOPPING.to_owned())
            } else {
                None
            };
            match why {
                Some(why) => unit
                    .into_operations()
                    .into_iter()
                    .map(|planned| skip(planned, why.clone()))
                    .collect(),
                None => apply_unit(target, unit, options).await,
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .flat_map(futures::stream::iter)
}

/// A batch of results being recorded by the journal, handed back with the outcome.
type Recording<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Result<(), String>, Vec<OpResult>)> + Send + 'a>,
>;

/// A result for an operation that was not sent.
fn skip(planned: PlannedOperation, why: String) -> OpResult {
    OpResult {
        planned,
        status: OpStatus::Skipped,
        error: Some(why),
        error_kind: None,
        key: None,
        duration_ms: 0,
    }
}

/// What earlier phases of the plan produced, or failed to.
#[derive(Default)]
struct Earlier {
    /// username (lower case) → key of accounts created in this run
    created: HashMap<String, String>,
    failed_users: HashSet<String>,
    failed_groups: HashSet<String>,
    /// new username (lower case) → old username, for renames that failed
    failed_renames: HashMap<String, String>,
    /// Users (lower case) whose project or component lead could not be handed over: the
    /// product refuses to deprovision a lead, so their deprovisioning waits for a run that can.
    failed_handovers: HashSet<String>,
}

impl Earlier {
    /// Notes what a result means for the operations after it.
    fn learn(&mut self, result: &OpResult) {
        match (&result.planned.op, result.succeeded()) {
            (Operation::CreateUser { user, .. }, true) => {
                if let Some(key) = &result.key {
                    self.created.insert(name_key(user), key.clone());
                }
            }
            (Operation::CreateUser { user, .. }, false) => {
                self.failed_users.insert(name_key(user));
            }
            (Operation::CreateGroup { group }, false) => {
                self.failed_groups.insert(name_key(group));
            }
            (Operation::HandOverLead { user, .. }, false) => {
                self.failed_handovers.insert(name_key(user));
            }
            (
                Operation::RenameUser {
                    user, new_username, ..
                },
                false,
            ) => {
                self.failed_renames
                    .insert(name_key(new_username), user.clone());
            }
            _ => {}
        }
    }
}

/// Fills in what earlier operations produced, or says why the operation cannot run.
fn prepare(planned: &mut PlannedOperation, earlier: &Earlier) -> Result<(), String> {
    let Earlier {
        created,
        failed_users,
        failed_groups,
        failed_renames,
        failed_handovers,
    } = earlier;
    if let Some(group) = planned.op.group()
        && planned.op.kind() != OperationKind::CreateGroup
        && failed_groups.contains(&name_key(group))
    {
        return Err(format!("group {group:?} could not be created"));
    }
    if let Operation::DeactivateUser { user, .. } | Operation::DeleteUser { user, .. } = &planned.op
        && failed_handovers.contains(&name_key(user))
    {
        return Err(format!(
            "a project or component that {user:?} leads could not be handed over, and the product refuses to deprovision a lead; the next run tries again"
        ));
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
    let lower = name_key(user);
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

fn created_without_key(result: &OpResult) -> bool {
    matches!(result.planned.op, Operation::CreateUser { .. })
        && result.status == OpStatus::Done
        && result.key.is_none()
}

/// Has the target complete the accounts it created without saying their key.
async fn learn_keys(
    target: &dyn Target,
    options: ExecOptions,
    mut results: Vec<OpResult>,
) -> Vec<OpResult> {
    let names: Vec<String> = results
        .iter()
        .filter_map(|r| r.planned.op.user().map(str::to_owned))
        .collect();
    let completed = with_retries(target, options, "complete creations", || {
        target.complete_creations(&names)
    })
    .await;
    for r in &mut results {
        let name = name_key(r.planned.op.user().unwrap_or_default());
        let outcome = match &completed {
            Ok(completed) => completed.get(&name).cloned().unwrap_or_else(|| {
                Err(TargetError {
                    kind: TargetErrorKind::MalformedResponse,
                    target: target.name().to_owned(),
                    message: format!("the creation of account {name:?} was not completed"),
                    status: None,
                })
            }),
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(key) => r.key = Some(key),
            // The account exists but is not ready for use: the creation counts as failed, so
            // that what depends on it is skipped; the next run adopts the account. No error
            // kind: unlike a refusal, this failure did change the target.
            Err(e) => {
                r.status = OpStatus::Failed;
                r.error = Some(format!("{}; the next run adopts the account", e.message));
                r.error_kind = None;
            }
        }
    }
    results
}

/// Members added to one group in one request at most: keeps request bodies and the cost of
/// falling back to one request per member (when a batch is refused) small.
const MAX_BATCH: usize = 500;

/// What one request (or, for a refused batch, a few) carries out.
enum Unit {
    One(PlannedOperation),
    /// Memberships of one group, added at once.
    Members(Vec<PlannedOperation>),
}

impl Unit {
    fn into_operations(self) -> Vec<PlannedOperation> {
        match self {
            Unit::One(planned) => vec![planned],
            Unit::Members(batch) => batch,
        }
    }
}

/// Groups membership additions by group, in batches of at most [`MAX_BATCH`].
fn by_group(ops: Vec<PlannedOperation>) -> Vec<Unit> {
    let mut groups: Vec<(String, Vec<PlannedOperation>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for planned in ops {
        let group = name_key(planned.op.group().unwrap_or_default());
        let i = *index.entry(group.clone()).or_insert_with(|| {
            groups.push((group, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(planned);
    }
    let mut units = Vec::new();
    for (_, mut ops) in groups {
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(MAX_BATCH));
            let batch = std::mem::replace(&mut ops, rest);
            units.push(match <[_; 1]>::try_from(batch) {
                Ok([one]) => Unit::One(one),
                Err(batch) => Unit::Members(batch),
            });
        }
    }
    units
}

async fn apply_unit(target: &dyn Target, unit: Unit, options: ExecOptions) -> Vec<OpResult> {
    let batch = match unit {
        Unit::One(planned) => return vec![apply_with_retries(target, planned, options).await],
        Unit::Members(batch) => batch,
    };
    let started = Instant::now();
    let mut group = String::new();
    let mut members = Vec::with_capacity(batch.len());
    for planned in &batch {
        if let Operation::AddMembership {
            group: g,
            key,
            user,
        } = &planned.op
        {
            group.clone_from(g);
            members.push((key.clone(), user.clone()));
        }
    }
    let outcome = with_retries(target, options, "add_membership", || {
        target.add_members(&group, &members)
    })
    .await;
    if outcome.is_err() {
        // One of them was refused (or the call is not there): one at a time, to give each
        // its own result.
        let mut results = Vec::with_capacity(batch.len());
        for planned in batch {
            results.push(apply_with_retries(target, planned, options).await);
        }
        return results;
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    batch
        .into_iter()
        .zip(members)
        .map(|(planned, (key, _))| OpResult {
            planned,
            status: OpStatus::Done,
            error: None,
            error_kind: None,
            key: Some(key),
            duration_ms,
        })
        .collect()
}

/// Runs `call` again after transient errors, up to `options.retries` times.
async fn with_retries<T, F, Fut>(
    target: &dyn Target,
    options: ExecOptions,
    what: &str,
    mut call: F,
) -> Result<T, TargetError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TargetError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempt < options.retries => {
                attempt += 1;
                tracing::warn!(target = %target.name(), op = what, attempt, error = %e, "retrying");
                tokio::time::sleep(options.retry_delay * attempt).await;
            }
            other => return other,
        }
    }
}

async fn apply_with_retries(
    target: &dyn Target,
    planned: PlannedOperation,
    options: ExecOptions,
) -> OpResult {
    let started = Instant::now();
    let outcome = with_retries(target, options, planned.op.kind().as_str(), || {
        target.apply(&planned.op)
    })
    .await;
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
        Ok(Applied::Adopted(_)) if !options.adopt_on_create_conflict => {
            let user = planned.op.user().unwrap_or_default().to_owned();
            OpResult {
                planned,
                status: OpStatus::Failed,
                error: Some(format!(
                    "an account named {user:?} already exists on the target and is not idsync's: it was not taken over, since users.adopt_by does not include \"username\". Add it there to let idsync manage that account, or give one of the two another username"
                )),
                error_kind: Some(TargetErrorKind::Conflict),
                key: None,
                duration_ms,
            }
        }
        Ok(applied) => {
            let (status, key) = match applied {
                Applied::Done => (OpStatus::Done, existing_key),
                Applied::AlreadyDone => (OpStatus::AlreadyDone, existing_key),
                Applied::UserKey(k) => (OpStatus::Done, Some(k)),
                Applied::Adopted(k) => (OpStatus::AlreadyDone, Some(k)),
                // Filled in for the whole phase at once: see `learn_keys`.
                Applied::CreatedWithoutKey => (OpStatus::Done, None),
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
