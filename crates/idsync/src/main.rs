//! `idsync`: keeps Jira, Confluence and Bitbucket (Data Center and Cloud) in step with
//! Microsoft Entra ID.
//!
//! Exit codes (a contract scripts rely on): 0 done, 1 failed, 2 bad usage or config,
//! 3 held by a guard, 4 another run of the app is in progress.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// First: the other modules print with its `outln!`.
#[macro_use]
mod stdout;

mod check;
mod demo;
mod exit;
mod history;
mod output;
mod serve;
mod store;
mod sync;

#[derive(Debug, Parser)]
#[command(
    name = "idsync",
    version,
    about = "User and group sync from Microsoft Entra ID to Atlassian products"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start simulated Entra and Atlassian services, sync them, print a summary.
    Demo(demo::DemoArgs),
    /// Validate the config, sign in to the source and read it; print what is in scope.
    Check(CheckArgs),
    /// Read the source and the targets, plan, and apply (or only show, with --dry-run).
    Sync(sync::SyncArgs),
    /// List past runs, or show one with every operation.
    History(history::HistoryArgs),
    /// Approve a run held by the mass-change guard, and sync its app.
    Approve(history::ApproveArgs),
    /// Run as a service: sync each app on its schedule, serve the admin API and metrics.
    Serve(serve::ServeArgs),
    /// Manage the admin API's bearer token.
    AdminToken(serve::AdminTokenArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this app (default: every app in the file).
    #[arg(long)]
    pub app: Option<String>,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn main() -> ExitCode {
    // clap exits with 2 on bad usage, matching our contract.
    let cli = Cli::parse();
    // A service logs what it does (info); a command only what went wrong (warn).
    match &cli.command {
        Command::Serve(args) => init_logging("info", args.log_format),
        Command::Demo(args) if !args.once => init_logging("info", args.log_format),
        _ => init_logging("warn", serve::LogFormat::Text),
    }
    // A script that asked for JSON reads stdout: a bad config or usage, found before any
    // document was printed, comes there too as JSON (`check` prints its own).
    let json = match &cli.command {
        Command::Sync(args) => args.json,
        Command::History(args) => args.json,
        Command::Check(_)
        | Command::Demo(_)
        | Command::Approve(_)
        | Command::Serve(_)
        | Command::AdminToken(_) => false,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Sync(args) => sync::run(args).await,
            Command::History(args) => history::run(args).await,
            Command::Approve(args) => history::approve(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::AdminToken(args) => serve::admin_token(args).await,
        }
    });
    // A closed stdout (`| head`) is not a failure; any other write error is.
    let result = result.and_then(|()| match stdout::failure() {
        Some(e) => Err(exit::CliError::Failed(anyhow::anyhow!(
            "cannot write to stdout: {e}"
        ))),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // Only when no document is out yet: `sync` prints its runs before it finds that a
            // run's config names what the source lacks, and stdout holds one document.
            if json && matches!(error, exit::CliError::Usage(_)) && !stdout::printed() {
                let document = serde_json::json!({
                    "error": format!("{error:#}"),
                    "exit_code": error.exit_code(),
                });
                outln!("{document:#}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr (stdout is kept for `--json` documents); `RUST_LOG` tunes them.
fn init_logging(default_level: &str, format: serve::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Every span of the event (the run with its app, trigger and id; the target) goes on
        // the line, so that a log collector can filter one run or one target.
        serve::LogFormat::Json => logs
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        serve::LogFormat::Text => logs.with_ansi(colour_on_stderr()).init(),
    }
}

/// Colour codes only for a person at a terminal: in a log file, a pipe or a service's journal
/// they are noise. `NO_COLOR` (https://no-color.org) turns them off on a terminal too.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
