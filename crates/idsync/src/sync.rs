//! `idsync sync`: read, plan, guard, apply; a progress bar on a terminal, a summary table or one
//! JSON document.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use idsync_runner::{Progress, Quiet, RunReport, RunStatus, Trigger};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::CliError;
use crate::output;
use crate::store::{load_config, open_store, select_apps, with_stored_entries};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this app (default: every app, one after the other).
    #[arg(long)]
    pub app: Option<String>,
    /// Plan and show, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read every target in full instead of planning from what idsync knows of it (which
    /// `full_read_every_minutes` otherwise decides).
    #[arg(long)]
    pub full_read: bool,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// If another run of the app is in progress, wait for it to end instead of exiting with
    /// code 4.
    #[arg(long)]
    pub wait: bool,
    /// Sync this one user only, as a sign-in does (needs --app): an Entra object id, a user
    /// principal name or a target username. Out of scope or disabled at the source: nothing
    /// is done. Without --wait, a run in progress is waited for `login_sync_wait_seconds`.
    #[arg(long, requires = "app", conflicts_with = "full_read")]
    pub user: Option<String>,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn phase(&self, what: &str) {
        self.0.set_message(what.to_owned());
    }
    fn planned(&self, operations: usize) {
        self.0.set_length(operations as u64);
        self.0.set_position(0);
    }
    fn applied(&self, _result: &idsync_engine::OpResult) {
        self.0.inc(1);
    }
}

pub async fn run(args: SyncArgs) -> Result<(), CliError> {
    let config = load_config(&args.config)?;
    let store = open_store(&config).await?;
    // The apps and targets created through the admin API are synced as the service syncs
    // them.
    let config = with_stored_entries(config, &store).await?;
    let apps = select_apps(&config, args.app.as_deref())?;
    if let (Some(user), [app]) = (&args.user, apps.as_slice()) {
        return sync_one_user(&args, &config, app, user, &store).await;
    }
    let mut reports: Vec<RunReport> = Vec::new();
    for app in &apps {
        let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(app.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        let progress: Arc<dyn Progress> = match &bar {
            Some(b) => Arc::new(Bar(b.clone())),
            None => Arc::new(Quiet),
        };
        let report = idsync_runner::sync_app(
            &config,
            app,
            &store,
            idsync_runner::RunOptions {
                trigger: Trigger::Manual,
                dry_run: args.dry_run,
                full_read: args.full_read,
                wait: args.wait,
            },
            progress,
        )
        .await
        .map_err(|e| match e {
            idsync_runner::RunError::Busy(busy) => CliError::Busy(busy.to_string()),
            e => CliError::Failed(anyhow::Error::new(e)),
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if !args.json {
            output::print_run(&report);
        }
        reports.push(report);
    }
    if args.json {
        let mut runs = Vec::new();
        for report in &reports {
            let mut run = serde_json::to_value(report)
                .map_err(|e| CliError::Failed(anyhow::Error::new(e)))?;
            // Where each problem is in the file, as config errors say it.
            if let Some(located) = located_problems(&args.config, report) {
                run["config_problems"] = located
                    .problems()
                    .iter()
                    .map(|p| output::problem_json(&args.config, p))
                    .collect();
            }
            runs.push(run);
        }
        let doc = match <[_; 1]>::try_from(runs) {
            Ok([run]) => run,
            Err(runs) => serde_json::json!({ "runs": runs }),
        };
        outln!("{doc:#}");
    }
    exit_for(&args.config, &reports)
}

/// The run's config problems (its source read failed because the config names what the
/// source lacks), placed in the config file.
fn located_problems(config: &Path, report: &RunReport) -> Option<idsync_config::ConfigError> {
    if report.config_problems.is_empty() {
        return None;
    }
    let problems = report
        .config_problems
        .iter()
        .map(|p| idsync_config::Problem::new(&p.field, &p.message))
        .collect();
    Some(idsync_config::locate(config, problems))
}

/// The worst outcome decides the exit code: a config that names what the source lacks (2,
/// with each problem at its line of `config`, as any config error), over failed (1), over held
/// (3), over done (0). Runs are recorded (failed) in the history either way.
pub fn exit_for(config: &Path, reports: &[RunReport]) -> Result<(), CliError> {
    let located: Vec<String> = reports
        .iter()
        .filter_map(|r| located_problems(config, r))
        .map(|e| e.to_string())
        .collect();
    if !located.is_empty() {
        // Other runs that failed for other reasons are named too: exit 2 is the fix to make
        // first, not the only one.
        let others = reports
            .iter()
            .filter(|r| r.config_problems.is_empty())
            .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::Partial))
            .map(failed_line);
        let lines: Vec<String> = located.into_iter().chain(others).collect();
        return Err(CliError::Usage(lines.join("\n")));
    }
    if reports
        .iter()
        .any(|r| matches!(r.status, RunStatus::Failed | RunStatus::Partial))
    {
        let failed: Vec<String> = reports
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::Partial))
            .map(failed_line)
            .collect();
        return Err(CliError::Failed(anyhow::anyhow!("{}", failed.join("\n"))));
    }
    if let Some(held) = reports.iter().find(|r| r.status == RunStatus::Held) {
        return Err(CliError::Held(format!(
            "app {:?}: run {} held by the mass-change guard: {}",
            held.app,
            held.run_id,
            held.hold
                .as_ref()
                .map(|h| h.reason.as_str())
                .unwrap_or("over the threshold")
        )));
    }
    Ok(())
}

fn failed_line(r: &RunReport) -> String {
    format!(
        "app {:?}: run {} {}{}",
        r.app,
        r.run_id,
        r.status.as_str(),
        r.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )
}

/// `idsync sync --app A --user X`: the sign-in sync of one user.
async fn sync_one_user(
    args: &SyncArgs,
    config: &idsync_config::Config,
    app: &str,
    user: &str,
    store: &idsync_store::Store,
) -> Result<(), CliError> {
    let app_config = config
        .app(app)
        .ok_or_else(|| CliError::Usage(format!("there is no app named {app:?} in the config")))?;
    let mut options = idsync_runner::UserSyncOptions::for_app(app_config);
    options.dry_run = args.dry_run;
    if args.wait {
        // As long as a run may take: a day.
        options.wait = std::time::Duration::from_secs(24 * 60 * 60);
    }
    let report = idsync_runner::sync_user(config, app, user, store, options)
        .await
        .map_err(|e| match e {
            idsync_runner::RunError::Busy(busy) => CliError::Busy(busy.to_string()),
            e => CliError::Failed(anyhow::Error::new(e)),
        })?;
    if args.json {
        let doc =
            serde_json::to_value(&report).map_err(|e| CliError::Failed(anyhow::Error::new(e)))?;
        outln!("{doc:#}");
    } else {
        output::print_user_sync(&report);
    }
    match &report.run {
        Some(run) => exit_for(&args.config, std::slice::from_ref(run)),
        None => Ok(()),
    }
}
