#![warn(missing_docs)]
//! One sync run of one app, end to end: read the source (delta when possible), read every target
//! the app feeds, plan each target, check the mass-change guard, apply, and record links,
//! managed memberships and history in the store.
//!
//! The planner works from complete states (the whole source snapshot and the whole target
//! state), never from a stream of events: that is what makes a run killed half way converge on
//! the next run, and why the source snapshot can be saved as soon as it has been read.
//!
//! A target's complete state need not come from reading it all again, though: after each run
//! the store keeps what the target holds (its last full read, updated with what the run did),
//! and an incremental run plans from that until `full_read_every_minutes` has passed (see
//! `docs/config.md`, "How idsync knows a target").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use idsync_config::{AdoptBy, AppConfig, Config, TargetConfig};
use idsync_engine::known_state;
use idsync_engine::outcome;
use idsync_engine::{
    CompiledGroupRules, CompiledUserRules, ExecOptions, OpResult, OpStatus, PlanInput, TargetPlan,
    guard,
};
use idsync_entra::{DirectoryState, EntraSource};
use idsync_model::{ActualState, Operation, OperationKind, PlannedOperation, Target};
use idsync_store::Store;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

mod apply;
mod known;
mod one_user;
mod plan;
mod report;
mod source;

use apply::*;
pub use idsync_model::run::{ReadMode, RunStatus, Trigger};
use known::*;
pub use one_user::{
    ResolvedBy, UserOutcome, UserSyncOptions, UserSyncReport, UserSyncer, sync_user,
};
use plan::*;
pub use report::{ConfigProblem, KindTotals, RunReport, StateSource, TargetReport};
use report::{finish, planned_only};
use source::*;

/// How a run is to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// What started the run, as the history records it.
    pub trigger: Trigger,
    /// Plan only; apply nothing.
    pub dry_run: bool,
    /// Read the source and every target in full, whatever idsync knows of them.
    pub full_read: bool,
    /// When another run of the app is in progress: wait for it to end (`true`) or give up at
    /// once with [`RunError::Busy`].
    pub wait: bool,
}

impl RunOptions {
    /// A manual sync: applied, incremental, giving up at once if the app is busy.
    pub fn manual() -> Self {
        RunOptions {
            trigger: Trigger::Manual,
            dry_run: false,
            full_read: false,
            wait: false,
        }
    }
}

/// The phases a run names to [`Progress::phase`], in the order they come. Callers may act on
/// them: the service cuts a run short at once while it only reads its source.
pub mod phase {
    /// Signing in to the source and reading it: nothing is planned or written yet.
    pub const READING_SOURCE: &str = "reading the source";
    /// Reading the targets (or what idsync knows of them).
    pub const READING_TARGETS: &str = "reading the targets";
    /// Planning every target, and the mass-change guard.
    pub const PLANNING: &str = "planning";
    /// Writing to the targets.
    pub const APPLYING: &str = "applying";
    /// Recording how the run ended.
    pub const RECORDING: &str = "recording";
}

/// Something that keeps a person informed while a run goes on (a progress bar, the console).
pub trait Progress: Send + Sync {
    /// A new phase of the run has begun: one of [`phase`].
    fn phase(&self, _what: &str) {}
    /// How many operations the plan has, once planned.
    fn planned(&self, _operations: usize) {}
    /// One operation was applied (or failed, or was skipped).
    fn applied(&self, _result: &OpResult) {}
    /// Whether the run should stop sending operations (the service is shutting down): those in
    /// flight finish and are recorded, the rest are skipped and the run ends `interrupted`.
    fn stopping(&self) -> bool {
        false
    }
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {}

#[derive(Debug, thiserror::Error)]
/// Why a run could not be done at all (a failed read or target is a run, not an error).
pub enum RunError {
    #[error("app {0:?} is not in the config")]
    /// The app is not in the config.
    UnknownApp(String),
    #[error(transparent)]
    /// A rule of the app does not compile.
    Rules(#[from] idsync_engine::RuleError),
    #[error(transparent)]
    /// The state store failed.
    Store(#[from] idsync_store::StoreError),
    /// Another run of the app is in progress.
    #[error(transparent)]
    Busy(idsync_store::StoreError),
    /// The app's source cannot be set up (its settings cannot work).
    #[error("app {app:?}: {source}")]
    Source {
        /// The app.
        app: String,
        /// Why its source client could not be made.
        source: Box<idsync_entra::EntraError>,
    },
    /// A sign-in sync was asked for a user that cannot be found.
    #[error("app {app:?} has no user {user:?}: {why}")]
    UnknownUser {
        /// The app.
        app: String,
        /// The user as asked for (object id, UPN or username).
        user: String,
        /// Why no user was found.
        why: String,
    },
    /// Reading the user of a sign-in sync from the source failed.
    #[error("reading user {user:?} from Microsoft Graph failed: {source}")]
    UserSource {
        /// The user as asked for.
        user: String,
        /// What Graph answered.
        source: Box<idsync_entra::EntraError>,
    },
}

/// The targets an app feeds (all of them when its `targets` list is empty).
pub fn targets_of<'c>(config: &'c Config, app: &AppConfig) -> Vec<&'c TargetConfig> {
    config
        .targets
        .iter()
        .filter(|t| app.targets.is_empty() || app.targets.contains(&t.name))
        .collect()
}

pub(crate) fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The app named (and its place in the config), the targets it feeds, and the rules in force
/// on each (compiled).
type AppAndRules<'c> = (
    usize,
    &'c AppConfig,
    Vec<&'c TargetConfig>,
    Vec<TargetRules>,
);

fn app_and_rules<'c>(config: &'c Config, app_name: &str) -> Result<AppAndRules<'c>, RunError> {
    let (app_index, app) = config
        .apps
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == app_name)
        .ok_or_else(|| RunError::UnknownApp(app_name.to_owned()))?;
    let target_configs = targets_of(config, app);
    let rules: Vec<TargetRules> = target_configs
        .iter()
        .map(|t| target_rules(app, app_index, t))
        .collect::<Result<_, _>>()?;
    Ok((app_index, app, target_configs, rules))
}

/// Runs one app: see the crate docs. Errors are only returned for problems with idsync itself
/// (store, rules) and for an app that another run is syncing ([`RunError::Busy`]); a failed
/// source or target read is a run with status `failed` or `partial`.
pub async fn sync_app(
    config: &Config,
    app_name: &str,
    store: &Store,
    options: RunOptions,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
    let dry_run = options.dry_run;
    let started = Instant::now();
    let (app_index, app, target_configs, rules) = app_and_rules(config, app_name)?;
    // Held until this function returns, after the run's end is recorded.
    let (_lease, mut report) = begin_run(store, &app.name, &options).await?;
    let run_id = report.run_id;
    // A caller's span declaring `run_id` (the service's) now carries it on every line.
    tracing::Span::current().record("run_id", run_id);

    // 1. The source, and at the same time what the store holds for each target (links,
    // managed memberships, creations an interrupted run left unsettled, and the known state:
    // large at 100k users, and decoded off the async threads).
    progress.phase(phase::READING_SOURCE);
    let attributes = attributes_needed(app, &rules);
    let targets = build_targets(&target_configs, rules, &mut report);
    let stored = futures::future::try_join_all(targets.iter().map(|(t, tc, r)| {
        let fingerprint = fingerprint(tc, &custom_attributes(r));
        let remembers_emails = !t.capabilities().reads_email;
        stored_for_target(
            store,
            &app.name,
            tc,
            fingerprint,
            options.full_read,
            remembers_emails,
        )
    }));
    let source = read_source(
        store,
        app,
        &attributes,
        options.full_read,
        &mut report.notes,
    );
    // The source first: its snapshot is the longest chain (load, decode, delta read, scope).
    let (read, stored) = futures::join!(source, stored);
    let stored = stored?;
    let read = match read? {
        Ok(read) => read,
        Err(e) => {
            // A failed read plans nothing at all: above all, no deactivations.
            source_failed(app_index, app, &e, &mut report);
            return finish(store, report, started).await;
        }
    };
    report.source = serde_json::to_value(&read.stats).unwrap_or_default();
    report.notes.extend(read.notes.iter().cloned());
    let users_in_scope = read.stats.users_in_scope;
    // Packed now (alongside the target reads), kept only once the guard lets the run go on:
    // a read the guard holds must not become the baseline of later runs.
    let pack_source = {
        let state = read.state;
        blocking(move || state.pack())
    };
    let snapshot = Arc::new(read.snapshot);

    // 2. The targets: read in full, or known from earlier runs. A full source read (first
    // run, expired delta token) is a full reconciliation: the targets are read in full too.
    progress.phase(phase::READING_TARGETS);
    let force_full_read = options.full_read || read.stats.mode != ReadMode::Delta;
    let reads = futures::future::join_all(targets.iter().zip(stored).map(|((t, tc, r), s)| {
        know_target(
            store,
            &app.name,
            Arc::clone(t),
            tc,
            custom_attributes(r),
            s,
            force_full_read,
        )
        .instrument(tracing::info_span!("target", target = %tc.name))
    }));
    let (reads, packed_source) = futures::join!(reads, pack_source);

    // 3. Plan each target, all at once, each on a thread of its own.
    progress.phase(phase::PLANNING);
    let planned = plan_all(app, targets, reads, snapshot, &mut report).await?;

    // 4. The guard, over the whole app.
    let hold = guard_step(
        store,
        app,
        run_id,
        dry_run,
        &planned,
        users_in_scope,
        &mut report,
    )
    .await?;
    let plans = planned.plans;
    count_planned(&plans, &mut report);
    if hold.is_none() {
        // The read becomes the baseline of the next delta read.
        keep_source(store, &app.name, packed_source, users_in_scope, &mut report).await?;
    }
    if dry_run || hold.is_some() {
        keep_unapplied(store, app, run_id, &plans, hold, &mut report).await?;
        return finish(store, report, started).await;
    }

    // 5. Apply, every target at once, each within its own concurrency, recording as it goes.
    apply_all(store, run_id, app, plans, progress, &mut report).await?;
    finish(store, report, started).await
}

/// Counts the operations planned, by kind, into the report.
fn count_planned(plans: &[Planned<'_>], report: &mut RunReport) {
    for Planned { plan, .. } in plans {
        for o in &plan.operations {
            report.totals.entry(o.op.kind()).or_default().planned += 1;
        }
    }
}

/// Takes the app's lock and records the run's start. One run of an app at a time, dry runs
/// included (they read and keep state too): the lock is held until the caller drops it, after
/// the run's end is recorded (a run still `running` with its lock free is taken for dead); the
/// operating system drops it if the process dies.
pub(crate) async fn begin_run(
    store: &Store,
    app: &str,
    options: &RunOptions,
) -> Result<(idsync_store::AppLease, RunReport), RunError> {
    let lease = store
        .lock_app(app, options.wait)
        .await
        .map_err(|e| match e {
            idsync_store::StoreError::Busy { .. } => RunError::Busy(e),
            e => RunError::Store(e),
        })?;
    let interrupted = store.close_interrupted_runs(&lease, app).await?;
    let run_id = store
        .start_run(&lease, app, options.trigger, options.dry_run)
        .await?;
    let report = RunReport::new(run_id, app, options.trigger, options.dry_run, &interrupted);
    Ok((lease, report))
}

/// Runs CPU-heavy work (decoding and encoding stored states, planning) on tokio's blocking
/// threads, so that it neither stalls the async threads nor waits behind other targets' work.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels blocking work; nothing is left to do then.
            Err(e) => panic!("blocking work was cancelled: {e}"),
        },
    }
}
