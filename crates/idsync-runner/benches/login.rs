//! Sign-in sync benchmark: a generated tenant synced in full into Jira, Confluence and Bitbucket
//! (atlassian-sim) at no latency, then sign-ins of one user each through a kept
//! `UserSyncer` (as `idsync serve` keeps one per app) at a set per-request latency on both
//! simulators: users already synced (a quarter of them changed at the source), then users new to
//! the targets (created on each, with their groups). Prints latency percentiles and the requests
//! of one sign-in; asserts nothing about time.
//!
//! ```sh
//! cargo bench -p idsync-runner --bench login -- --users 100000 --sign-ins 200
//! ```
//! Flags: `--users N` (default 100000), `--groups N` (2000), `--memberships N` (5 per user),
//! `--latency-ms N` (20), `--sign-ins N` (200 per kind).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use graph_sim::{GraphSim, NewUser, RunningGraphSim, TenantSpec};
use idsync_runner::{
    Quiet, RunOptions, RunStatus, UserOutcome, UserSyncOptions, UserSyncReport, UserSyncer,
};

struct Options {
    users: usize,
    groups: usize,
    memberships: Option<usize>,
    latency_ms: u64,
    sign_ins: usize,
}

fn options() -> Options {
    let mut o = Options {
        users: 100_000,
        groups: 2_000,
        memberships: None,
        latency_ms: 20,
        sign_ins: 200,
    };
    common::read_flags(|flag, value| {
        match flag {
            "--users" => o.users = value.count(),
            "--groups" => o.groups = value.count(),
            "--memberships" => o.memberships = Some(value.count()),
            "--latency-ms" => o.latency_ms = value.number(),
            "--sign-ins" => o.sign_ins = value.number().max(1) as usize,
            _ => return false,
        }
        true
    });
    o
}

fn main() -> anyhow::Result<()> {
    common::block_on(bench(options()))
}

/// The value at `p` (0–100) of sorted `samples`, nearest rank.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_latencies(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label}: {} sign-ins · p50 {:.0} ms · p90 {:.0} ms · p99 {:.0} ms · max {:.0} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

fn print_requests(label: &str, report: &UserSyncReport) {
    let total: u64 = report.requests.values().sum();
    println!("  requests of one {label} sign-in: {total}");
    for (kind, n) in &report.requests {
        println!("    {n:>4}  {kind}");
    }
    if let Some(run) = &report.run {
        for t in &run.targets {
            let ops: Vec<String> = t
                .operations
                .iter()
                .map(|o| format!("{} {:?}", o.planned.op.kind(), o.status))
                .collect();
            println!("    {}: {}", t.target, ops.join(", "));
        }
    }
}

async fn sign_in(
    syncer: &UserSyncer,
    store: &idsync_store::Store,
    user: &str,
) -> anyhow::Result<(Duration, UserSyncReport)> {
    let options = UserSyncOptions {
        wait: Duration::from_secs(5),
        dry_run: false,
    };
    let t = Instant::now();
    let report = syncer.sync(store, user, options).await?;
    let took = t.elapsed();
    match &report.run {
        Some(run) if run.status == RunStatus::Done => {}
        Some(run) => anyhow::bail!(
            "sign-in of {user} ended {}: {:?}",
            run.status.as_str(),
            run.error
        ),
        None => anyhow::bail!("sign-in of {user}: {:?}", report.outcome),
    }
    Ok((took, report))
}

async fn bench(o: Options) -> anyhow::Result<()> {
    let spec = TenantSpec {
        memberships: o.memberships.unwrap_or(o.users.saturating_mul(5)),
        // Disabled users and guests without mail sign in too, but do not make the figures.
        disabled_ratio: 0.0,
        ..TenantSpec::sized(o.users, o.groups)
    };
    println!(
        "sign-in sync benchmark: {} users, {} groups, ~{} memberships → jira, confluence, bitbucket; latency {} ms",
        o.users, o.groups, spec.memberships, o.latency_ms
    );
    let started = Instant::now();
    let graph = GraphSim::new(&spec).start().await?;
    println!(
        "tenant generated in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // The folder goes with `_dir`, at the end.
    let (atlassian, _dir, config, store) = common::start_targets(
        &graph,
        &["jira", "confluence", "bitbucket"],
        16,
        "default_groups_new_users = [\"newcomers\"]\n",
    )
    .await?;

    // The full sync the sign-ins come after, at no latency.
    let t = Instant::now();
    let first = common::sync(&config, &store, RunOptions::manual(), Quiet).await?;
    let created = first
        .totals
        .get(&idsync_model::OperationKind::CreateUser)
        .map_or(0, |t| t.done);
    println!(
        "full sync: {} in {:.1}s ({created} accounts created, all targets together)",
        first.status.as_str(),
        t.elapsed().as_secs_f64()
    );

    let who = sign_ins(&graph, &spec, o.sign_ins)?;
    let latency = Duration::from_millis(o.latency_ms);
    graph.kit().set_latency(latency);
    atlassian.kit().set_latency(latency);
    let syncer = UserSyncer::new(&config, "bench")?;
    // The service's first sign-in also signs in to Graph and reads the products' versions:
    // kept apart from the figures, as a running service has done both long before.
    let (took, _) = sign_in(&syncer, &store, &who.warm_up).await?;
    println!(
        "\nfirst sign-in of the service (token and product versions too): {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    println!("\nsign-ins at {} ms per request", o.latency_ms);
    measure(&syncer, &store, &who).await?;
    next_run(&config, &store).await
}

/// Who signs in: users already synced (a quarter of them changed at the source since), users
/// new to the targets, and one to warm the service up with.
struct SignIns {
    warm_up: String,
    returning: Vec<String>,
    new_users: Vec<String>,
}

/// Picks the users already synced, enabled, spread over the tenant, and changes a quarter of
/// them; adds `count` users new to the targets, each in three groups.
fn sign_ins(graph: &RunningGraphSim, spec: &TenantSpec, count: usize) -> anyhow::Result<SignIns> {
    let snapshot = graph.snapshot();
    let groups = graph.group_ids();
    let synced: Vec<String> = graph
        .user_ids()
        .into_iter()
        .filter(|id| {
            snapshot.users.get(id).is_some_and(|u| {
                u["accountEnabled"] == true
                    && !u["userPrincipalName"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("#EXT#")
            })
        })
        .collect();
    let step = (synced.len() / count.max(1)).max(1);
    let returning: Vec<String> = synced.iter().step_by(step).take(count).cloned().collect();
    for (n, id) in returning.iter().enumerate() {
        if n % 4 == 0 {
            graph.update_user(
                id,
                serde_json::json!({ "displayName": format!("Changed {n}") }),
            )?;
        }
    }
    let mut new_users = Vec::new();
    for n in 0..count {
        let upn = format!("signin.{n}@{}", spec.tenant_domain);
        let id = graph.add_user(NewUser {
            mail: Some(upn.clone()),
            ..NewUser::new(&upn, format!("Sign In {n}"))
        })?;
        for k in 0..3 {
            if let Some(g) = groups.get((n * 7 + k * 131) % groups.len().max(1)) {
                graph.add_member(g, &id)?;
            }
        }
        new_users.push(id);
    }
    let warm_up = synced
        .iter()
        .find(|id| !returning.contains(id))
        .cloned()
        .unwrap_or_default();
    Ok(SignIns {
        warm_up,
        returning,
        new_users,
    })
}

/// Signs every user in, one after the other, and prints the latencies by kind, then the
/// requests of one sign-in of each kind.
async fn measure(
    syncer: &UserSyncer,
    store: &idsync_store::Store,
    who: &SignIns,
) -> anyhow::Result<()> {
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    let mut example: BTreeMap<&str, UserSyncReport> = BTreeMap::new();
    for (n, id) in who.returning.iter().enumerate() {
        let (took, report) = sign_in(syncer, store, id).await?;
        assert_eq!(report.outcome, UserOutcome::Synced);
        if n % 4 == 0 {
            changed.push(took);
            example.entry("changed").or_insert(report);
        } else {
            unchanged.push(took);
            example.entry("unchanged").or_insert(report);
        }
    }
    let mut fresh = Vec::new();
    for id in &who.new_users {
        let (took, report) = sign_in(syncer, store, id).await?;
        fresh.push(took);
        example.entry("new").or_insert(report);
    }
    let every: Vec<Duration> = [&changed, &unchanged, &fresh]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    print_latencies("every sign-in", every);
    print_latencies("synced users, all", [&unchanged[..], &changed[..]].concat());
    print_latencies("  of which unchanged", unchanged);
    print_latencies("  of which display name changed", changed);
    print_latencies("new users (created on 3 targets)", fresh);
    for (label, report) in &example {
        print_requests(label, report);
    }
    Ok(())
}

/// The sign-ins left what idsync knows of the targets usable: the next run plans from it.
async fn next_run(
    config: &idsync_config::Config,
    store: &idsync_store::Store,
) -> anyhow::Result<()> {
    let next = common::sync(
        config,
        store,
        RunOptions {
            dry_run: true,
            ..RunOptions::manual()
        },
        Quiet,
    )
    .await?;
    for t in &next.targets {
        println!(
            "next run: {} planned from {:?}, {} operation(s)",
            t.target,
            t.state,
            t.operations.len()
        );
    }
    Ok(())
}
