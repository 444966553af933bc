//! `idsync history` and `idsync approve`.

use std::path::PathBuf;

use clap::Args;

use crate::exit::CliError;
use crate::output;
use crate::store::{load_config, open_store, select_apps, with_stored_entries};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this app's runs.
    #[arg(long)]
    pub app: Option<String>,
    /// One run in detail, with every operation.
    #[arg(long)]
    pub run: Option<i64>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::Failed(anyhow::Error::new(e))
}

pub async fn run(args: HistoryArgs) -> Result<(), CliError> {
    let config = load_config(&args.config)?;
    if let Some(app) = &args.app {
        select_apps(&config, Some(app))?;
    }
    let store = open_store(&config).await?;
    if let Some(id) = args.run {
        let run = store.run(id).await.map_err(failed)?.ok_or_else(|| {
            CliError::Usage(format!("there is no run {id}; see `idsync history`"))
        })?;
        let operations = store.operations(id).await.map_err(failed)?;
        // A run held by the guard applied nothing; its plan is what the admin reviews.
        let held_plan = store.held_plan(id).await.map_err(failed)?;
        if args.json {
            let mut doc = serde_json::json!({ "run": run, "operations": operations });
            if let Some(plan) = held_plan {
                doc["plan"] = plan;
            }
            outln!("{doc:#}");
        } else {
            output::print_run_record(&run, &operations);
            if let Some(plan) = &held_plan {
                output::print_held_plan(plan);
            }
        }
        return Ok(());
    }
    let runs = store
        .runs(args.app.as_deref(), args.limit)
        .await
        .map_err(failed)?;
    if args.json {
        let doc = serde_json::json!({ "runs": runs });
        outln!("{doc:#}");
    } else {
        output::print_history(&runs);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The held run to approve (see `idsync history`).
    pub run_id: i64,
}

pub async fn approve(args: ApproveArgs) -> Result<(), CliError> {
    let config = load_config(&args.config)?;
    let store = open_store(&config).await?;
    // A run of an app created through the admin API is approved with that app's guard.
    let config = with_stored_entries(config, &store).await?;
    let run = store
        .run(args.run_id)
        .await
        .map_err(failed)?
        .ok_or_else(|| CliError::Usage(format!("there is no run {}", args.run_id)))?;
    let guard = config
        .apps
        .iter()
        .find(|a| a.name == run.app)
        .map(|a| a.guard)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "run {} belongs to app {:?}, which is no longer in the config",
                run.id, run.app
            ))
        })?;
    store
        .approve_run_within(run.id, guard.approval_expires_minutes)
        .await
        .map_err(|e| match e {
            idsync_store::StoreError::NotApprovable { .. } => CliError::Usage(e.to_string()),
            e => failed(e),
        })?;
    eprintln!(
        "approved run {}: app {:?} may now deactivate or delete the {} account(s) and remove the memberships its plan named, and no others; syncing it",
        run.id, run.app, run.deprovisions
    );
    // The approved run is planned afresh, so that what is applied matches the source and the
    // targets as they are now; the guard lets it through if it stays within what was approved.
    let report = idsync_runner::sync_app(
        &config,
        &run.app,
        &store,
        idsync_runner::RunOptions {
            trigger: idsync_runner::Trigger::Approval,
            dry_run: false,
            full_read: false,
            // A run of the app in progress finishes first; this one then applies the approval.
            wait: true,
        },
        std::sync::Arc::new(idsync_runner::Quiet),
    )
    .await
    .map_err(failed)?;
    output::print_run(&report);
    crate::sync::exit_for(&args.config, &[report])
}
