//! `graph-sim`: serves a simulated Entra tenant (token endpoint + Graph v1.0) until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use graph_sim::{GraphSim, TenantSpec};

#[derive(Parser, Debug)]
#[command(
    name = "graph-sim",
    about = "Microsoft Graph v1.0 + token endpoint simulator"
)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Address to bind instead of 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// Total direct user memberships (default: 5 per user).
    #[arg(long)]
    memberships: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Latency added to every product request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of product requests answered with a random transient fault (429, 500, 502, 503,
    /// dropped connection); see `PUT /_sim/chaos` for finer control.
    #[arg(long, default_value_t = 0.0)]
    chaos_rate: f64,
    /// Seed of the random faults.
    #[arg(long, default_value_t = 0)]
    chaos_seed: u64,
    /// Load the tenant from this JSON file instead of generating one.
    #[arg(long)]
    tenant_json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let sim = match &args.tenant_json {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            GraphSim::from_json(&text).with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            let mut spec = TenantSpec::sized(args.users, args.groups);
            spec.seed = args.seed;
            if let Some(m) = args.memberships {
                spec.memberships = m;
            }
            GraphSim::new(&spec)
        }
    };
    sim.kit()
        .set_latency(Duration::from_millis(args.latency_ms));
    if args.chaos_rate > 0.0 {
        sim.kit().set_chaos(sim_kit::ChaosConfig::transient(
            args.chaos_rate,
            args.chaos_seed,
        ));
    }
    let running = sim
        .start_on(SocketAddr::new(args.bind, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind, args.port))?;
    let creds = running.credentials();
    let url = &running.base_url;
    println!("graph-sim listening on {url}");
    println!("tenant id:     {}", creds.tenant_id);
    println!("tenant domain: {}", creds.tenant_domain);
    println!("client id:     {}", creds.client_id);
    println!("client secret: {}", creds.client_secret);
    println!("token url:     {}", running.token_url());
    println!();
    println!("# idsync config snippet");
    println!("[[apps]]");
    println!("name = \"entra-sim\"");
    println!("kind = \"entra\"");
    println!("tenant_id = \"{}\"", creds.tenant_id);
    println!("client_id = \"{}\"", creds.client_id);
    println!("client_secret = \"{}\"", creds.client_secret);
    println!("authority_url = \"{url}\"");
    println!("graph_url = \"{url}\"");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.stop().await;
    Ok(())
}
