//! Random faults: 10% of the requests to Graph and to every target answered with a 429 (with
//! `Retry-After`), a 500, 502 or 503, or a connection dropped half way (before the request was
//! handled, or after: the change made but its answer lost), from a seeded RNG (sim-kit chaos).
//! Syncs are run until they converge, the source changes, syncs again until they converge;
//! then, faults off, a full read plans nothing and every target holds exactly what an identical
//! world without faults holds. Along the way no run may deprovision anyone the source did not
//! deprovision, and a run whose source read failed must plan nothing at all.

use std::collections::{BTreeMap, BTreeSet};

use graph_sim::sim_kit::{ChaosConfig, FaultKind as FaultKindG};
use graph_sim::{GraphSim, NewUser, RunningGraphSim, TenantSpec};
use idsync_config::Config;
use idsync_model::Operation;
use idsync_runner::{RunReport, RunStatus};

use crate::harness::*;
use atlassian_sim::FaultKind;

/// How many runs may it take to converge under faults.
const MAX_RUNS: usize = 8;

const TENANT_SEED: u64 = 0xFA17;
const CHAOS_SEED: u64 = 0xC4A0_5EED;

/// The default small tenant: 50 users (guests, disabled users, users without mail among them),
/// 10 groups, nesting, a duplicate group name.
fn spec() -> TenantSpec {
    TenantSpec {
        seed: TENANT_SEED,
        ..TenantSpec::default()
    }
}

/// Lower-case UPNs of the enabled users, sorted.
fn enabled_upns(graph: &GraphSim) -> Vec<String> {
    let mut upns: Vec<String> = graph
        .snapshot()
        .users
        .values()
        .filter(|u| u["accountEnabled"].as_bool().unwrap_or(true))
        .filter_map(|u| u["userPrincipalName"].as_str())
        .map(str::to_lowercase)
        .collect();
    upns.sort();
    upns
}

/// The source change, by UPN and group name, so that both worlds make the same one.
struct Change {
    delete: Vec<String>,
    disable: Vec<String>,
    leave: Vec<(String, String)>,
    newcomers: usize,
}

impl Change {
    fn pick(graph: &GraphSim) -> Change {
        let upns = enabled_upns(graph);
        let every = |offset: usize, step: usize, n: usize| -> Vec<String> {
            (0..n)
                .map(|i| upns[(offset + i * step) % upns.len()].clone())
                .collect()
        };
        let delete = every(1, 9, 4);
        let disable = every(4, 11, 3);
        let snap = graph.snapshot();
        let mut leave = Vec::new();
        let mut groups: Vec<_> = snap.groups.values().collect();
        groups.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        for g in groups {
            let member = g
                .members
                .iter()
                .filter_map(|m| snap.users.get(m))
                .filter_map(|u| u["userPrincipalName"].as_str())
                .map(str::to_lowercase)
                .find(|u| !delete.contains(u) && !disable.contains(u));
            if let Some(upn) = member
                && leave.len() < 4
                && graph.find_groups_by_name(&g.display_name).len() == 1
            {
                leave.push((upn, g.display_name.clone()));
            }
        }
        Change {
            delete,
            disable,
            leave,
            newcomers: 4,
        }
    }

    fn apply(&self, graph: &GraphSim) {
        for upn in &self.delete {
            let id = graph.find_user_by_upn(upn).expect("user to delete");
            graph.hard_delete_user(&id).expect("deleted");
        }
        for upn in &self.disable {
            let id = graph.find_user_by_upn(upn).expect("user to disable");
            graph.disable_user(&id).expect("disabled");
        }
        for (upn, group) in &self.leave {
            let user = graph.find_user_by_upn(upn).expect("user leaving");
            let group = graph.find_group_by_name(group).expect("group");
            graph.remove_member(&group, &user).expect("member removed");
        }
        let mut groups: Vec<(String, String)> = graph
            .snapshot()
            .groups
            .into_iter()
            .map(|(id, g)| (g.display_name, id))
            .collect();
        groups.sort();
        for i in 0..self.newcomers {
            let upn = format!("newcomer{i}@contoso.onmicrosoft.com");
            let id = graph
                .add_user(NewUser {
                    mail: Some(format!("newcomer{i}@contoso.com")),
                    ..NewUser::new(&upn, format!("Newcomer {i}"))
                })
                .expect("user added");
            graph
                .add_member(&groups[(i * 3) % groups.len()].1, &id)
                .expect("member added");
        }
    }

    /// Whether the change deprovisions this username.
    fn deprovisions(&self, user: &str) -> bool {
        let user = user.to_lowercase();
        self.delete.contains(&user) || self.disable.contains(&user)
    }
}

/// What every target holds: per target, accounts (username → active, email, display name) and
/// each group's members, all lower-case.
type States = BTreeMap<&'static str, (BTreeMap<String, (bool, String, String)>, Groups)>;
type Groups = BTreeMap<String, BTreeSet<String>>;

fn states(w: &World) -> States {
    ALL_TARGETS
        .iter()
        .map(|kind| {
            let accounts = w
                .atl
                .users(product(*kind))
                .into_iter()
                .map(|u| {
                    let active = w.is_active(*kind, &u.name);
                    (
                        u.name.to_lowercase(),
                        (active, u.email.to_lowercase(), u.display_name),
                    )
                })
                .collect();
            let groups = w
                .atl
                .groups(product(*kind))
                .into_iter()
                .map(|g| {
                    let members = w
                        .members(*kind, &g)
                        .into_iter()
                        .map(|m| m.to_lowercase())
                        .collect();
                    (g.to_lowercase(), members)
                })
                .collect();
            (target_name(*kind), (accounts, groups))
        })
        .collect()
}

/// A short, readable account of how two worlds' states differ.
fn diff(got: &States, want: &States) -> Vec<String> {
    let mut lines = Vec::new();
    for (target, (accounts, groups)) in want {
        let Some((got_accounts, got_groups)) = got.get(target) else {
            lines.push(format!("{target}: missing"));
            continue;
        };
        for (name, a) in accounts {
            match got_accounts.get(name) {
                None => lines.push(format!("{target}: account {name} missing")),
                Some(g) if g != a => {
                    lines.push(format!("{target}: account {name} is {g:?}, twin {a:?}"))
                }
                Some(_) => {}
            }
        }
        for name in got_accounts.keys().filter(|n| !accounts.contains_key(*n)) {
            lines.push(format!("{target}: account {name} the twin does not have"));
        }
        let names: BTreeSet<&String> = groups.keys().chain(got_groups.keys()).collect();
        for group in names {
            let empty = BTreeSet::new();
            let (g, t) = (
                got_groups.get(group).unwrap_or(&empty),
                groups.get(group).unwrap_or(&empty),
            );
            let extra: Vec<&String> = g.difference(t).collect();
            let missing: Vec<&String> = t.difference(g).collect();
            if !got_groups.contains_key(group) || !groups.contains_key(group) {
                lines.push(format!(
                    "{target}: group {group} only in {}",
                    if groups.contains_key(group) {
                        "the twin"
                    } else {
                        "the faulty world"
                    }
                ));
            }
            if !extra.is_empty() || !missing.is_empty() {
                lines.push(format!(
                    "{target}: group {group}: extra members {extra:?}, missing {missing:?}"
                ));
            }
        }
    }
    lines
}

const APP_TOML: &str = "[apps.groups]\nmapping = \"on_the_fly\"\n";

async fn world(tenant: &RunningGraphSim) -> (World, Config) {
    // Pages of two objects: a full read takes a few dozen Graph requests, for faults to hit.
    tenant.set_page_cap(Some(2));
    let w = World::new(&ALL_TARGETS).await;
    let config = w.write_config(&[App::new(tenant, APP_TOML)]);
    (w, config)
}

/// Every deprovisioning operation in a report: (target, username).
fn deprovisions(report: &RunReport) -> Vec<(String, String)> {
    report
        .targets
        .iter()
        .flat_map(|t| t.operations.iter())
        .filter_map(|o| match &o.planned.op {
            Operation::DeactivateUser { .. } | Operation::DeleteUser { .. } => Some((
                o.planned.target.clone(),
                o.planned.op.user().unwrap_or("").to_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// Runs syncs until one is done and plans nothing; checks each report as it comes. Returns the
/// reports.
async fn until_converged(
    w: &World,
    config: &Config,
    change: Option<&Change>,
    what: &str,
) -> Vec<RunReport> {
    let mut reports = Vec::new();
    for _ in 0..MAX_RUNS {
        let report = w.run(config, "main", false).await;
        check_report(&report, change);
        let done = report.status == RunStatus::Done && all_ops(&report).is_empty();
        reports.push(report);
        if done {
            return reports;
        }
    }
    let summary: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "run {} {:?}: {} operations, error {:?}",
                r.run_id,
                r.status,
                all_ops(r).len(),
                r.error
            )
        })
        .collect();
    panic!(
        "{what}: no convergence in {MAX_RUNS} runs under faults:\n{}",
        summary.join("\n")
    );
}

/// A run whose source read failed plans nothing; no run deprovisions anyone the source change
/// did not deprovision (none at all before the change).
fn check_report(report: &RunReport, change: Option<&Change>) {
    let source_failed = report
        .error
        .as_deref()
        .is_some_and(|e| e.contains("reading the source"));
    if source_failed {
        assert_eq!(report.status, RunStatus::Failed, "{}", pretty(report));
        assert!(
            all_ops(report).is_empty(),
            "a failed source read planned operations: {}",
            pretty(report)
        );
    }
    for (target, user) in deprovisions(report) {
        assert!(
            change.is_some_and(|c| c.deprovisions(&user)),
            "run {} ({:?}) deprovisions {user} on {target}, whom the source did not deprovision: {}",
            report.run_id,
            report.status,
            pretty(report)
        );
    }
}

/// The transient faults, plus answers lost after the change was made (targets only: for
/// Graph's reads that is the same as a plain drop).
fn target_chaos() -> ChaosConfig {
    ChaosConfig::transient(0.10, CHAOS_SEED).with_kind(FaultKind::DropAfter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_on_graph_and_every_target_converge_like_a_world_without_them() {
    // The twin: no faults.
    let twin_tenant = GraphSim::new(&spec()).start().await.expect("graph-sim");
    let (twin, twin_config) = world(&twin_tenant).await;
    let change = Change::pick(&twin_tenant);
    twin.sync_ok(&twin_config, "main").await;
    change.apply(&twin_tenant);
    twin.sync_ok(&twin_config, "main").await;
    twin.assert_converged(&twin_config).await;
    let want = states(&twin);

    // The same world with 10% of the requests failing.
    let tenant = GraphSim::new(&spec()).start().await.expect("graph-sim");
    let (w, config) = world(&tenant).await;
    let graph_kit = tenant.kit();
    let atl_kit = w.atl.kit();
    graph_kit.set_chaos(ChaosConfig::transient(0.10, CHAOS_SEED));
    atl_kit.set_chaos(target_chaos());

    let mut reports = until_converged(&w, &config, None, "first sync").await;
    let graph_faults_first = graph_kit.chaos_injected_total();

    // A burst of faults on Graph beyond what retries can ride out: reads fail, and such a run
    // must plan nothing (above all, deprovision no one) although the source has changed.
    change.apply(&tenant);
    graph_kit.set_chaos(ChaosConfig {
        rate: 0.85,
        kinds: vec![
            FaultKindG::Status {
                status: 503,
                retry_after: Some(0),
                body: None,
            },
            FaultKindG::Status {
                status: 429,
                retry_after: Some(0),
                body: None,
            },
        ],
        seed: CHAOS_SEED,
        method: None,
        path_contains: Some("/delta".into()),
    });
    let mut failed_reads = 0;
    for _ in 0..3 {
        let report = w.run(&config, "main", false).await;
        check_report(&report, Some(&change));
        if report.status == RunStatus::Failed {
            failed_reads += 1;
        }
        reports.push(report);
    }
    assert!(
        failed_reads > 0,
        "the burst of Graph faults made no source read fail; the check above proved nothing"
    );

    graph_kit.set_chaos(ChaosConfig::transient(0.10, CHAOS_SEED + 1));
    reports.extend(until_converged(&w, &config, Some(&change), "after the change").await);
    // The delta links expire: the source is read in full again (and so every target), under
    // faults; nothing may come of it.
    tenant.expire_delta_tokens();
    let full_reads = until_converged(&w, &config, Some(&change), "after a full read").await;
    assert_eq!(full_reads.len(), 1, "a full re-read changes nothing");
    reports.extend(full_reads);

    let graph_faults = graph_kit.chaos_injected_total();
    let target_faults = atl_kit.chaos_injected();
    graph_kit.clear_chaos();
    atl_kit.clear_chaos();
    let statuses: Vec<String> = reports
        .iter()
        .map(|r| format!("{}:{}", r.status.as_str(), all_ops(r).len()))
        .collect();
    eprintln!(
        "{} runs (status:operations) {}; faults injected: Graph {graph_faults} of {} requests ({graph_faults_first} before the change), targets {target_faults:?} of {} requests",
        reports.len(),
        statuses.join(" "),
        graph_kit.count("total"),
        atl_kit.count("total"),
    );
    assert!(graph_faults > 0, "Graph saw faults");
    assert!(
        target_faults.values().sum::<u64>() > 20,
        "the targets saw faults: {target_faults:?}"
    );

    // Faults off: a full read finds nothing left to do, and the targets hold what the twin's do.
    let full = w.run_with(&config, "main", true, true).await;
    assert_eq!(full.status, RunStatus::Planned, "{}", pretty(&full));
    assert!(
        all_ops(&full).is_empty(),
        "after convergence under faults, a full read still plans {}",
        pretty(&all_ops(&full))
    );
    let got = states(&w);
    let differences = diff(&got, &want);
    assert!(
        differences.is_empty(),
        "the targets differ from the world without faults ({} runs; faults injected: Graph {graph_faults}, targets {target_faults:?}):\n{}",
        reports.len(),
        differences.join("\n")
    );
    for kind in ALL_TARGETS {
        let name = target_name(kind);
        let accounts = &got[name].0;
        for user in change.delete.iter().chain(&change.disable) {
            if let Some((active, _, _)) = accounts.get(user) {
                assert!(
                    !active,
                    "{user} left or was disabled, yet is active on {name}"
                );
            }
        }
        assert!(
            accounts.values().filter(|a| a.0).count() > 30,
            "{name} has the tenant's accounts"
        );
    }
}
