//! Reads a generated 100k-user / 2k-group / 500k-membership tenant from graph-sim and prints
//! requests by kind, wall time and peak memory. Run with
//! `cargo bench -p idsync-entra --bench read` (sizes via `BENCH_USERS`, `BENCH_GROUPS`,
//! `BENCH_MEMBERSHIPS`, `BENCH_LATENCY_MS`).
//!
//! The simulator runs in a child process (this same executable, started with
//! `IDSYNC_BENCH_ROLE=sim`), so that the peak RSS printed is the client's alone.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graph_sim::{GraphSim, TenantSpec};
use idsync_entra::{EntraSource, SourceRead};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    if std::env::var("IDSYNC_BENCH_ROLE").as_deref() == Ok("sim") {
        serve_sim();
        return;
    }
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// Child: generate the tenant, serve it, print credentials as one JSON line, wait for stdin EOF.
fn serve_sim() {
    let users = env_usize("BENCH_USERS", 100_000);
    let groups = env_usize("BENCH_GROUPS", 2_000);
    let spec = TenantSpec {
        memberships: env_usize("BENCH_MEMBERSHIPS", 500_000),
        ..TenantSpec::sized(users, groups)
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sim: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let started = Instant::now();
        let sim = GraphSim::new(&spec);
        let generated = started.elapsed();
        let latency = env_usize("BENCH_LATENCY_MS", 0);
        sim.kit().set_latency(Duration::from_millis(latency as u64));
        let running = match sim.start().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sim: {e}");
                return;
            }
        };
        let c = running.credentials();
        let truth = running.snapshot();
        let memberships: usize = truth
            .groups
            .values()
            .map(|g| {
                g.members
                    .iter()
                    .filter(|m| truth.users.contains_key(*m))
                    .count()
            })
            .sum();
        let line = serde_json::json!({
            "base_url": running.base_url,
            "tenant_id": c.tenant_id,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "users": truth.users.len(),
            "groups": truth.groups.len(),
            "memberships": memberships,
            "generated_ms": generated.as_millis() as u64,
        });
        drop(truth);
        println!("{line}");
        let _ = std::io::stdout().flush();
        // Serve until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        })
        .await;
    });
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .env("IDSYNC_BENCH_ROLE", "sim")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let info: serde_json::Value = serde_json::from_str(&line)?;
    let text = format!(
        "[[apps]]\nname = \"bench\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = '{}'\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n",
        info["tenant_id"].as_str().unwrap_or_default(),
        info["client_id"].as_str().unwrap_or_default(),
        info["client_secret"].as_str().unwrap_or_default(),
        info["base_url"].as_str().unwrap_or_default(),
        info["base_url"].as_str().unwrap_or_default(),
    );
    let config =
        idsync_config::parse_with_env(&text, Path::new("bench.toml"), &idsync_config::Env::new())?;
    let app = config.apps.first().ok_or("no app")?;
    println!(
        "tenant: {} users, {} groups, {} direct user memberships (generated in {} ms, sim in a child process)",
        info["users"], info["groups"], info["memberships"], info["generated_ms"]
    );
    let baseline = vm_kib("VmRSS:");
    let attributes: BTreeSet<String> = ["mail", "displayName", "userPrincipalName", "employeeId"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let source = EntraSource::new(app, &attributes)?;
        let full = timed("full read", source.read(None)).await?;
        let peak_full = vm_kib("VmHWM:");
        let held = vm_kib("VmRSS:");
        // The state moves into the next read, as the engine's stored state would.
        let state = full.state;
        drop(full.snapshot);
        reset_peak();
        let delta = timed("delta read, no changes", source.read(Some(state))).await?;
        let peak_delta = vm_kib("VmHWM:");
        drop(delta);
        Ok::<_, idsync_entra::EntraError>((peak_full, held, peak_delta))
    });
    if let Some(stdin) = child.stdin.take() {
        drop(stdin);
    }
    let _ = child.wait();
    let (peak_full, held, peak_delta) = result?;
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "memory: RSS before the reads {} MiB; full read: peak RSS (VmHWM) {} MiB, RSS holding \
         its state + snapshot {} MiB; delta read: peak RSS {} MiB",
        mib(baseline),
        mib(peak_full),
        mib(held),
        mib(peak_delta),
    );
    Ok(())
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to /proc/self/clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn timed(
    what: &str,
    read: impl std::future::Future<Output = Result<SourceRead, idsync_entra::EntraError>>,
) -> Result<SourceRead, idsync_entra::EntraError> {
    let started = Instant::now();
    let read = read.await?;
    let s = &read.stats;
    println!(
        "{what}: {:.2} s wall, {} requests ({}); {} users in scope ({} enabled), {} groups, {} memberships, {} nested group memberships, ignored {:?}",
        started.elapsed().as_secs_f64(),
        s.requests_total,
        s.requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.users_in_scope,
        s.enabled,
        s.groups,
        s.memberships,
        s.nested_group_memberships,
        s.ignored_members,
    );
    Ok(read)
}

/// A `/proc/self/status` field in KiB (Linux only).
fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
