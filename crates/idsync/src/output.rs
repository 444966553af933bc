//! Human-readable output: summary tables on stdout; and config problems as `--json` documents
//! show them.

use std::path::Path;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use idsync_runner::RunReport;
use idsync_store::{OperationRecord, RunRecord};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(Cell::new));
    t
}

/// A config problem in `--json` documents: where it is (file and line, or the environment
/// variable its value came from), the field and what is wrong.
pub fn problem_json(file: &Path, problem: &idsync_config::Problem) -> serde_json::Value {
    serde_json::json!({
        "file": file.display().to_string(),
        "line": problem.line,
        "env_var": problem.env_var,
        "field": problem.field,
        "message": problem.message,
    })
}

/// The summary of one run: per kind of operation, how many were planned and how they ended.
pub fn print_run(report: &RunReport) {
    let what = if report.dry_run { "dry run" } else { "run" };
    outln!(
        "app {} — {what} {} — {} in {:.1}s (planner {} ms)",
        report.app,
        report.run_id,
        report.status.as_str(),
        report.elapsed_ms as f64 / 1000.0,
        report.planner_ms
    );
    if let Some(source) = report.source.as_object() {
        let fields: Vec<String> = [
            "users_in_scope",
            "groups",
            "memberships",
            "mode",
            "requests_total",
        ]
        .iter()
        .filter_map(|k| source.get(*k).map(|v| format!("{k}: {v}")))
        .collect();
        if !fields.is_empty() {
            outln!("source: {}", fields.join(", "));
        }
    }
    let mut t = table(&[
        "operation",
        "planned",
        "done",
        "already",
        "failed",
        "skipped",
    ]);
    for (kind, totals) in &report.totals {
        t.add_row(vec![
            Cell::new(kind.as_str()),
            Cell::new(totals.planned),
            Cell::new(totals.done),
            Cell::new(totals.already_done),
            Cell::new(totals.failed),
            Cell::new(totals.skipped),
        ]);
    }
    if report.totals.is_empty() {
        // A run that failed before planning (the source could not be read) knows nothing of
        // the targets: its error, below, is the news.
        if report.status != idsync_runner::RunStatus::Failed {
            outln!("nothing to do: every target is in step with the source");
        }
    } else {
        outln!("{t}");
    }
    for target in &report.targets {
        print_target(target);
    }
    if report.dry_run {
        for target in &report.targets {
            print_planned(target);
        }
    }
    for note in &report.notes {
        outln!("note: {note}");
    }
    if let Some(e) = &report.error {
        outln!("error: {e}");
    }
}

/// One target's lines of a run's summary: its error, where its state came from, adoptions,
/// warnings and the first failures.
fn print_target(target: &idsync_runner::TargetReport) {
    if let Some(e) = &target.error {
        outln!("target {}: {e}", target.target);
    }
    match target.state {
        idsync_runner::StateSource::FullRead => {
            outln!("target {}: read in full", target.target);
        }
        idsync_runner::StateSource::Known { read_minutes_ago } => outln!(
            "target {}: planned from what idsync knows (read in full {read_minutes_ago} min ago, kept up to date since)",
            target.target
        ),
        idsync_runner::StateSource::OneUser => {
            outln!(
                "target {}: the user's account read for this sign-in",
                target.target
            );
        }
        idsync_runner::StateSource::None => {}
    }
    if !target.adoptions.is_empty() {
        outln!(
            "target {}: {} existing account(s) adopted",
            target.target,
            target.adoptions.len()
        );
    }
    for w in &target.warnings {
        outln!("target {}: warning: {w}", target.target);
    }
    let failures: Vec<_> = target
        .operations
        .iter()
        .filter(|o| o.error.is_some())
        .take(20)
        .collect();
    for f in &failures {
        outln!(
            "target {}: {} {} failed: {}",
            target.target,
            f.planned.op.kind(),
            f.planned.op.user().or(f.planned.op.group()).unwrap_or(""),
            f.error.as_deref().unwrap_or("")
        );
    }
}

/// A dry run's operations on one target, each with its reason (the first 50).
fn print_planned(target: &idsync_runner::TargetReport) {
    for o in target.operations.iter().take(50) {
        outln!(
            "  {} {} {} — {}",
            target.target,
            o.planned.op.kind(),
            o.planned.op.user().or(o.planned.op.group()).unwrap_or(""),
            o.planned.reason
        );
    }
    if target.operations.len() > 50 {
        outln!(
            "  … and {} more on {} (use --json for all)",
            target.operations.len() - 50,
            target.target
        );
    }
}

/// A sign-in sync of one user (`idsync sync --user`): who, the verdict, then the run with
/// every operation and its reason.
pub fn print_user_sync(report: &idsync_runner::UserSyncReport) {
    let how = match report.resolved_by {
        idsync_runner::ResolvedBy::ObjectId => "object id",
        idsync_runner::ResolvedBy::UserPrincipalName => "user principal name",
        idsync_runner::ResolvedBy::Username => "username, through idsync's links",
    };
    outln!(
        "app {} — user {} ({}, found by {how})",
        report.app,
        report
            .user_principal_name
            .as_deref()
            .unwrap_or(&report.user),
        report.source_id
    );
    match report.outcome {
        idsync_runner::UserOutcome::Synced => outln!("in scope: {}", report.scope.why),
        idsync_runner::UserOutcome::OutOfScope => outln!(
            "not in scope ({}): nothing done; taking access away is left to full runs",
            report.scope.why
        ),
        idsync_runner::UserOutcome::DisabledAtSource => {
            outln!("disabled at the source: nothing done; taking access away is left to full runs")
        }
    }
    if let Some(run) = &report.run {
        print_run(run);
        if !run.dry_run {
            for target in &run.targets {
                for o in &target.operations {
                    outln!(
                        "  {} {} {} — {} ({})",
                        target.target,
                        o.planned.op.kind(),
                        o.planned.op.user().or(o.planned.op.group()).unwrap_or(""),
                        o.planned.reason,
                        o.status.as_str()
                    );
                }
            }
        }
    }
}

pub fn print_history(runs: &[RunRecord]) {
    if runs.is_empty() {
        outln!("no runs yet");
        return;
    }
    let mut t = table(&[
        "run",
        "app",
        "trigger",
        "status",
        "started",
        "operations",
        "error",
    ]);
    for r in runs {
        let ops: u64 = r
            .counts
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.get("planned").and_then(|p| p.as_u64()))
                    .sum()
            })
            .unwrap_or(0);
        t.add_row(vec![
            Cell::new(r.id),
            Cell::new(&r.app),
            Cell::new(if r.dry_run {
                format!("{} (dry run)", r.trigger)
            } else {
                r.trigger.clone()
            }),
            Cell::new(&r.status),
            Cell::new(&r.started_at),
            Cell::new(ops),
            Cell::new(r.error.as_deref().unwrap_or("")),
        ]);
    }
    outln!("{t}");
}

pub fn print_run_record(run: &RunRecord, operations: &[OperationRecord]) {
    print_history(std::slice::from_ref(run));
    if operations.is_empty() {
        outln!("no operations recorded");
        return;
    }
    let mut t = table(&[
        "#",
        "target",
        "operation",
        "subject",
        "status",
        "ms",
        "error",
    ]);
    for o in operations {
        t.add_row(vec![
            Cell::new(o.seq),
            Cell::new(&o.target),
            Cell::new(&o.kind),
            Cell::new(&o.subject),
            Cell::new(&o.status),
            Cell::new(o.duration_ms),
            Cell::new(o.error.as_deref().unwrap_or("")),
        ]);
    }
    outln!("{t}");
}

/// The plan a held run kept for review (the targets' planned operations, as JSON).
pub fn print_held_plan(plan: &serde_json::Value) {
    let Some(targets) = plan.as_array() else {
        return;
    };
    outln!("plan held for approval:");
    let mut t = table(&["target", "operation", "subject", "reason"]);
    for target in targets {
        let name = target["target"].as_str().unwrap_or("");
        for op in target["operations"].as_array().into_iter().flatten() {
            let subject = op["user"].as_str().or(op["group"].as_str()).unwrap_or("");
            t.add_row(vec![
                Cell::new(name),
                Cell::new(op["op"].as_str().unwrap_or("")),
                Cell::new(subject),
                Cell::new(op["reason"].as_str().unwrap_or("")),
            ]);
        }
    }
    outln!("{t}");
}
