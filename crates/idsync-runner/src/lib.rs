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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use idsync_config::{AppConfig, Config, TargetConfig};
use idsync_engine::known_state;
use idsync_engine::outcome;
use idsync_engine::{
    CompiledGroupRules, CompiledUserRules, ExecOptions, OpResult, OpStatus, PlanInput, TargetPlan,
    guard,
};
use idsync_entra::{DirectoryState, EntraSource};
use idsync_model::{ActualState, OperationKind, Target};
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
    /// Read every target in full, whatever idsync knows of it.
    pub full_read: bool,
}

impl RunOptions {
    pub fn manual() -> Self {
        RunOptions {
            trigger: Trigger::Manual,
            dry_run: false,
            full_read: false,
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
    pub elapsed_ms: u64,
    /// Time spent in the planner, all targets together.
    pub planner_ms: u64,
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
}

/// The rules in force for one target of an app (overrides applied), compiled.
struct TargetRules {
    users: CompiledUserRules,
    groups: CompiledGroupRules,
}

fn target_rules(app: &AppConfig, app_index: usize, target: &str) -> Result<TargetRules, RunError> {
    let over = app.overrides.get(target);
    let users = over.and_then(|o| o.users.as_ref()).unwrap_or(&app.users);
    let groups = over.and_then(|o| o.groups.as_ref()).unwrap_or(&app.groups);
    Ok(TargetRules {
        users: CompiledUserRules::compile(users, &format!("apps[{app_index}].users"))?,
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
/// (store, rules); a failed source or target read is a run with status `failed` or `partial`.
pub async fn sync_app(
    config: &Config,
    app_name: &str,
    store: &Store,
    options: RunOptions,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
    let RunOptions {
        trigger, dry_run, ..
    } = options;
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
        .map(|t| target_rules(app, app_index, &t.name))
        .collect::<Result<_, _>>()?;
    let interrupted = store.close_interrupted_runs(&app.name).await?;
    let run_id = store
        .start_run(&app.name, trigger.as_str(), dry_run)
        .await?;
    let mut report = RunReport {
        run_id,
        app: app.name.clone(),
        trigger,
        dry_run,
        status: RunStatus::Failed,
        source: serde_json::Value::Null,
        notes: Vec::new(),
        targets: Vec::new(),
        totals: BTreeMap::new(),
        hold: None,
        error: None,
        elapsed_ms: 0,
        planner_ms: 0,
    };

    for id in interrupted {
        report.notes.push(format!(
            "run {id} had stopped before it finished; it is marked interrupted"
        ));
    }

    // 1. The source.
    progress.phase("reading the source");
    let previous = match store.source_state(&app.name).await? {
        Some(text) => match serde_json::from_str::<DirectoryState>(&text) {
            Ok(state) => Some(state),
            Err(e) => {
                report.notes.push(format!(
                    "the stored source snapshot could not be read ({e}); reading the source in full"
                ));
                None
            }
        },
        None => None,
    };
    let attributes = attributes_needed(app, &rules);
    let read = match EntraSource::new(app, &attributes) {
        Ok(source) => source.read(previous).await,
        Err(e) => Err(e),
    };
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            // A failed read plans nothing at all: above all, no deactivations.
            report.error = Some(format!(
                "reading the source of app {:?} failed: {e}",
                app.name
            ));
            return finish(store, report, started).await;
        }
    };
    report.source = serde_json::to_value(&read.stats).unwrap_or_default();
    report.notes.extend(read.notes.iter().cloned());
    // The snapshot is complete state, not a list of changes: keeping it now is safe whatever
    // happens to the rest of the run, and spares the next run a full read.
    let save_source = async {
        match serde_json::to_string(&read.state) {
            Ok(text) => store
                .save_source_state(&app.name, &text)
                .await
                .map(|()| None),
            Err(e) => Ok(Some(format!("the source snapshot could not be saved: {e}"))),
        }
    };

    // 2. The targets, at once: read in full, or known from earlier runs.
    progress.phase("reading the targets");
    let mut targets: Vec<(Arc<dyn Target>, &TargetConfig, &TargetRules)> = Vec::new();
    for (tc, r) in target_configs.iter().zip(&rules) {
        match idsync_atlassian::build_target(tc) {
            Ok(t) => targets.push((t, tc, r)),
            Err(e) => report.targets.push(TargetReport::failed(tc, e.to_string())),
        }
    }
    // A full source read (first run, expired delta token) is a full reconciliation: the
    // targets are read in full too.
    let force_full_read = options.full_read || read.stats.mode != "delta";
    // What the store holds for each target (links, managed memberships: large at 100k users)
    // is loaded alongside, each target on its own connection.
    let reads = futures::future::join_all(targets.iter().map(|(t, tc, r)| {
        let attrs: Vec<String> = r.users.config.custom_attributes.keys().cloned().collect();
        let app_name = &app.name;
        async move {
            let (known, links, managed) = futures::join!(
                know_target(store, Arc::clone(t), tc, attrs, force_full_read),
                store.links(&tc.name),
                store.managed_memberships(app_name, &tc.name),
            );
            (known, links, managed)
        }
    }));
    // Target futures first, so that their store queries run while the snapshot is written.
    let (reads, saved) = futures::join!(reads, save_source);
    if let Some(note) = saved? {
        report.notes.push(note);
    }

    // 3. Plan each target.
    progress.phase("planning");
    let mut plans: Vec<Planned> = Vec::new();
    let mut planner_ms = 0;
    for ((target, tc, r), (known, links, managed)) in targets.into_iter().zip(reads) {
        let (links, managed) = (links?, managed?);
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
        if let Some(note) = &known.note {
            report.notes.push(format!("{}: {note}", tc.name));
        }
        let mut known = known;
        let plan_from = |actual: &ActualState| {
            idsync_engine::plan(&PlanInput {
                app: &app.name,
                target: &tc.name,
                capabilities: target.capabilities(),
                snapshot: &read.snapshot,
                source_complete: true,
                actual,
                links: &links,
                managed_memberships: &managed,
                users: &r.users,
                groups: &r.groups,
                nested_groups: app.nested_groups,
            })
        };
        let planning = Instant::now();
        let mut plan = plan_from(&known.state);
        planner_ms += millis(planning);
        if target.capabilities().leads
            && known.source != StateSource::FullRead
            && plan.deprovisions() > 0
        {
            // Leads change by hand all the time: who leads what is read afresh before anyone
            // is deprovisioned, and the plan made again with it.
            match target.read_leads().await {
                Ok(leads) if leads == known.state.leads => {}
                Ok(leads) => {
                    known.state.leads = leads;
                    let planning = Instant::now();
                    plan = plan_from(&known.state);
                    planner_ms += millis(planning);
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
        plans.push(Planned {
            target,
            tc,
            plan,
            known,
        });
    }
    report.planner_ms = planner_ms;

    // 4. The guard, over the whole app.
    let deprovisions: usize = plans.iter().map(|p| p.plan.deprovisions()).sum();
    let managed_users: usize = plans.iter().map(|p| p.plan.managed_users).sum();
    let approval = store.pending_approval(&app.name).await?;
    let approved = approval.map_or(0, |(_, n)| n);
    let hold = guard::check(&app.guard, deprovisions, managed_users, approved);

    for Planned { plan, .. } in &plans {
        for o in &plan.operations {
            report.totals.entry(o.op.kind()).or_default().planned += 1;
        }
    }
    if dry_run || hold.is_some() {
        for Planned {
            target,
            tc,
            plan,
            known,
        } in &plans
        {
            report.targets.push(TargetReport {
                target: tc.name.clone(),
                kind: target.kind().to_string(),
                error: None,
                state: known.source,
                managed_users: plan.managed_users,
                adoptions: plan.adoptions.clone(),
                warnings: plan.warnings.clone(),
                operations: plan
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
            });
        }
        if let Some(hold) = hold {
            let plan_json = serde_json::to_value(&report.targets).unwrap_or_default();
            store
                .hold_run(run_id, &plan_json, hold.deprovisions)
                .await?;
            report.notes.push(format!(
                "held: {}. Review the plan, then run `idsync approve --config FILE {run_id}` and sync again",
                hold.reason
            ));
            report.hold = Some(hold);
            report.status = RunStatus::Held;
        } else {
            report.status = RunStatus::Planned;
        }
        return finish(store, report, started).await;
    }

    // 5. Apply, every target at once, each within its own concurrency.
    let total: usize = plans.iter().map(|p| p.plan.operations.len()).sum();
    progress.planned(total);
    progress.phase("applying");
    let applied = futures::future::join_all(plans.into_iter().map(|planned| {
        let progress = Arc::clone(&progress);
        let app_name = app.name.clone();
        async move {
            let Planned {
                target,
                tc,
                mut plan,
                known,
            } = planned;
            // What the store knows of the target stops holding the moment this run writes; if
            // the store cannot record that, nothing is written to the target.
            let epoch = if plan.operations.is_empty() {
                None
            } else {
                Some(store.begin_target_writes(&tc.name).await)
            };
            let mut books = outcome::from_plan(&app_name, &plan);
            let options = ExecOptions {
                concurrency: tc.concurrency.max(1),
                ..ExecOptions::default()
            };
            // The executor takes the operations: the report needs only the plan's other parts.
            let operations = std::mem::take(&mut plan.operations);
            let results = if matches!(epoch, Some(Err(_))) {
                Vec::new()
            } else {
                idsync_engine::execute(target.as_ref(), operations, options, |r| {
                    outcome::from_result(&app_name, r, &mut books);
                    progress.applied(r);
                })
                .await
            };
            // Recorded as soon as this target is done, while the others may still be busy.
            let known_source = known.source;
            let recorded = async {
                store.apply_bookkeeping(&app_name, &tc.name, &books).await?;
                match epoch {
                    Some(epoch) => {
                        keep_known_state(store, tc, target.as_ref(), known, &results, epoch?).await
                    }
                    None => Ok(None),
                }
            }
            .await;
            (target, tc, plan, results, known_source, recorded)
        }
    }))
    .await;

    progress.phase("recording");
    for (target, tc, plan, results, known_source, recorded) in applied {
        if let Some(note) = recorded? {
            report.notes.push(note);
        }
        store.record_operations(run_id, &results).await?;
        record_totals(&mut report.totals, &results);
        report.targets.push(TargetReport {
            target: tc.name.clone(),
            kind: target.kind().to_string(),
            error: None,
            state: known_source,
            managed_users: plan.managed_users,
            adoptions: plan.adoptions,
            warnings: plan.warnings,
            operations: results,
        });
    }
    if let Some((approved_run, _)) = approval
        && deprovisions > 0
    {
        store.consume_approval(approved_run, run_id).await?;
        report.notes.push(format!(
            "applied the deprovisions approved in run {approved_run}"
        ));
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
    finish(store, report, started).await
}

/// One target's plan, with what it was planned from.
struct Planned<'c> {
    target: Arc<dyn Target>,
    tc: &'c TargetConfig,
    plan: TargetPlan,
    known: KnownTarget,
}

/// A target's state as this run knows it.
struct KnownTarget {
    state: ActualState,
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
    format!("{} {} {}", tc.kind, tc.base_url, attributes.join(","))
}

/// The target's state: what idsync knows of it when that is recent enough and the run does not
/// call for a full read, otherwise read in full (and kept for the runs to come).
async fn know_target(
    store: &Store,
    target: Arc<dyn Target>,
    tc: &TargetConfig,
    attributes: Vec<String>,
    force_full_read: bool,
) -> Result<KnownTarget, KnowError> {
    let fingerprint = fingerprint(tc, &attributes);
    let now = unix_now();
    let keeps = tc.full_read_every_minutes > 0;
    let max_age = i64::try_from(tc.full_read_every_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    let mut note = None;
    if keeps
        && !force_full_read
        && let Some(known) = store.known_target_state(&tc.name).await?
        && known.fingerprint == fingerprint
        && now.saturating_sub(known.read_at) < max_age
    {
        match serde_json::from_str::<ActualState>(&known.state) {
            Ok(state) => {
                let minutes = u64::try_from(now.saturating_sub(known.read_at) / 60).unwrap_or(0);
                return Ok(KnownTarget {
                    state,
                    source: StateSource::Known {
                        read_minutes_ago: minutes,
                    },
                    read_at: known.read_at,
                    fingerprint,
                    note: None,
                });
            }
            Err(e) => {
                note = Some(format!(
                    "what idsync knew of the target could not be read back ({e}); it was read in full"
                ));
            }
        }
    }
    // The epoch before the read: if a run starts writing while this one reads, what was read
    // may miss its changes and is not kept.
    let epoch = store.target_epoch(&tc.name).await?;
    let state = target
        .read_state(&attributes)
        .await
        .map_err(KnowError::Target)?;
    if keeps {
        match serde_json::to_string(&state) {
            Ok(text) => {
                store
                    .save_target_state(&tc.name, &fingerprint, now, epoch, &text)
                    .await?;
            }
            Err(e) => note = Some(format!("its state could not be kept: {e}")),
        }
    }
    Ok(KnownTarget {
        state,
        source: StateSource::FullRead,
        read_at: now,
        fingerprint,
        note,
    })
}

/// After a run wrote to a target: keeps what the target now holds, or says why the next run
/// has to read it in full.
async fn keep_known_state(
    store: &Store,
    tc: &TargetConfig,
    target: &dyn Target,
    known: KnownTarget,
    results: &[OpResult],
    epoch: i64,
) -> Result<Option<String>, RunError> {
    if tc.full_read_every_minutes == 0 {
        return Ok(None);
    }
    let after = known_state::state_after(known.state, target.capabilities(), results);
    let text = after
        .map_err(|e| e.to_string())
        .and_then(|state| serde_json::to_string(&state).map_err(|e| e.to_string()));
    match text {
        Ok(text) => {
            store
                .save_target_state(&tc.name, &known.fingerprint, known.read_at, epoch, &text)
                .await?;
            Ok(None)
        }
        Err(why) => Ok(Some(format!(
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
