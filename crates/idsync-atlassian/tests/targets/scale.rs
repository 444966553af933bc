//! Timing of full-state reads at scale, against the simulator with a fixed per-request
//! latency. Not run by default (it prints figures and asserts only that the reads agree):
//!
//! ```sh
//! cargo test --release -p idsync-atlassian --test targets scale -- --ignored --nocapture
//! ```
//! `IDSYNC_SCALE=users,groups,memberships` (default 10000,2000,50000) and
//! `IDSYNC_SCALE_LATENCY_MS` (default 20) change the size and the latency.

use std::time::{Duration, Instant};

use atlassian_sim::{Product, SimUser};
use idsync_model::TargetKind;

use crate::common::*;

fn sizes() -> (usize, usize, usize) {
    let numbers: Vec<usize> = std::env::var("IDSYNC_SCALE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    match numbers.as_slice() {
        [u, g, m] => (*u, *g, *m),
        _ => (10_000, 2_000, 50_000),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "timing at scale; run by hand in release"]
async fn scale_read_state() {
    let (users, groups, memberships) = sizes();
    let latency: u64 = std::env::var("IDSYNC_SCALE_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let sim = start().await;
    for (product, kind) in [
        (Product::Jira, TargetKind::JiraDc),
        (Product::Confluence, TargetKind::ConfluenceDc),
        (Product::Bitbucket, TargetKind::BitbucketDc),
    ] {
        for u in 0..users {
            sim.seed_user(product, SimUser::new(&format!("user{u:06}")));
        }
        for g in 0..groups {
            sim.seed_group(product, &format!("group{g:05}"));
        }
        // Skewed sizes like a real tenant: a few large groups, many small ones.
        for m in 0..memberships {
            let g = (m * m / memberships.max(1)) % groups.max(1);
            let u = (m * 7919) % users.max(1);
            sim.seed_membership(product, &format!("group{g:05}"), &format!("user{u:06}"));
        }
        let mut config = config(&sim, kind);
        config.concurrency = 16;
        let target = build(&config);
        sim.kit().set_latency(Duration::from_millis(latency));
        sim.kit().reset_counters();
        let started = Instant::now();
        let state = target.read_state(&[]).await.expect("read state");
        let took = started.elapsed();
        sim.kit().set_latency(Duration::ZERO);
        let requests = target.request_counts();
        println!(
            "{kind}: {} users, {} groups, {} memberships read in {:.2}s with {} requests ({latency} ms latency, concurrency 16)",
            state.users.len(),
            state.groups.len(),
            state.memberships.values().map(|m| m.len()).sum::<usize>(),
            took.as_secs_f64(),
            requests.values().sum::<u64>(),
        );
        for (k, v) in &requests {
            println!("    {v:>8}  {k}");
        }
        assert_eq!(state.users.len(), users);
    }
}
