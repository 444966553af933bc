//! `idsync serve` and `idsync admin-token rotate`: idsync as a service that stays up, syncing
//! each app on its schedule and answering the admin API, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;
use crate::store::{load_config, open_store};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line, with the run's app, trigger and id (and the target) on every
    /// line of a run: for log collectors.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Where the admin API, /healthz, /readyz and /metrics listen. Loopback unless you choose
    /// otherwise: give --tls-cert and --tls-key (or put a TLS-terminating proxy in front)
    /// before opening it to a network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long a stop waits for runs in progress to finish, in seconds.
    #[arg(long, default_value_t = 120)]
    pub shutdown_grace_seconds: u64,
    /// Serve HTTPS with this certificate (PEM: the server's certificate, then its chain).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = load_config(&args.config)?;
    let store = open_store(&config).await?;
    let running = idsync_server::start(
        Arc::new(config),
        Some(args.config.clone()),
        store,
        idsync_server::ServeOptions {
            listen: args.listen,
            shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_seconds),
            tls: args
                .tls_cert
                .clone()
                .zip(args.tls_key.clone())
                .map(|(cert, key)| idsync_server::tls::TlsFiles { cert, key }),
            ..idsync_server::ServeOptions::default()
        },
    )
    .await
    .map_err(CliError::Failed)?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    print_endpoints(scheme, running.addr, running.new_admin_token.as_deref());
    wait_for_stop().await;
    eprintln!("stopping: letting the runs in progress finish");
    if running.shutdown().await {
        Ok(())
    } else {
        // Not a failure of the stop itself: the next start marks those runs interrupted and
        // its first run takes over.
        eprintln!("some runs were still going when the grace period ended");
        Ok(())
    }
}

/// The API's address and, on the first start, the admin token, each on a line of its own so
/// that a person can copy them and a script can pick them out.
pub fn print_endpoints(scheme: &str, addr: SocketAddr, new_token: Option<&str>) {
    outln!("api: {scheme}://{addr}/api/v1");
    outln!("metrics: {scheme}://{addr}/metrics");
    if let Some(token) = new_token {
        outln!("admin token: {token}");
        outln!("(shown once and not kept; `idsync admin-token rotate` makes a new one)");
    }
}

/// Resolves on Ctrl-C or SIGTERM (what `systemctl stop` and `docker stop` send).
pub async fn wait_for_stop() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[derive(Debug, Args)]
pub struct AdminTokenArgs {
    #[command(subcommand)]
    pub action: AdminTokenAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenAction {
    /// Make a new admin token; the old one stops working at once (a running service too).
    Rotate {
        /// The configuration file (its store keeps the token's hash).
        #[arg(long, short)]
        config: PathBuf,
    },
}

pub async fn admin_token(args: AdminTokenArgs) -> Result<(), CliError> {
    match args.action {
        AdminTokenAction::Rotate { config } => {
            let config = load_config(&config)?;
            let store = open_store(&config).await?;
            let token = idsync_server::auth::rotate(&store)
                .await
                .map_err(CliError::Failed)?;
            outln!("admin token: {token}");
            eprintln!("the previous admin token no longer works; this one is not kept anywhere");
            Ok(())
        }
    }
}
