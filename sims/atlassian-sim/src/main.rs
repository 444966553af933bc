//! `atlassian-sim`: serves the Jira / Confluence / Bitbucket / SCIM simulator on loopback until
//! Ctrl-C, printing each product's base URL and credentials.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use atlassian_sim::{AtlassianSim, Product, SimConfig, SimUser};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Simulated Jira DC, Confluence DC, Bitbucket DC and Atlassian SCIM on one port")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8082)]
    port: u16,
    /// Latency added to every product request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of product requests answered with a random transient fault (429, 500, 502, 503,
    /// dropped connection); see `PUT /_sim/chaos` for finer control.
    #[arg(long, default_value_t = 0.0)]
    chaos_rate: f64,
    /// Seed of the random faults.
    #[arg(long, default_value_t = 0)]
    chaos_seed: u64,
    /// Users seeded into every product (user0001 ... userNNNN).
    #[arg(long, default_value_t = 0)]
    seed_users: usize,
    /// Run a product as a chosen version, e.g. `--version confluence=8.3.0` (repeatable): it
    /// reports that version and serves only the resources that version has.
    #[arg(long = "version", value_name = "PRODUCT=VERSION")]
    versions: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = SimConfig::default();
    let sim = AtlassianSim::new(config.clone());
    sim.kit()
        .set_latency(Duration::from_millis(args.latency_ms));
    if args.chaos_rate > 0.0 {
        sim.kit().set_chaos(sim_kit::ChaosConfig::transient(
            args.chaos_rate,
            args.chaos_seed,
        ));
    }
    for setting in &args.versions {
        let (slug, version) = setting.split_once('=').with_context(|| {
            format!("--version {setting}: give PRODUCT=VERSION, e.g. confluence=8.3.0")
        })?;
        let product = Product::from_slug(slug).with_context(|| {
            format!("--version {setting}: no product {slug:?} (jira, confluence, bitbucket)")
        })?;
        atlassian_sim::versions::parse(version).with_context(|| {
            format!("--version {setting}: {version:?} is not a version such as 8.3.0")
        })?;
        sim.set_version(product, version);
    }
    for i in 1..=args.seed_users {
        let name = format!("user{i:04}");
        for product in Product::ALL {
            let mut user = SimUser::new(&name);
            if product == Product::Scim {
                user.name = user.email.clone();
            }
            sim.seed_user(product, user);
        }
    }
    let running = sim
        .start_on(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    println!("atlassian-sim listening on {}", running.base_url);
    println!(
        "  jira        {}  (REST /rest/api/2)      Bearer {}  or Basic {}:{}",
        running.jira_url(),
        config.jira_token,
        config.admin_user,
        config.admin_password
    );
    println!(
        "  confluence  {}  (REST /rest/api)  Bearer {}  or Basic {}:{}",
        running.confluence_url(),
        config.confluence_token,
        config.admin_user,
        config.admin_password
    );
    println!(
        "  bitbucket   {}  (REST /rest/api/1.0)  Basic {}:{}  (Bearer {} only outside /admin/, \
         as in Bitbucket)",
        running.bitbucket_url(),
        config.admin_user,
        config.admin_password,
        config.bitbucket_token
    );
    println!(
        "  scim        {}  Bearer {}",
        running.scim_url(),
        config.scim_token
    );
    println!(
        "  no admin    Jira Bearer {}, Confluence Bearer {}, Bitbucket Basic {}:{}  (refused \
         where administrator rights are needed)",
        config.jira_plain_token,
        config.confluence_plain_token,
        config.bitbucket_plain_user,
        config.bitbucket_plain_password
    );
    println!("  control     {}/_sim/...", running.base_url);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.stop().await;
    Ok(())
}
