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

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Schedule,
    Login,
    Approval,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Login => "login",
            Trigger::Approval => "approval",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A dry run: the plan was made and nothing applied.
    Planned,
    /// Everything applied.
    Done,
    /// Applied, but some operations or targets failed.
    Partial,
    /// Nothing could be done (source unreadable, every target failed).
    Failed,
    /// The plan exceeds the mass-change guard and waits for `idsync approve`.
    Held,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::Done => "done",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Held => "held",
        }
    }
}

/// Per operation kind: how many were planned and how they ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindTotals {
    pub planned: usize,
    pub done: usize,
    pub already_done: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// How a run came to know a target's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StateSource {
    /// Read in full from the target during this run.
    FullRead,
    /// What idsync knew: the last full read, this many minutes ago, with every change idsync
    /// made since.
    Known { read_minutes_ago: u64 },
    /// Not read (the target could not be built or read).
    None,
}

/// How a run is to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
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
    pub fn manual() -> Self {
        RunOptions {
            trigger: Trigger::Manual,
            dry_run: false,
            full_read: false,
            wait: false,
        }
    }
}

/// One target's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: String,
    pub kind: String,
    /// Set when the target could not be read: nothing was planned for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the target's state came from.
    pub state: StateSource,
    /// The product and version the target reported (`Confluence 8.5.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    pub managed_users: usize,
    pub adoptions: Vec<idsync_engine::Adoption>,
    pub warnings: Vec<String>,
    /// In a dry run, the plan (`status` = "planned"); otherwise each result.
    pub operations: Vec<OpResult>,
}

impl TargetReport {
    /// A target nothing could be planned for.
    fn failed(tc: &TargetConfig, error: String) -> Self {
        TargetReport {
            target: tc.name.clone(),
            kind: tc.kind.to_string(),
            error: Some(error),
            state: StateSource::None,
            product: None,
            managed_users: 0,
            adoptions: Vec::new(),
            warnings: Vec::new(),
            operations: Vec::new(),
        }
    }
}

/// A run's outcome: what `idsync sync --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: i64,
    pub app: String,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub status: RunStatus,
    /// Source read figures (users in scope, requests, delta or full, ...).
    pub source: serde_json::Value,
    pub notes: Vec<String>,
    pub targets: Vec<TargetReport>,
    pub totals: BTreeMap<OperationKind, KindTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<guard::Hold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the source read failed because the config names something the source does
    /// not have (a scope group, an enterprise application): each such field and what is
    /// wrong. The run failed as any failed read does (`error` says the same); the fix is in
    /// the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_problems: Vec<ConfigProblem>,
    pub elapsed_ms: u64,
    /// Time spent in the planner, all targets together.
    pub planner_ms: u64,
}

impl RunReport {
    /// A run just started: failed until it says otherwise, with a note per run it takes over
    /// from (one whose process died).
    fn new(
        run_id: i64,
        app: &str,
        trigger: Trigger,
        dry_run: bool,
        interrupted: &[i64],
    ) -> RunReport {
        RunReport {
            run_id,
            app: app.to_owned(),
            trigger,
            dry_run,
            status: RunStatus::Failed,
            source: serde_json::Value::Null,
            notes: interrupted
                .iter()
                .map(|id| format!(
                    "run {id} had stopped before it finished (its process died); it is marked interrupted, and this run takes over"
                ))
                .collect(),
            targets: Vec::new(),
            totals: BTreeMap::new(),
            hold: None,
            error: None,
            config_problems: Vec::new(),
            elapsed_ms: 0,
            planner_ms: 0,
        }
    }
}

/// A field of the config that names something the source does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The field, as config errors name it: `apps[0].scope.groups[1]`.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Something that keeps a person informed while a run goes on (a progress bar, the console).
pub trait Progress: Send + Sync {
    fn phase(&self, _what: &str) {}
    fn planned(&self, _operations: usize) {}
    fn applied(&self, _result: &OpResult) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("app {0:?} is not in the config")]
    UnknownApp(String),
    #[error(transparent)]
    Rules(#[from] idsync_engine::RuleError),
    #[error(transparent)]
    Store(#[from] idsync_store::StoreError),
    /// Another run of the app is in progress.
    #[error(transparent)]
    Busy(idsync_store::StoreError),
}

/// The rules in force for one target of an app (overrides applied), compiled.
struct TargetRules {
    users: CompiledUserRules,
    groups: CompiledGroupRules,
}

fn target_rules(
    app: &AppConfig,
    app_index: usize,
    target: &TargetConfig,
) -> Result<TargetRules, RunError> {
    let (users, _) = app.user_rules_for(&target.name);
    let groups = app
        .overrides
        .get(&target.name)
        .and_then(|o| o.groups.as_ref())
        .unwrap_or(&app.groups);
    Ok(TargetRules {
        // The target's own username restrictions (Confluence: lower case) come with the rules.
        users: CompiledUserRules::compile(users, &format!("apps[{app_index}].users"))?
            .for_target(target.kind),
        groups: CompiledGroupRules::compile(groups, &format!("apps[{app_index}].groups"))?,
    })
}

/// The targets an app feeds (all of them when its `targets` list is empty).
pub fn targets_of<'c>(config: &'c Config, app: &AppConfig) -> Vec<&'c TargetConfig> {
    config
        .targets
        .iter()
        .filter(|t| app.targets.is_empty() || app.targets.contains(&t.name))
        .collect()
}

/// Every source attribute an app's rules read, on any of its targets.
fn attributes_needed(app: &AppConfig, rules: &[TargetRules]) -> BTreeSet<String> {
    let mut attrs: BTreeSet<String> = app.read_attributes.iter().cloned().collect();
    for r in rules {
        attrs.extend(r.users.source_attributes());
    }
    attrs
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
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
    // Held until this function returns, after the run's end is recorded.
    let (_lease, mut report) = begin_run(store, &app.name, &options).await?;
    let run_id = report.run_id;

    // 1. The source, and at the same time what the store holds for each target (links,
    // managed memberships, creations an interrupted run left unsettled, and the known state:
    // large at 100k users, and decoded off the async threads).
    progress.phase("reading the source");
    let attributes = attributes_needed(app, &rules);
    let targets = build_targets(&target_configs, rules, &mut report);
    let stored = futures::future::try_join_all(targets.iter().map(|(_, tc, r)| {
        let fingerprint = fingerprint(tc, &custom_attributes(r));
        stored_for_target(store, &app.name, tc, fingerprint, options.full_read)
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
    progress.phase("reading the targets");
    let force_full_read = options.full_read || read.stats.mode != "delta";
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
    }));
    let (reads, packed_source) = futures::join!(reads, pack_source);

    // 3. Plan each target, all at once, each on a thread of its own.
    progress.phase("planning");
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
    for Planned { plan, .. } in &plans {
        for o in &plan.operations {
            report.totals.entry(o.op.kind()).or_default().planned += 1;
        }
    }
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

/// Takes the app's lock and records the run's start. One run of an app at a time, dry runs
/// included (they read and keep state too): the lock is held until the caller drops it, after
/// the run's end is recorded (a run still `running` with its lock free is taken for dead); the
/// operating system drops it if the process dies.
async fn begin_run(
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
        .start_run(&lease, app, options.trigger.as_str(), options.dry_run)
        .await?;
    let report = RunReport::new(run_id, app, options.trigger, options.dry_run, &interrupted);
    Ok((lease, report))
}

/// Records why the source read failed; a scope naming what the tenant lacks is a problem of
/// the config, placed at its fields (`apps[i].scope.groups[j]`).
fn source_failed(
    app_index: usize,
    app: &AppConfig,
    e: &idsync_entra::EntraError,
    report: &mut RunReport,
) {
    let why = match e {
        idsync_entra::EntraError::Scope { problems, .. } => {
            report.config_problems = problems
                .iter()
                .map(|p| ConfigProblem {
                    field: format!("apps[{app_index}].{}", p.field),
                    message: p.message.clone(),
                })
                .collect();
            report
                .config_problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    };
    report.error = Some(format!(
        "reading the source of app {:?} failed: {why}",
        app.name
    ));
}

/// The client of each target the app feeds; one that cannot be set up is reported failed.
fn build_targets<'c>(
    target_configs: &[&'c TargetConfig],
    rules: Vec<TargetRules>,
    report: &mut RunReport,
) -> Vec<(Arc<dyn Target>, &'c TargetConfig, Arc<TargetRules>)> {
    let mut targets = Vec::new();
    for (tc, r) in target_configs.iter().copied().zip(rules) {
        match idsync_atlassian::build_target(tc) {
            Ok(t) => targets.push((t, tc, Arc::new(r))),
            Err(e) => report.targets.push(TargetReport::failed(tc, e.to_string())),
        }
    }
    targets
}

/// Keeps the source read as the baseline of the next delta read (once the guard let the run
/// go on: a held read must not become it).
async fn keep_source(
    store: &Store,
    app: &str,
    packed_source: Result<Vec<u8>, idsync_model::stored::PackError>,
    users_in_scope: usize,
    report: &mut RunReport,
) -> Result<(), RunError> {
    match packed_source {
        Ok(bytes) => store.save_source_state(app, &bytes, users_in_scope).await?,
        Err(e) => report
            .notes
            .push(format!("the source snapshot could not be kept: {e}")),
    }
    Ok(())
}

/// A dry run, or a run the guard holds: every plan goes into the report unapplied, and a held
/// one is kept in the store for review and approval.
async fn keep_unapplied(
    store: &Store,
    app: &AppConfig,
    run_id: i64,
    plans: &[Planned<'_>],
    hold: Option<guard::Hold>,
    report: &mut RunReport,
) -> Result<(), RunError> {
    for planned in plans {
        report.targets.push(planned.report_unapplied());
    }
    if let Some(hold) = hold {
        let plan_json = serde_json::to_value(&report.targets).unwrap_or_default();
        store.hold_run(run_id, &plan_json, &hold.held).await?;
        report.notes.push(format!(
            "held: {}. Review the plan (`idsync history --config FILE --run {run_id}`), then approve it with `idsync approve --config FILE {run_id}`, which applies it at once, within guard.approval_expires_minutes = {} minutes",
            hold.reason, app.guard.approval_expires_minutes
        ));
        report.hold = Some(hold);
        report.status = RunStatus::Held;
    } else {
        report.status = RunStatus::Planned;
    }
    Ok(())
}

/// Step 3: plans every target that could be read, all at once, each on a thread of its own
/// (a target whose leads changed by hand is planned again with them), and gathers what the
/// guard counts against.
async fn plan_all<'c>(
    app: &AppConfig,
    targets: Vec<(Arc<dyn Target>, &'c TargetConfig, Arc<TargetRules>)>,
    reads: Vec<Result<TargetInputs, KnowError>>,
    snapshot: Arc<idsync_model::SourceSnapshot>,
    report: &mut RunReport,
) -> Result<PlannedApp<'c>, RunError> {
    let mut jobs: Vec<PlanJob> = Vec::new();
    let mut job_targets: Vec<&TargetConfig> = Vec::new();
    for ((target, tc, r), known) in targets.into_iter().zip(reads) {
        let known = match known {
            Ok(k) => k,
            Err(KnowError::Store(e)) => return Err(e.into()),
            Err(KnowError::Target(e)) => {
                report.targets.push(TargetReport::failed(
                    tc,
                    format!("reading the target failed: {e}"),
                ));
                continue;
            }
        };
        if let Some(note) = &known.known.note {
            report.notes.push(format!("{}: {note}", tc.name));
        }
        job_targets.push(tc);
        jobs.push(PlanJob {
            app: app.name.clone(),
            target_name: tc.name.clone(),
            target,
            snapshot: Arc::clone(&snapshot),
            known: known.known,
            links: known.links,
            managed: known.managed,
            rules: r,
            nested_groups: app.nested_groups,
        });
    }
    let mut planner_ms = 0;
    let mut plans: Vec<Planned> = Vec::new();
    // For the guard, which counts people rather than accounts: the source users the app
    // manages an account of, on any target; and the memberships it manages.
    let mut managed_people: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut managed_memberships = 0usize;
    let planned = futures::future::join_all(jobs.into_iter().map(plan_one)).await;
    for ((job, plan, ms), tc) in planned.into_iter().zip(job_targets) {
        planner_ms += ms;
        let mut plan = plan;
        let mut job = job;
        if job.target.capabilities().leads
            && job.known.source != StateSource::FullRead
            && plan.deprovisions() > 0
        {
            // Leads change by hand all the time: who leads what is read afresh before anyone
            // is deprovisioned, and the plan made again with it.
            match job.target.read_leads().await {
                Ok(leads) if leads == job.known.state.leads => {}
                Ok(leads) => {
                    job.known.state.leads = leads;
                    let (again, replanned, ms) = plan_one(job).await;
                    (job, plan) = (again, replanned);
                    planner_ms += ms;
                }
                Err(e) => {
                    report.targets.push(TargetReport::failed(
                        tc,
                        format!("reading the project and component leads failed: {e}"),
                    ));
                    continue;
                }
            }
        }
        let PlanJob {
            target,
            known,
            links,
            managed,
            rules,
            ..
        } = job;
        managed_people.extend(
            links
                .iter()
                .filter(|l| l.app == app.name)
                .map(|l| l.source_id.clone())
                .chain(plan.adoptions.iter().map(|a| a.source_id.clone())),
        );
        managed_memberships += managed.len();
        plans.push(Planned {
            target,
            tc,
            plan,
            known,
            adopt_on_create_conflict: rules.users.config.adopt_by.contains(&AdoptBy::Username),
        });
        // What only planning needed is freed on a blocking thread, off the run's path: at 100k
        // users that is millions of small allocations.
        drop(tokio::task::spawn_blocking(move || drop((links, managed))));
    }
    drop(tokio::task::spawn_blocking(move || drop(snapshot)));
    report.planner_ms = planner_ms;
    Ok(PlannedApp {
        plans,
        managed_people,
        managed_memberships,
    })
}

/// Every target's plan, with what the guard counts the plans against.
struct PlannedApp<'c> {
    plans: Vec<Planned<'c>>,
    /// The source users the app manages an account of, on any target (the guard counts people).
    managed_people: std::collections::HashSet<String>,
    managed_memberships: usize,
}

/// Step 4: the mass-change guard, over the whole app: holds the run (returns why) when it
/// deprovisions or removes more than the limits allow and no approval covers it. Uses up an
/// approval the run applies with.
async fn guard_step(
    store: &Store,
    app: &AppConfig,
    run_id: i64,
    dry_run: bool,
    planned: &PlannedApp<'_>,
    users_in_scope: usize,
    report: &mut RunReport,
) -> Result<Option<guard::Hold>, RunError> {
    let PlannedApp {
        plans,
        managed_people,
        managed_memberships,
    } = planned;
    let managed_memberships = *managed_memberships;
    let mut deprovisions: BTreeSet<guard::Deprovision> = BTreeSet::new();
    let mut people: BTreeMap<guard::Deprovision, String> = BTreeMap::new();
    let mut membership_removals: BTreeSet<guard::MembershipRemoval> = BTreeSet::new();
    for p in plans.iter() {
        for o in &p.plan.operations {
            match &o.op {
                Operation::DeactivateUser { key, .. } | Operation::DeleteUser { key, .. } => {
                    let account = (p.tc.name.clone(), key.clone());
                    if let Some(person) = &o.source_id {
                        people.insert(account.clone(), person.clone());
                    }
                    deprovisions.insert(account);
                }
                Operation::RemoveMembership { group, key, .. } => {
                    membership_removals.insert((
                        p.tc.name.clone(),
                        group.to_lowercase(),
                        key.clone(),
                    ));
                }
                _ => {}
            }
        }
    }
    let approval = store.pending_approval(&app.name, unix_now()).await?;
    let previous_users_in_scope = store.source_users_in_scope(&app.name).await?;
    let guard_input = guard::GuardInput {
        deprovisions: &deprovisions,
        people: &people,
        managed_people: managed_people.len(),
        membership_removals: &membership_removals,
        managed_memberships,
        users_in_scope,
        previous_users_in_scope,
        approved: approval.as_ref().map(|a| &a.held),
    };
    let hold = guard::check(&app.guard, &guard_input);
    if let Some(note) = guard::shrink_note(&app.guard, &guard_input) {
        report.notes.push(note);
    }
    if let Some(approval) = &approval
        && !dry_run
    {
        // An approval is good for this one run, whatever it does: left unused, it would let
        // through a later, unrelated plan.
        store.use_approval(approval.run_id, run_id).await?;
        report.notes.push(format!(
            "applying with the approval of run {} (its {} deprovision(s) and {} membership removal(s), and no others)",
            approval.run_id,
            approval.held.accounts.len(),
            approval.held.memberships.len()
        ));
    }

    Ok(hold)
}

/// Step 5: applies every target's plan at once, each within its own concurrency, recording as
/// it goes, and says how the run ended.
async fn apply_all(
    store: &Store,
    run_id: i64,
    app: &AppConfig,
    plans: Vec<Planned<'_>>,
    progress: Arc<dyn Progress>,
    report: &mut RunReport,
) -> Result<(), RunError> {
    let total: usize = plans.iter().map(|p| p.plan.operations.len()).sum();
    progress.planned(total);
    progress.phase("applying");
    let applied = futures::future::join_all(
        plans
            .into_iter()
            .map(|planned| apply_target(store, run_id, &app.name, planned, Arc::clone(&progress))),
    )
    .await;

    progress.phase("recording");
    for applied in applied {
        let (report_of_target, note) = applied?;
        if let Some(note) = note {
            report.notes.push(note);
        }
        record_totals(&mut report.totals, &report_of_target.operations);
        report.targets.push(report_of_target);
    }
    let any_failed = report.totals.values().any(|t| t.failed + t.skipped > 0)
        || report.targets.iter().any(|t| t.error.is_some());
    let all_targets_failed =
        !report.targets.is_empty() && report.targets.iter().all(|t| t.error.is_some());
    report.status = if all_targets_failed {
        RunStatus::Failed
    } else if any_failed {
        RunStatus::Partial
    } else {
        RunStatus::Done
    };
    Ok(())
}

/// Applies one target's plan, making every step durable as it goes (see [`RunJournal`]), then
/// keeps what the target holds afterwards. Returns the target's report and a note for the run.
async fn apply_target(
    store: &Store,
    run_id: i64,
    app: &str,
    planned: Planned<'_>,
    progress: Arc<dyn Progress>,
) -> Result<(TargetReport, Option<String>), RunError> {
    let Planned {
        target,
        tc,
        mut plan,
        known,
        adopt_on_create_conflict,
    } = planned;
    // What follows from the plan itself (adoptions, memberships already as wanted, links to
    // accounts deleted by hand) is kept before anything is written.
    store
        .apply_bookkeeping(app, &tc.name, &outcome::from_plan(app, &plan))
        .await?;
    // What the store knows of the target stops holding the moment this run writes; if the
    // store cannot record that, nothing is written to the target.
    let epoch = if plan.operations.is_empty() {
        None
    } else {
        Some(store.begin_target_writes(&tc.name).await)
    };
    let options = ExecOptions {
        concurrency: tc.concurrency.max(1),
        adopt_on_create_conflict,
        ..ExecOptions::default()
    };
    // The executor takes the operations: the report needs only the plan's other parts.
    let operations = std::mem::take(&mut plan.operations);
    let results = if matches!(epoch, Some(Err(_))) {
        Vec::new()
    } else {
        let journal = RunJournal {
            store,
            run_id,
            app,
            target: &tc.name,
            remember_emails: !target.capabilities().reads_email,
        };
        idsync_engine::execute(target.as_ref(), operations, options, &journal, |r| {
            progress.applied(r)
        })
        .await
    };
    let mut results = results;
    known_state::explain_conflicts(&known.state, &mut results);
    let known_source = known.source;
    let product = Some(known.product.to_string());
    let (fingerprint, read_at) = (known.fingerprint.clone(), known.read_at);
    let (results, after) = after_run(tc, Arc::clone(&target), known, results).await;
    let note = match epoch {
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(epoch)) => keep_known_state(store, tc, &fingerprint, read_at, after, epoch).await?,
        None => None,
    };
    Ok((
        TargetReport {
            target: tc.name.clone(),
            kind: target.kind().to_string(),
            error: None,
            state: known_source,
            product,
            managed_users: plan.managed_users,
            adoptions: plan.adoptions,
            warnings: plan.warnings,
            operations: results,
        },
        note,
    ))
}

/// Makes a run's progress on one target durable as the executor goes: before each phase, the
/// accounts it will create and the memberships it will add; after each batch of results, their
/// history rows and bookkeeping, in one transaction.
struct RunJournal<'a> {
    store: &'a Store,
    run_id: i64,
    app: &'a str,
    target: &'a str,
    /// The target does not report e-mail addresses: those sent are remembered.
    remember_emails: bool,
}

#[async_trait::async_trait]
impl idsync_engine::executor::Journal for RunJournal<'_> {
    async fn before_phase(&self, operations: &[PlannedOperation]) -> Result<(), String> {
        let intentions = outcome::intentions(self.app, operations);
        self.store
            .record_intentions(self.run_id, self.target, self.app, &intentions)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record(&self, results: &[OpResult]) -> Result<(), String> {
        let mut books = outcome::Bookkeeping::default();
        for r in results {
            outcome::from_result(self.app, r, &mut books);
        }
        if !self.remember_emails {
            books.sent_emails.clear();
        }
        self.store
            .record_progress(self.run_id, self.app, self.target, results, &books)
            .await
            .map_err(|e| e.to_string())
    }
}

/// One target's plan, with what it was planned from.
struct Planned<'c> {
    target: Arc<dyn Target>,
    tc: &'c TargetConfig,
    plan: TargetPlan,
    known: KnownTarget,
    /// See [`ExecOptions::adopt_on_create_conflict`].
    adopt_on_create_conflict: bool,
}

impl Planned<'_> {
    /// The target's report for a plan that is not applied (a dry run, a held plan).
    fn report_unapplied(&self) -> TargetReport {
        TargetReport {
            target: self.tc.name.clone(),
            kind: self.target.kind().to_string(),
            error: None,
            state: self.known.source,
            product: Some(self.known.product.to_string()),
            managed_users: self.plan.managed_users,
            adoptions: self.plan.adoptions.clone(),
            warnings: self.plan.warnings.clone(),
            operations: self
                .plan
                .operations
                .iter()
                .map(|p| OpResult {
                    planned: p.clone(),
                    status: OpStatus::Planned,
                    error: None,
                    error_kind: None,
                    key: None,
                    duration_ms: 0,
                })
                .collect(),
        }
    }
}

/// A target's state as this run knows it.
struct KnownTarget {
    state: ActualState,
    /// The product and version it runs, read at the start of every run.
    product: idsync_model::ProductInfo,
    source: StateSource,
    /// When it was last read in full (unix seconds).
    read_at: i64,
    fingerprint: String,
    /// Something the admin should hear about how it was come by.
    note: Option<String>,
}

enum KnowError {
    Target(idsync_model::TargetError),
    Store(idsync_store::StoreError),
}

impl From<idsync_store::StoreError> for KnowError {
    fn from(e: idsync_store::StoreError) -> Self {
        KnowError::Store(e)
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What a state read from this target with these attributes is only good for.
fn fingerprint(tc: &TargetConfig, attributes: &[String]) -> String {
    // Stored: nothing that may hold a secret goes in (the config check refuses user info in a
    // base URL already; a query string is cut here).
    let base_url = idsync_model::redact::redact_url(tc.base_url.as_str());
    format!("{} {base_url} {}", tc.kind, attributes.join(","))
}

/// Runs CPU-heavy work (decoding and encoding stored states, planning) on tokio's blocking
/// threads, so that it neither stalls the async threads nor waits behind other targets' work.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels blocking work; nothing is left to do then.
            Err(e) => panic!("blocking work was cancelled: {e}"),
        },
    }
}

/// The custom attributes a target's rules write, which its reads must bring back.
fn custom_attributes(rules: &TargetRules) -> Vec<String> {
    rules
        .users
        .config
        .custom_attributes
        .keys()
        .cloned()
        .collect()
}

/// Reads the app's source, from its stored snapshot when there is one (a delta read), unless
/// `full_read`.
/// `Ok(Err(_))` is a failed read; `Err(_)` a store that failed.
async fn read_source(
    store: &Store,
    app: &AppConfig,
    attributes: &BTreeSet<String>,
    full_read: bool,
    notes: &mut Vec<String>,
) -> Result<Result<idsync_entra::SourceRead, idsync_entra::EntraError>, RunError> {
    // `--full-read` reads the source afresh too: whatever the stored snapshot holds (a
    // damaged or doubtful read) is not carried over.
    let stored = if full_read {
        None
    } else {
        store.source_state(&app.name).await?
    };
    let previous = match stored {
        Some(bytes) => match blocking(move || DirectoryState::unpack(&bytes)).await {
            Ok(state) => Some(state),
            Err(e) => {
                notes.push(format!(
                    "the stored source snapshot could not be read ({e}); reading the source in full"
                ));
                None
            }
        },
        None => None,
    };
    Ok(match EntraSource::new(app, attributes) {
        Ok(source) => source.read(previous).await,
        Err(e) => Err(e),
    })
}

/// What the store holds for one target.
struct StoredTarget {
    links: Vec<idsync_engine::Link>,
    managed: idsync_engine::ManagedMemberships,
    /// The known state when it may be planned from: recent enough, read with the same
    /// fingerprint, and not refused by `--full-read` or `full_read_every_minutes = 0`.
    known: Option<Result<(i64, ActualState), String>>,
    /// Creations an interrupted run left unsettled: the target is read in full to settle them.
    intents: Vec<idsync_engine::outcome::CreateIntent>,
    /// The e-mail address idsync last sent each account (by key), for targets that do not
    /// report them.
    sent_emails: HashMap<String, String>,
    fingerprint: String,
}

/// Loads what the store holds for a target, decoding its known state off the async threads.
async fn stored_for_target(
    store: &Store,
    app: &str,
    tc: &TargetConfig,
    fingerprint: String,
    full_read: bool,
) -> Result<StoredTarget, RunError> {
    let known = async {
        let max_age =
            i64::try_from(tc.full_read_every_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
        if tc.full_read_every_minutes == 0 || full_read {
            return Ok(None);
        }
        let Some(known) = store.known_target_state(&tc.name).await? else {
            return Ok(None);
        };
        if known.fingerprint != fingerprint || unix_now().saturating_sub(known.read_at) >= max_age {
            return Ok(None);
        }
        let read_at = known.read_at;
        let state = blocking(move || idsync_engine::packed::unpack_target_state(&known.state))
            .await
            .map_err(|e| e.to_string());
        Ok::<_, idsync_store::StoreError>(Some(state.map(|s| (read_at, s))))
    };
    let (known, links, managed, intents, sent_emails) = futures::join!(
        known,
        store.links(&tc.name),
        store.managed_memberships(app, &tc.name),
        store.create_intents(app, &tc.name),
        store.sent_emails(&tc.name),
    );
    Ok(StoredTarget {
        links: links?,
        managed: managed?,
        known: known?,
        intents: intents?,
        sent_emails: sent_emails?,
        fingerprint,
    })
}

/// A target as this run knows it, with what the store holds for it.
struct TargetInputs {
    known: KnownTarget,
    links: Vec<idsync_engine::Link>,
    managed: idsync_engine::ManagedMemberships,
}

/// The target's state: what idsync knows of it when that is recent enough and the run does not
/// call for a full read, otherwise read in full (and kept for the runs to come).
async fn know_target(
    store: &Store,
    app: &str,
    target: Arc<dyn Target>,
    tc: &TargetConfig,
    attributes: Vec<String>,
    stored: StoredTarget,
    force_full_read: bool,
) -> Result<TargetInputs, KnowError> {
    let StoredTarget {
        mut links,
        managed,
        known,
        intents,
        sent_emails,
        fingerprint,
    } = stored;
    let force_full_read = force_full_read || !intents.is_empty();
    let now = unix_now();
    let mut note = None;
    // The product's version decides what can be planned for it (an older Confluence lacks
    // resources idsync uses): read first, on every run, as an upgrade can happen any day.
    let product = target.discover().await.map_err(KnowError::Target)?;
    let reads_email = target.capabilities().reads_email;
    match known {
        Some(Ok((read_at, mut state))) if !force_full_read => {
            if !reads_email {
                remembered_emails(&mut state, &sent_emails);
            }
            let minutes = u64::try_from(now.saturating_sub(read_at) / 60).unwrap_or(0);
            let known = KnownTarget {
                state,
                product,
                source: StateSource::Known {
                    read_minutes_ago: minutes,
                },
                read_at,
                fingerprint,
                note: None,
            };
            return Ok(TargetInputs {
                known,
                links,
                managed,
            });
        }
        Some(Err(e)) if !force_full_read => {
            note = Some(format!(
                "what idsync knew of the target could not be read back ({e}); it was read in full"
            ));
        }
        _ => {}
    }
    // The epoch before the read: if a run starts writing while this one reads, what was read
    // may miss its changes and is not kept.
    let epoch = store.target_epoch(&tc.name).await?;
    let state = target
        .read_state(&attributes)
        .await
        .map_err(KnowError::Target)?;
    let state = Arc::new(state);
    if tc.full_read_every_minutes > 0 {
        let to_pack = Arc::clone(&state);
        match blocking(move || idsync_engine::packed::pack_target_state(&to_pack)).await {
            Ok(bytes) => {
                store
                    .save_target_state(&tc.name, &fingerprint, now, epoch, &bytes)
                    .await?;
            }
            Err(e) => note = Some(format!("its state could not be kept: {e}")),
        }
    }
    let mut state = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
    let mut sent_emails = sent_emails;
    if !intents.is_empty() {
        // An interrupted run created accounts it did not get to link: they are linked now,
        // before planning, so that they are managed like any other (deprovisioned when their
        // user leaves) instead of left behind.
        let (mut claimed, unclaimed) =
            idsync_engine::outcome::claim_interrupted_creations(&intents, &state, &links);
        if reads_email {
            claimed.sent_emails.clear();
        } else {
            sent_emails.extend(claimed.sent_emails.iter().cloned());
        }
        store.apply_bookkeeping(app, &tc.name, &claimed).await?;
        let found = claimed.upsert_links.len();
        links.extend(claimed.upsert_links);
        let mut said = format!(
            "{} creation(s) of an interrupted run settled: {found} account(s) found and linked",
            intents.len()
        );
        for n in unclaimed {
            said.push_str("; ");
            said.push_str(&n);
        }
        note = Some(match note {
            Some(earlier) => format!("{earlier}; {said}"),
            None => said,
        });
    }
    if !reads_email {
        remembered_emails(&mut state, &sent_emails);
    }
    Ok(TargetInputs {
        known: KnownTarget {
            state,
            product,
            source: StateSource::FullRead,
            read_at: now,
            fingerprint,
            note,
        },
        links,
        managed,
    })
}

/// Gives each account of a target that does not report e-mail addresses the one idsync last
/// sent it, so that the planner sees a change at the source as a change (and an account with
/// none remembered as one whose address is unknown).
fn remembered_emails(state: &mut ActualState, sent: &HashMap<String, String>) {
    for user in &mut state.users {
        user.email = sent.get(&user.key).cloned();
    }
}

/// One target's plan to make: everything it is made from, owned, so that each can be made on
/// a thread of its own.
struct PlanJob {
    app: String,
    target_name: String,
    target: Arc<dyn Target>,
    snapshot: Arc<idsync_model::SourceSnapshot>,
    known: KnownTarget,
    links: Vec<idsync_engine::Link>,
    managed: idsync_engine::ManagedMemberships,
    rules: Arc<TargetRules>,
    nested_groups: bool,
}

impl PlanJob {
    /// The plan, and how long the planner took (ms).
    fn plan(&self) -> (TargetPlan, u64) {
        let planning = Instant::now();
        let plan = idsync_engine::plan(&PlanInput {
            app: &self.app,
            target: &self.target_name,
            capabilities: self.target.capabilities(),
            snapshot: &self.snapshot,
            source_complete: true,
            actual: &self.known.state,
            links: &self.links,
            managed_memberships: &self.managed,
            users: &self.rules.users,
            groups: &self.rules.groups,
            nested_groups: self.nested_groups,
        });
        (plan, millis(planning))
    }
}

/// Plans one target on a blocking thread: the planner is pure CPU work, and the targets'
/// plans are made side by side.
async fn plan_one(job: PlanJob) -> (PlanJob, TargetPlan, u64) {
    blocking(move || {
        let (plan, ms) = job.plan();
        (job, plan, ms)
    })
    .await
}

/// What a target holds after a run, packed to be kept: `None` when it is not kept
/// (`full_read_every_minutes = 0`), `Err` with why the next run must read the target in full.
type AfterRun = Option<Result<Vec<u8>, String>>;

/// Works out what the target holds now that `results` are applied, and packs it, on a blocking
/// thread (CPU work on a state of 100k accounts or more). Gives the results back.
async fn after_run(
    tc: &TargetConfig,
    target: Arc<dyn Target>,
    known: KnownTarget,
    results: Vec<OpResult>,
) -> (Vec<OpResult>, AfterRun) {
    if tc.full_read_every_minutes == 0 {
        return (results, None);
    }
    blocking(move || {
        let packed = known_state::state_after(known.state, target.capabilities(), &results)
            .map_err(|e| e.to_string())
            .and_then(|after| {
                idsync_engine::packed::pack_target_state(&after).map_err(|e| e.to_string())
            });
        (results, Some(packed))
    })
    .await
}

/// After a run wrote to a target: keeps what the target now holds, or says why the next run
/// has to read it in full.
async fn keep_known_state(
    store: &Store,
    tc: &TargetConfig,
    fingerprint: &str,
    read_at: i64,
    after: AfterRun,
    epoch: i64,
) -> Result<Option<String>, RunError> {
    match after {
        None => Ok(None),
        Some(Ok(bytes)) => {
            store
                .save_target_state(&tc.name, fingerprint, read_at, epoch, &bytes)
                .await?;
            Ok(None)
        }
        Some(Err(why)) => Ok(Some(format!(
            "{}: {why}; the next run reads the target in full",
            tc.name
        ))),
    }
}

fn record_totals(totals: &mut BTreeMap<OperationKind, KindTotals>, results: &[OpResult]) {
    for r in results {
        let t = totals.entry(r.planned.op.kind()).or_default();
        match r.status {
            OpStatus::Done => t.done += 1,
            OpStatus::AlreadyDone => t.already_done += 1,
            OpStatus::Failed => t.failed += 1,
            OpStatus::Skipped => t.skipped += 1,
            OpStatus::Planned => {}
        }
    }
}

/// Writes the run's end into the history and returns the report.
async fn finish(
    store: &Store,
    mut report: RunReport,
    started: Instant,
) -> Result<RunReport, RunError> {
    report.elapsed_ms = millis(started);
    if report.error.is_none()
        && let Some(failed) = report.targets.iter().find_map(|t| t.error.clone())
    {
        report.error = Some(failed);
    }
    let counts = serde_json::to_value(&report.totals).unwrap_or_default();
    let summary = serde_json::json!({
        "source": report.source,
        "notes": report.notes,
        "targets": report.targets.iter().map(|t| serde_json::json!({
            "target": t.target,
            "kind": t.kind,
            "error": t.error,
            "state": t.state,
            "managed_users": t.managed_users,
            "adoptions": t.adoptions.len(),
            "warnings": t.warnings,
        })).collect::<Vec<_>>(),
        "hold": report.hold,
        "elapsed_ms": report.elapsed_ms,
        "planner_ms": report.planner_ms,
    });
    store
        .finish_run(
            report.run_id,
            report.status.as_str(),
            &counts,
            &summary,
            report.error.as_deref(),
        )
        .await?;
    Ok(report)
}
