//! Sync benchmark: a generated tenant read through graph-sim and synced into each Data Center
//! target of atlassian-sim over loopback HTTP — first sync, then an incremental sync after 1%
//! churn at a set per-request latency. Prints figures; asserts nothing about time.
//!
//! ```sh
//! cargo bench -p idsync-runner --bench sync -- --users 10000 --groups 2000 --memberships 50000
//! cargo bench -p idsync-runner --bench sync -- --users 100000 --groups 2000 --memberships 500000
//! ```
//! Flags: `--users N`, `--groups N`, `--memberships N`, `--latency-ms N` (incremental sync,
//! default 20), `--first-latency-ms N` (first sync, default 0), `--churn-percent P` (default 1),
//! `--targets jira,confluence,bitbucket`, `--concurrency N` (default 16).
//!
//! The planner is also timed on its own (pure function, same inputs as the incremental run)
//! with a counting allocator, so its peak memory is not mixed up with the simulators', which run
//! in this same process.

// A global allocator is the only way to measure the planner's own peak heap here, and
// implementing one takes `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use graph_sim::{GraphSim, TenantSpec};
use idsync_runner::{RunOptions, RunReport};

/// Counts live heap bytes and their peak, so the planner's memory can be measured alone.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Options {
    users: usize,
    groups: usize,
    memberships: usize,
    latency_ms: u64,
    first_latency_ms: u64,
    churn_percent: f64,
    targets: Vec<String>,
    concurrency: usize,
}

fn options() -> Options {
    let mut o = Options {
        users: 10_000,
        groups: 2_000,
        memberships: 50_000,
        latency_ms: 20,
        first_latency_ms: 0,
        churn_percent: 1.0,
        targets: vec!["jira".into(), "confluence".into(), "bitbucket".into()],
        concurrency: 16,
    };
    common::read_flags(|flag, value| {
        match flag {
            "--users" => o.users = value.count(),
            "--groups" => o.groups = value.count(),
            "--memberships" => o.memberships = value.count(),
            "--latency-ms" => o.latency_ms = value.number(),
            "--first-latency-ms" => o.first_latency_ms = value.number(),
            "--churn-percent" => o.churn_percent = value.0.parse().unwrap_or(1.0),
            "--targets" => o.targets = value.0.split(',').map(str::to_owned).collect(),
            "--concurrency" => o.concurrency = value.number().max(1) as usize,
            _ => return false,
        }
        true
    });
    o
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn print_counters(label: &str, counters: &BTreeMap<String, u64>) {
    let total = counters.get("total").copied().unwrap_or(0);
    println!("  {label} requests: {total}");
    for (k, v) in counters {
        if k != "total" {
            println!("    {v:>8}  {k}");
        }
    }
}

fn print_report(report: &RunReport, wall: Duration) {
    println!(
        "  status {} · wall {:.2}s · planner {} ms (all targets) · source mode {}",
        report.status.as_str(),
        wall.as_secs_f64(),
        report.planner_ms,
        report
            .source
            .get("mode")
            .and_then(|m| m.as_str())
            .unwrap_or("?")
    );
    let mut ops = 0;
    for (kind, t) in &report.totals {
        println!(
            "    {:>8} {kind} (done {}, already {}, failed {}, skipped {})",
            t.planned, t.done, t.already_done, t.failed, t.skipped
        );
        ops += t.planned;
    }
    println!("  operations: {ops}");
    for t in &report.targets {
        if let Some(e) = &t.error {
            println!("  target {} failed: {e}", t.target);
        }
        println!("  target {} state: {:?}", t.target, t.state);
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}

/// Prints each phase of a run with the time it started at, to see where a run's time goes.
struct Phases(Instant);

impl idsync_runner::Progress for Phases {
    fn phase(&self, what: &str) {
        println!("  {:>7.2}s {what}", self.0.elapsed().as_secs_f64());
    }
}

fn main() -> anyhow::Result<()> {
    common::block_on(bench(options()))
}

async fn bench(o: Options) -> anyhow::Result<()> {
    println!(
        "sync benchmark: {} users, {} groups, ~{} memberships → {} (concurrency {})",
        o.users,
        o.groups,
        o.memberships,
        o.targets.join(", "),
        o.concurrency
    );
    let started = Instant::now();
    let spec = TenantSpec {
        memberships: o.memberships,
        ..TenantSpec::sized(o.users, o.groups)
    };
    let graph = GraphSim::new(&spec).start().await?;
    println!(
        "tenant generated in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let targets: Vec<&str> = o.targets.iter().map(String::as_str).collect();
    // The folder goes with `_dir`, at the end.
    let (atlassian, _dir, config, store) =
        common::start_targets(&graph, &targets, o.concurrency, "").await?;

    // First sync.
    graph
        .kit()
        .set_latency(Duration::from_millis(o.first_latency_ms));
    atlassian
        .kit()
        .set_latency(Duration::from_millis(o.first_latency_ms));
    graph.kit().reset_counters();
    atlassian.kit().reset_counters();
    println!("\nfirst sync (latency {} ms)", o.first_latency_ms);
    let t = Instant::now();
    let first = common::sync(
        &config,
        &store,
        RunOptions::manual(),
        Phases(Instant::now()),
    )
    .await?;
    print_report(&first, t.elapsed());
    print_counters("graph", &graph.kit().counters());
    print_counters("atlassian", &atlassian.kit().counters());
    println!(
        "  peak RSS so far (idsync and both simulators): {:.0} MiB",
        peak_rss_mib()
    );

    // Churn: a third renamed, a third disabled, a third moved into another group.
    let ids = graph.user_ids();
    let groups = graph.group_ids();
    let churn = ((ids.len() as f64) * o.churn_percent / 100.0).round() as usize;
    for (n, id) in ids
        .iter()
        .step_by((ids.len() / churn.max(1)).max(1))
        .take(churn)
        .enumerate()
    {
        match n % 3 {
            0 => graph.update_user(
                id,
                serde_json::json!({ "userPrincipalName": format!("churned.{n}@{}", spec.tenant_domain) }),
            )?,
            1 => graph.disable_user(id)?,
            _ => {
                if let Some(g) = groups.get(n % groups.len().max(1)) {
                    graph.add_member(g, id)?;
                }
            }
        }
    }
    graph.kit().set_latency(Duration::from_millis(o.latency_ms));
    atlassian
        .kit()
        .set_latency(Duration::from_millis(o.latency_ms));
    graph.kit().reset_counters();
    atlassian.kit().reset_counters();
    println!(
        "\nincremental sync after {churn} changed users ({}%), latency {} ms",
        o.churn_percent, o.latency_ms
    );
    let t = Instant::now();
    let second = common::sync(
        &config,
        &store,
        RunOptions::manual(),
        Phases(Instant::now()),
    )
    .await?;
    print_report(&second, t.elapsed());
    print_counters("graph", &graph.kit().counters());
    let target_counters = atlassian.kit().counters();
    print_counters("atlassian", &target_counters);
    let writes: u64 = target_counters
        .iter()
        .filter(|(k, _)| !k.starts_with("GET ") && k.as_str() != "total")
        .map(|(_, v)| v)
        .sum();
    let ops: usize = second.totals.values().map(|t| t.planned).sum();
    println!("  write requests {writes} for {ops} operations");
    println!(
        "  peak RSS (idsync and both simulators): {:.0} MiB",
        peak_rss_mib()
    );

    // The planner alone, on the same inputs as the incremental run.
    graph.kit().set_latency(Duration::ZERO);
    atlassian.kit().set_latency(Duration::ZERO);
    planner_alone(&config, &store).await?;
    Ok(())
}

async fn planner_alone(
    config: &idsync_config::Config,
    store: &idsync_store::Store,
) -> anyhow::Result<()> {
    let app = &config.apps[0];
    let users = idsync_engine::CompiledUserRules::compile(&app.users, "users")?;
    let groups = idsync_engine::CompiledGroupRules::compile(&app.groups, "groups")?;
    let state = idsync_entra::DirectoryState::unpack(
        &store
            .source_state(&app.name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no source state"))?,
    )?;
    let read = idsync_entra::EntraSource::new(app, &users.source_attributes())?
        .read(Some(state))
        .await?;
    println!(
        "\nplanner alone ({} users in scope)",
        read.snapshot.users.len()
    );
    for tc in &config.targets {
        let target = idsync_atlassian::build_target(tc)?;
        // What the incremental run left in the store is what the target holds.
        let known = store
            .known_target_state(&tc.name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no known state of {}", tc.name))?;
        let actual = idsync_engine::known_patch::unpack_known(&known.state, &known.patches)?;
        let links = store.links(&tc.name).await?;
        let managed = store.managed_memberships(&app.name, &tc.name).await?;
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let plan = idsync_engine::plan(&idsync_engine::PlanInput {
            app: &app.name,
            target: &tc.name,
            capabilities: target.capabilities(),
            snapshot: &read.snapshot,
            source_complete: true,
            actual: &actual,
            links: &links,
            managed_memberships: &managed,
            users: &users,
            groups: &groups,
            nested_groups: app.nested_groups,
        });
        let elapsed = t.elapsed();
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        println!(
            "  {}: {} operations planned in {:.0} ms, planner peak heap {:.1} MiB",
            tc.name,
            plan.operations.len(),
            elapsed.as_secs_f64() * 1000.0,
            peak as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
