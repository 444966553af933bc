//! One sync run of one app, end to end: read the source (delta when possible), read every target
//! the app feeds, plan each target, check the mass-change guard, apply, and record links,
//! managed memberships and history in the store.
//!
//! The planner works from complete states (the whole source snapshot and the whole target
//! state), never from a stream of events: that is what makes a run killed half way converge on
//! the next run, and why the source snapshot can be saved as soon as it has been read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use idsync_config::{AppConfig, Config, TargetConfig};
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

/// One target's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: String,
    pub kind: String,
    /// Set when the target could not be read: nothing was planned for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    dry_run: bool,
    trigger: Trigger,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
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
    match serde_json::to_string(&read.state) {
        Ok(text) => store.save_source_state(&app.name, &text).await?,
        Err(e) => report
            .notes
            .push(format!("the source snapshot could not be saved: {e}")),
    }

    // 2. The targets, read at once.
    progress.phase("reading the targets");
    let mut targets: Vec<(Arc<dyn Target>, &TargetConfig, &TargetRules)> = Vec::new();
    for (tc, r) in target_configs.iter().zip(&rules) {
        match idsync_atlassian::build_target(tc) {
            Ok(t) => targets.push((t, tc, r)),
            Err(e) => report.targets.push(TargetReport::failed(tc, e.to_string())),
        }
    }
    let reads = futures::future::join_all(targets.iter().map(|(t, _, r)| {
        let attrs: Vec<String> = r.users.config.custom_attributes.keys().cloned().collect();
        let t = Arc::clone(t);
        async move { t.read_state(&attrs).await }
    }))
    .await;

    // 3. Plan each target.
    let mut plans: Vec<(Arc<dyn Target>, &TargetConfig, TargetPlan)> = Vec::new();
    let mut planner_ms = 0;
    for ((target, tc, r), actual) in targets.into_iter().zip(reads) {
        let actual: ActualState = match actual {
            Ok(a) => a,
            Err(e) => {
                report.targets.push(TargetReport::failed(
                    tc,
                    format!("reading the target failed: {e}"),
                ));
                continue;
            }
        };
        let links = store.links(&tc.name).await?;
        let managed = store.managed_memberships(&app.name, &tc.name).await?;
        let planning = Instant::now();
        let plan = idsync_engine::plan(&PlanInput {
            app: &app.name,
            target: &tc.name,
            capabilities: target.capabilities(),
            snapshot: &read.snapshot,
            source_complete: true,
            actual: &actual,
            links: &links,
            managed_memberships: &managed,
            users: &r.users,
            groups: &r.groups,
            nested_groups: app.nested_groups,
        });
        planner_ms += millis(planning);
        plans.push((target, tc, plan));
    }
    report.planner_ms = planner_ms;

    // 4. The guard, over the whole app.
    let deprovisions: usize = plans.iter().map(|(_, _, p)| p.deprovisions()).sum();
    let managed_users: usize = plans.iter().map(|(_, _, p)| p.managed_users).sum();
    let approval = store.pending_approval(&app.name).await?;
    let approved = approval.map_or(0, |(_, n)| n);
    let hold = guard::check(&app.guard, deprovisions, managed_users, approved);

    for (_, _, plan) in &plans {
        for o in &plan.operations {
            report.totals.entry(o.op.kind()).or_default().planned += 1;
        }
    }
    if dry_run || hold.is_some() {
        for (target, tc, plan) in &plans {
            report.targets.push(TargetReport {
                target: tc.name.clone(),
                kind: target.kind().to_string(),
                error: None,
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
    let total: usize = plans.iter().map(|(_, _, p)| p.operations.len()).sum();
    progress.planned(total);
    progress.phase("applying");
    let applied = futures::future::join_all(plans.into_iter().map(|(target, tc, plan)| {
        let progress = Arc::clone(&progress);
        let app_name = app.name.clone();
        async move {
            let mut books = outcome::from_plan(&app_name, &plan);
            let options = ExecOptions {
                concurrency: tc.concurrency.max(1),
                ..ExecOptions::default()
            };
            let results =
                idsync_engine::execute(target.as_ref(), plan.operations.clone(), options, |r| {
                    outcome::from_result(&app_name, r, &mut books);
                    progress.applied(r);
                })
                .await;
            (target, tc, plan, results, books)
        }
    }))
    .await;

    for (target, tc, plan, results, books) in applied {
        store.apply_bookkeeping(&app.name, &tc.name, &books).await?;
        store.record_operations(run_id, &results).await?;
        record_totals(&mut report.totals, &results);
        report.targets.push(TargetReport {
            target: tc.name.clone(),
            kind: target.kind().to_string(),
            error: None,
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
