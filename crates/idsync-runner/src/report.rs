//! What a run reports: its status, per target what was read, planned and done, and the
//! totals; and how a run's end is recorded.

// The crate root holds the imports and the types every step shares.
use super::*;

/// Per operation kind: how many were planned and how they ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindTotals {
    /// Operations planned.
    pub planned: usize,
    /// Applied.
    pub done: usize,
    /// Already as wanted on the target when sent.
    pub already_done: usize,
    /// Refused or failed.
    pub failed: usize,
    /// Not sent (an operation they depend on failed, or idsync was stopping).
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
    Known {
        /// When the last full read was.
        read_minutes_ago: u64,
    },
    /// Not read (the target could not be built or read).
    None,
    /// A sign-in sync: the user's account(s) alone, read for this run, with the groups idsync
    /// knows the target has.
    OneUser,
}

/// One target's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    /// The target's name.
    pub target: String,
    /// Its kind (`jira-dc`, …).
    pub kind: String,
    /// Set when the target could not be read: nothing was planned for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the target's state came from.
    pub state: StateSource,
    /// The product and version the target reported (`Confluence 8.5.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Accounts idsync manages on the target for this app.
    pub managed_users: usize,
    /// Accounts taken over this run, and why.
    pub adoptions: Vec<idsync_engine::Adoption>,
    /// What the planner warns about, one line each.
    pub warnings: Vec<String>,
    /// In a dry run, the plan (`status` = "planned"); otherwise each result.
    pub operations: Vec<OpResult>,
}

impl TargetReport {
    /// A target nothing could be planned for.
    pub(crate) fn failed(tc: &TargetConfig, error: String) -> Self {
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
    /// The run's id in the history.
    pub run_id: i64,
    /// The app synced.
    pub app: String,
    /// What started the run.
    pub trigger: Trigger,
    /// Planned only, nothing applied.
    pub dry_run: bool,
    /// How the run ended.
    pub status: RunStatus,
    /// Source read figures (users in scope, requests, delta or full, ...).
    pub source: serde_json::Value,
    /// Notes for the operator (takeovers, holds, settled creations…).
    pub notes: Vec<String>,
    /// One report per target.
    pub targets: Vec<TargetReport>,
    /// Operations by kind: planned, done, failed…
    pub totals: BTreeMap<OperationKind, KindTotals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why the guard held the run, when it did.
    pub hold: Option<guard::Hold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// Set when the source read failed because the config names something the source does
    /// not have (a scope group, an enterprise application): each such field and what is
    /// wrong. The run failed as any failed read does (`error` says the same); the fix is in
    /// the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_problems: Vec<ConfigProblem>,
    /// How long the run took.
    pub elapsed_ms: u64,
    /// Time spent in the planner, all targets together.
    pub planner_ms: u64,
}

impl RunReport {
    /// A run just started: failed until it says otherwise, with a note per run it takes over
    /// from (one whose process died).
    pub(crate) fn new(
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

    /// Adds one target's applied plan: its report, and a note for the run if it has one.
    pub(crate) fn add_applied(&mut self, (target, note): (TargetReport, Option<String>)) {
        if let Some(note) = note {
            self.notes.push(note);
        }
        record_totals(&mut self.totals, &target.operations);
        self.targets.push(target);
    }

    /// How the run ended, once every target is in: interrupted (by a stop), failed (every
    /// target failed), partial (some operation or target failed) or done.
    pub(crate) fn settle_status(&mut self, interrupted: bool) {
        let any_failed = self.totals.values().any(|t| t.failed + t.skipped > 0)
            || self.targets.iter().any(|t| t.error.is_some());
        let all_targets_failed =
            !self.targets.is_empty() && self.targets.iter().all(|t| t.error.is_some());
        self.status = if interrupted {
            RunStatus::Interrupted
        } else if all_targets_failed {
            RunStatus::Failed
        } else if any_failed {
            RunStatus::Partial
        } else {
            RunStatus::Done
        };
    }
}

/// An operation as planned and not applied (a dry run, or a run held by the guard).
pub(crate) fn planned_only(planned: &PlannedOperation) -> OpResult {
    OpResult {
        planned: planned.clone(),
        status: OpStatus::Planned,
        error: None,
        error_kind: None,
        key: None,
        duration_ms: 0,
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

pub(crate) fn record_totals(
    totals: &mut BTreeMap<OperationKind, KindTotals>,
    results: &[OpResult],
) {
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
pub(crate) async fn finish(
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
            report.status,
            &counts,
            &summary,
            report.error.as_deref(),
        )
        .await?;
    Ok(report)
}
