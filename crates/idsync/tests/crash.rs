//! A run killed half way never leaves access behind.
//!
//! The real binary (`idsync sync`) runs as a child process against graph-sim and atlassian-sim
//! (Jira DC, Confluence DC, Bitbucket DC and Atlassian Cloud SCIM) served over loopback by this
//! test process, and is killed with SIGKILL at points chosen from the simulators' request
//! counters: during the source read, early in the account creations, in the middle of the
//! memberships, late. Then the source changes in a way that must deprovision (users hard-deleted,
//! users moved out of groups), `idsync sync` is run again until it plans nothing, then once more
//! with `--full-read`, and every target's final state is compared with an uninterrupted twin: the
//! same generated tenant on fresh simulators, the same source change, no kill.
//!
//! What "equal" means (see [`compare`]): the same active accounts (same email and display
//! name), no account the twin does not have, no account active that the twin has inactive (a
//! departed user keeping access), and the same group memberships. The one difference allowed:
//! an account the twin made and then deactivated may be missing after a kill (its user left
//! before any run got to create it).
//!
//! The killed run must also be accounted for: `idsync history` shows it as interrupted (not
//! `running`), with the operations it applied recorded once it had started writing. Last, every
//! user is disabled at the source and idsync syncs once more: no account may stay active, which
//! shows that every account idsync made is linked to its user (no orphans).
//!
//! Every case runs to its end and records its problems; the test fails at the end with all of
//! them, so one run shows every kill point that goes wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use atlassian_sim::{AtlassianSim, Product, RunningAtlassianSim, SimConfig};
use graph_sim::{GraphSim, NewUser, RunningGraphSim, TenantSpec};
use serde_json::Value;

/// The targets, by product and configured name.
const TARGETS: [(Product, &str); 4] = [
    (Product::Jira, "jira"),
    (Product::Confluence, "confluence"),
    (Product::Bitbucket, "bitbucket"),
    (Product::Scim, "cloud"),
];

/// Bitbucket cannot deactivate: an account without its licensed group counts as inactive.
const BITBUCKET_LICENSED: &str = "stash-users";

/// How many reruns may it take to plan nothing after a kill.
const MAX_RERUNS: usize = 5;

/// Latency of every Atlassian request while a run that is to be killed goes on: enough for a
/// run of a few thousand writes to last a few seconds, so that the counters can be watched.
const KILL_LATENCY: Duration = Duration::from_millis(8);

/// A few hundred users in twenty groups, about three groups each: applying a first sync takes
/// a few thousand requests over the four targets. No nesting, so that taking a user out of a
/// group at the source takes the membership away.
fn tenant_spec() -> TenantSpec {
    TenantSpec {
        seed: 0x0C4A_5EED,
        users: 300,
        groups: 20,
        memberships: 900,
        nesting_depth: 0,
        duplicate_group_names: 0,
        enterprise_apps: 0,
        devices: 0,
        contacts: 0,
        ..TenantSpec::default()
    }
}

// ----- running the binary -----

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn idsync(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("idsync runs")
}

/// Runs idsync with `--json` and returns its exit code and the JSON document it printed.
async fn idsync_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = idsync(args).await;
    let stderr = text(&out.stderr);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, stderr)
}

/// The operations of a run document, over all targets, as `target: op subject`.
fn operations(doc: &Value) -> Vec<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    doc["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["operations"].as_array().into_iter().flatten())
        .map(|o| {
            let subject = match s(o, "op").as_str() {
                "create_group" | "delete_group" => s(o, "group"),
                "add_membership" | "remove_membership" => {
                    format!("{} in {}", s(o, "user"), s(o, "group"))
                }
                _ => s(o, "user"),
            };
            format!("{}: {} {subject}", s(o, "target"), s(o, "op"))
        })
        .collect()
}

/// A few items of a list, for messages.
fn some<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 8;
    let mut out: Vec<String> = items.iter().take(SHOWN).map(ToString::to_string).collect();
    if items.len() > SHOWN {
        out.push(format!("… {} more", items.len() - SHOWN));
    }
    out.join(", ")
}

// ----- the world: simulators, config, store -----

struct World {
    graph: RunningGraphSim,
    atl: RunningAtlassianSim,
    dir: PathBuf,
    config: PathBuf,
}

impl World {
    async fn new(name: &str, adopt: bool) -> World {
        let graph = GraphSim::new(&tenant_spec())
            .start()
            .await
            .expect("graph-sim starts");
        let atl = AtlassianSim::new(SimConfig::default())
            .start()
            .await
            .expect("atlassian-sim starts");
        let dir = std::env::temp_dir().join(format!("idsync-crash-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("idsync.toml");
        std::fs::write(&config, config_text(&graph, &atl, adopt)).expect("config written");
        World {
            graph,
            atl,
            dir,
            config,
        }
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    /// Requests that change something on a target (anything but GET), all products together.
    fn writes(&self) -> u64 {
        writes(&self.atl.kit().counters())
    }

    /// A sync that must finish: exit 0, status done. Returns the operations it applied.
    async fn sync_ok(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["sync", "--config", self.config(), "--json"];
        args.extend_from_slice(extra);
        let (code, doc, stderr) = idsync_json(&args).await;
        assert_eq!(code, Some(0), "idsync {args:?}: {stderr}\n{doc:#}");
        assert_eq!(doc["status"], "done", "{doc:#}");
        operations(&doc)
    }

    /// The id of the newest run in the history (0 when there is none).
    async fn last_run_id(&self) -> i64 {
        let (code, doc, stderr) =
            idsync_json(&["history", "--config", self.config(), "--json"]).await;
        assert_eq!(code, Some(0), "idsync history: {stderr}");
        doc["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_i64())
            .max()
            .unwrap_or(0)
    }

    fn state(&self) -> BTreeMap<&'static str, TargetState> {
        TARGETS
            .iter()
            .map(|(p, name)| (*name, TargetState::of(&self.atl, *p)))
            .collect()
    }

    fn done(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Every user is disabled at the source and idsync syncs once more: then no account may be
    /// active on any target. An account still active is one idsync made but does not manage
    /// (an orphan, linked to no user). Returns what is wrong.
    async fn everyone_leaves(&self) -> Vec<String> {
        for id in self.graph.user_ids() {
            self.graph.disable_user(&id).expect("disabled");
        }
        let (code, doc, stderr) = idsync_json(&["sync", "--config", self.config(), "--json"]).await;
        let mut problems = Vec::new();
        if code != Some(0) {
            problems.push(format!(
                "the sync after every user was disabled exited {code:?} ({}): {}",
                doc["status"].as_str().unwrap_or("?"),
                stderr.lines().last().unwrap_or("")
            ));
        }
        for (name, state) in self.state() {
            let active: Vec<&String> = state
                .accounts
                .iter()
                .filter(|(_, a)| a.active)
                .map(|(n, _)| n)
                .collect();
            if !active.is_empty() {
                problems.push(format!(
                    "{name}: {} accounts still active after every user was disabled at the source (orphans, not linked to their users): {}",
                    active.len(),
                    some(&active)
                ));
            }
        }
        problems
    }
}

fn writes(counters: &BTreeMap<String, u64>) -> u64 {
    counters
        .iter()
        .filter(|(k, _)| k.as_str() != "total" && !k.starts_with("GET "))
        .map(|(_, v)| *v)
        .sum()
}

fn config_text(graph: &RunningGraphSim, atl: &RunningAtlassianSim, adopt: bool) -> String {
    let c = graph.credentials();
    let s = atl.config();
    let adopt_by = if adopt {
        ""
    } else {
        // Accounts found on a target are never taken over: only links tell idsync's own.
        "adopt_by = []\n"
    };
    let mut text = format!(
        r#"data_dir = "data"

[[apps]]
name = "corp"
kind = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = '{secret}'
authority_url = "{authority}"
graph_url = "{graph_url}"

[apps.users]
strip_groups_on_deprovision = true
{adopt_by}
[apps.groups]
mapping = "on_the_fly"

[apps.guard]
max_deprovision_percent = 100.0
max_deprovision_count = 100000
"#,
        tenant = c.tenant_id,
        client = c.client_id,
        secret = c.client_secret,
        authority = graph.authority_url(),
        graph_url = graph.graph_url(),
    );
    for (product, name) in TARGETS {
        // Bitbucket refuses HTTP access tokens on its admin endpoints: Basic auth there.
        let (kind, url, credentials) = match product {
            Product::Jira => (
                "jira-dc",
                atl.jira_url(),
                format!("token = \"{}\"", s.jira_token),
            ),
            Product::Confluence => (
                "confluence-dc",
                atl.confluence_url(),
                format!("token = \"{}\"", s.confluence_token),
            ),
            Product::Bitbucket => (
                "bitbucket-dc",
                atl.bitbucket_url(),
                format!(
                    "username = \"{}\"\npassword = \"{}\"",
                    s.admin_user, s.admin_password
                ),
            ),
            Product::Scim => (
                "atlassian-cloud",
                atl.scim_url(),
                format!("token = \"{}\"", s.scim_token),
            ),
        };
        text += &format!(
            "\n[[targets]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\n{credentials}\n"
        );
    }
    text
}

// ----- target state and its comparison -----

#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    active: bool,
    email: String,
    display_name: String,
}

/// What one target holds: accounts by lower-case username, and each group's direct members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct TargetState {
    accounts: BTreeMap<String, Account>,
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl TargetState {
    fn of(atl: &RunningAtlassianSim, product: Product) -> TargetState {
        let groups: BTreeMap<String, BTreeSet<String>> = atl
            .groups(product)
            .into_iter()
            .map(|g| {
                let members = atl
                    .members(product, &g)
                    .into_iter()
                    .map(|m| m.to_lowercase())
                    .collect();
                (g.to_lowercase(), members)
            })
            .collect();
        let licensed = groups.get(BITBUCKET_LICENSED).cloned().unwrap_or_default();
        let accounts = atl
            .users(product)
            .into_iter()
            .map(|u| {
                let name = u.name.to_lowercase();
                let active = match product {
                    Product::Bitbucket => licensed.contains(&name),
                    _ => u.active,
                };
                let account = Account {
                    active,
                    email: u.email.to_lowercase(),
                    display_name: u.display_name,
                };
                (name, account)
            })
            .collect();
        TargetState { accounts, groups }
    }

    fn active(&self) -> usize {
        self.accounts.values().filter(|a| a.active).count()
    }
}

/// How the state after a kill (`got`) differs from the uninterrupted twin's (`want`), one line
/// per kind of difference; empty when they are equal (see the module docs for what is allowed).
fn compare(got: &TargetState, want: &TargetState) -> Vec<String> {
    let mut active_departed = Vec::new();
    let mut unknown = Vec::new();
    let mut missing = Vec::new();
    let mut inactive = Vec::new();
    let mut changed = Vec::new();
    for (name, account) in &got.accounts {
        match want.accounts.get(name) {
            None => unknown.push(format!(
                "{name}{}",
                if account.active { " (active)" } else { "" }
            )),
            Some(w) if account.active && !w.active => active_departed.push(name.clone()),
            Some(w) if !account.active && w.active => inactive.push(name.clone()),
            Some(w) if account.email != w.email || account.display_name != w.display_name => {
                changed.push(format!(
                    "{name}: {} / {} (twin: {} / {})",
                    account.email, account.display_name, w.email, w.display_name
                ));
            }
            Some(_) => {}
        }
    }
    for (name, w) in &want.accounts {
        if w.active && !got.accounts.contains_key(name) {
            missing.push(name.clone());
        }
    }
    // Memberships, leaving out the accounts the twin made (and deactivated) and the killed world
    // never needed to make.
    let absent: BTreeSet<&String> = want
        .accounts
        .keys()
        .filter(|n| !got.accounts.contains_key(*n))
        .collect();
    let groups: BTreeSet<&String> = got.groups.keys().chain(want.groups.keys()).collect();
    let mut extra_members = Vec::new();
    let mut missing_members = Vec::new();
    for group in groups {
        let empty = BTreeSet::new();
        let g = got.groups.get(group).unwrap_or(&empty);
        let w: BTreeSet<&String> = want
            .groups
            .get(group)
            .unwrap_or(&empty)
            .iter()
            .filter(|m| !absent.contains(m))
            .collect();
        for m in g {
            if !w.contains(m) {
                extra_members.push(format!("{m} in {group}"));
            }
        }
        for m in w {
            if !g.contains(m) {
                missing_members.push(format!("{m} in {group}"));
            }
        }
    }
    let mut lines = Vec::new();
    let mut line = |what: &str, items: &[String]| {
        if !items.is_empty() {
            lines.push(format!("{} {what}: {}", items.len(), some(items)));
        }
    };
    line(
        "accounts active that the twin has deactivated (access left behind)",
        &active_departed,
    );
    line(
        "memberships the twin does not have (access left behind)",
        &extra_members,
    );
    line("accounts the twin never made (orphans)", &unknown);
    line("active accounts of the twin missing", &missing);
    line("accounts inactive that the twin has active", &inactive);
    line("accounts with other details", &changed);
    line("memberships of the twin missing", &missing_members);
    lines
}

/// Compares every target; the differences, each line prefixed with its target.
fn compare_all(
    got: &BTreeMap<&'static str, TargetState>,
    want: &BTreeMap<&'static str, TargetState>,
) -> Vec<String> {
    let empty = TargetState::default();
    TARGETS
        .iter()
        .flat_map(|(_, name)| {
            compare(
                got.get(name).unwrap_or(&empty),
                want.get(name).unwrap_or(&empty),
            )
            .into_iter()
            .map(move |l| format!("{name}: {l}"))
        })
        .collect()
}

// ----- source changes (the same in both worlds, by UPN and group name) -----

/// Enabled users' UPNs, lower-case and sorted (the order usernames are planned in).
fn enabled_upns(graph: &GraphSim) -> Vec<String> {
    let snap = graph.snapshot();
    let mut upns: Vec<String> = snap
        .users
        .values()
        .filter(|u| u["accountEnabled"].as_bool().unwrap_or(true))
        .filter_map(|u| u["userPrincipalName"].as_str())
        .map(str::to_lowercase)
        .collect();
    upns.sort();
    upns
}

/// `n` items spread evenly over `items`, starting a little way in.
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.is_empty() || n == 0 {
        return Vec::new();
    }
    let step = (items.len() / n).max(1);
    (0..n)
        .map(|i| items[(step / 2 + i * step) % items.len()].clone())
        .collect::<Vec<T>>()
}

/// A change at the source that must deprovision: these users hard-deleted, and these
/// (user, group) direct memberships removed.
#[derive(Debug, Clone, Default)]
struct SourceChange {
    delete: Vec<String>,
    leave: Vec<(String, String)>,
}

impl SourceChange {
    /// `deletions` users spread over `among` deleted, and `leaves` memberships of other users
    /// of `among` removed, the same way.
    fn pick(graph: &GraphSim, among: &[String], deletions: usize, leaves: usize) -> Self {
        let delete = spread(among, deletions);
        let snap = graph.snapshot();
        let upn_of: BTreeMap<&String, String> = snap
            .users
            .iter()
            .filter_map(|(id, u)| {
                u["userPrincipalName"]
                    .as_str()
                    .map(|upn| (id, upn.to_lowercase()))
            })
            .collect();
        let among: BTreeSet<&String> = among.iter().collect();
        let mut memberships: Vec<(String, String)> = snap
            .groups
            .values()
            .flat_map(|g| {
                g.members
                    .iter()
                    .filter_map(|m| upn_of.get(m))
                    .filter(|upn| among.contains(upn) && !delete.contains(upn))
                    .map(|upn| (upn.clone(), g.display_name.clone()))
            })
            .collect();
        memberships.sort();
        SourceChange {
            leave: spread(&memberships, leaves),
            delete,
        }
    }

    fn apply(&self, graph: &GraphSim) {
        for upn in &self.delete {
            let id = graph.find_user_by_upn(upn).expect("user to delete");
            graph.hard_delete_user(&id).expect("deleted");
        }
        for (upn, group) in &self.leave {
            let user = graph.find_user_by_upn(upn).expect("user leaving");
            let group = graph.find_group_by_name(group).expect("group");
            graph.remove_member(&group, &user).expect("member removed");
        }
    }
}

/// New users for the incremental scenario, each in three of the tenant's groups.
fn add_newcomers(graph: &GraphSim, count: usize) -> Vec<String> {
    let mut groups: Vec<(String, String)> = graph
        .snapshot()
        .groups
        .into_iter()
        .map(|(id, g)| (g.display_name, id))
        .collect();
    groups.sort();
    let mut upns = Vec::new();
    for i in 0..count {
        let upn = format!("newcomer{i:03}@contoso.onmicrosoft.com");
        let user = NewUser {
            mail: Some(format!("newcomer{i:03}@contoso.com")),
            ..NewUser::new(&upn, format!("Newcomer {i:03}"))
        };
        let id = graph.add_user(user).expect("user added");
        let picks: BTreeSet<usize> = [i, i * 7 + 3, i * 11 + 5]
            .into_iter()
            .map(|k| k % groups.len())
            .collect();
        for k in picks {
            graph.add_member(&groups[k].1, &id).expect("member added");
        }
        upns.push(upn);
    }
    upns
}

// ----- killing a run -----

/// When to kill the run.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once Graph has answered this many requests (token, delta pages) of the run.
    SourceRead(u64),
    /// Once the Atlassian simulator has seen this many write requests of the run.
    Writes(u64),
}

struct Killed {
    /// Writes the simulator had seen from the killed run when it was killed.
    writes: u64,
    /// What they were, by route.
    by_route: BTreeMap<String, u64>,
}

/// Starts `idsync sync` and kills it (SIGKILL) at `at`, watching the simulators' counters.
/// Panics if the run ends on its own before that: the kill point is then past its end.
async fn sync_killed(world: &World, at: KillAt) -> Killed {
    let graph_kit = world.graph.kit();
    let atl_kit = world.atl.kit();
    let graph_before = graph_kit.count("total");
    let before = atl_kit.counters();
    if let KillAt::SourceRead(_) = at {
        // Small pages, slowly: the read takes many requests.
        world.graph.set_page_cap(Some(10));
        graph_kit.set_latency(KILL_LATENCY);
    }
    atl_kit.set_latency(KILL_LATENCY);
    let log = std::fs::File::create(world.dir.join("killed-run.log")).expect("log file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["sync", "--config", world.config(), "--json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("idsync starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reached = match at {
            KillAt::SourceRead(n) => graph_kit.count("total") >= graph_before + n,
            KillAt::Writes(n) => writes(&atl_kit.counters()) >= writes(&before) + n,
        };
        if reached {
            child.kill().await.expect("SIGKILL");
            break;
        }
        if let Some(status) = child.try_wait().expect("child status") {
            let log = std::fs::read_to_string(world.dir.join("killed-run.log")).unwrap_or_default();
            panic!(
                "the run ended ({status}) before the kill point {at:?}: {} writes seen\n{log}",
                writes(&atl_kit.counters()) - writes(&before)
            );
        }
        assert!(
            Instant::now() < deadline,
            "kill point {at:?} not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    atl_kit.set_latency(Duration::ZERO);
    graph_kit.set_latency(Duration::ZERO);
    world.graph.set_page_cap(None);
    let after = atl_kit.counters();
    let by_route: BTreeMap<String, u64> = after
        .iter()
        .filter(|(k, _)| k.as_str() != "total" && !k.starts_with("GET "))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    Killed {
        writes: writes(&after) - writes(&before),
        by_route,
    }
}

/// `POST /bitbucket/rest/api/1.0/admin/groups/add-users` → `bitbucket POST groups/add-users`.
fn short_route(key: &str) -> String {
    let (method, path) = key.split_once(' ').unwrap_or(("", key));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let product = segments.first().copied().unwrap_or("");
    let markers = ["api", "admin", "2", "1.0", "latest", "{directoryId}"];
    let rest = segments
        .iter()
        .rposition(|s| markers.contains(s))
        .map_or(&segments[1..], |i| &segments[i + 1..]);
    format!("{product} {method} {}", rest.join("/"))
}

// ----- one case: kill, change, rerun, compare -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The first sync of an empty set of targets is killed.
    FirstSync,
    /// A sync after the first, bringing in newcomers, is killed.
    Incremental,
}

/// The source change of a scenario, picked in `world` before the run that is killed.
fn change_for(scenario: Scenario, graph: &GraphSim, newcomers: &[String]) -> SourceChange {
    match scenario {
        Scenario::FirstSync => SourceChange::pick(graph, &enabled_upns(graph), 20, 10),
        Scenario::Incremental => {
            let new = SourceChange::pick(graph, newcomers, 12, 6);
            let old: Vec<String> = enabled_upns(graph)
                .into_iter()
                .filter(|u| !newcomers.contains(u))
                .collect();
            let old = SourceChange::pick(graph, &old, 8, 4);
            SourceChange {
                delete: [new.delete, old.delete].concat(),
                leave: [new.leave, old.leave].concat(),
            }
        }
    }
}

/// Brings a world to just before the run that is killed (or left alone, for the twin).
async fn prepare(world: &World, scenario: Scenario) -> (Vec<String>, SourceChange) {
    let mut newcomers = Vec::new();
    if scenario == Scenario::Incremental {
        world.sync_ok(&[]).await;
        newcomers = add_newcomers(&world.graph, 100);
    }
    let change = change_for(scenario, &world.graph, &newcomers);
    (newcomers, change)
}

/// The twin: no kill. Returns its final state and how many writes the run that the other
/// worlds kill made.
async fn twin(scenario: Scenario) -> (BTreeMap<&'static str, TargetState>, u64) {
    let world = World::new(&format!("{scenario:?}-twin"), true).await;
    let (_, change) = prepare(&world, scenario).await;
    let before = world.writes();
    world.sync_ok(&[]).await;
    let run_writes = world.writes() - before;
    change.apply(&world.graph);
    world.sync_ok(&[]).await;
    let again = world.sync_ok(&[]).await;
    assert!(again.is_empty(), "the twin converged: {again:?}");
    let full = world.sync_ok(&["--full-read"]).await;
    assert!(full.is_empty(), "the twin converged: {full:?}");
    let state = world.state();
    for (name, t) in &state {
        assert!(
            t.active() > 100,
            "the twin's {name} has the tenant's accounts"
        );
    }
    let problems = world.everyone_leaves().await;
    assert!(problems.is_empty(), "the twin: {problems:#?}");
    world.done();
    (state, run_writes)
}

/// One kill: returns the problems found (empty when all is well) and a line of what happened.
async fn killed_case(
    scenario: Scenario,
    adopt: bool,
    at: KillAt,
    label: &str,
    want: &BTreeMap<&'static str, TargetState>,
) -> (Vec<String>, String) {
    let world = World::new(&format!("{scenario:?}-{label}"), adopt).await;
    let (_, change) = prepare(&world, scenario).await;
    let last_before = world.last_run_id().await;
    let killed = sync_killed(&world, at).await;
    let mut problems = Vec::new();
    let routes: Vec<String> = killed
        .by_route
        .iter()
        .map(|(k, v)| format!("{} ×{v}", short_route(k)))
        .collect();
    let mut story = format!(
        "killed after {} writes ({})",
        killed.writes,
        routes.join(", ")
    );
    change.apply(&world.graph);

    // Rerun until a run plans nothing.
    let mut converged = false;
    for rerun in 1..=MAX_RERUNS {
        let (code, doc, stderr) =
            idsync_json(&["sync", "--config", world.config(), "--json"]).await;
        let ops = operations(&doc);
        story += &format!(
            "; rerun {rerun}: exit {code:?}, {} {}",
            doc["status"].as_str().unwrap_or("?"),
            ops.len()
        );
        if !matches!(code, Some(0 | 1)) {
            problems.push(format!(
                "rerun {rerun} exited {code:?} (0 done or 1 failed/partial expected): {}",
                stderr.lines().last().unwrap_or("")
            ));
            break;
        }
        if ops.is_empty() && code == Some(0) {
            converged = true;
            break;
        }
    }
    if !converged {
        problems.push(format!(
            "still planning operations after {MAX_RERUNS} reruns"
        ));
    }
    let (code, doc, stderr) =
        idsync_json(&["sync", "--config", world.config(), "--full-read", "--json"]).await;
    let full = operations(&doc);
    if code != Some(0) {
        problems.push(format!(
            "the final --full-read sync exited {code:?}: {}",
            stderr.lines().last().unwrap_or("")
        ));
    }
    if !full.is_empty() {
        problems.push(format!(
            "the final --full-read sync found {} operations the reruns had not done: {}",
            full.len(),
            some(&full)
        ));
    }

    problems.extend(compare_all(&world.state(), want));

    // The killed run in the history.
    let killed_run = last_before + 1;
    let (code, doc, stderr) = idsync_json(&[
        "history",
        "--config",
        world.config(),
        "--run",
        &killed_run.to_string(),
        "--json",
    ])
    .await;
    if code != Some(0) {
        problems.push(format!(
            "`idsync history --run {killed_run}` exited {code:?}: {stderr}"
        ));
    } else {
        let status = doc["run"]["status"].as_str().unwrap_or("?").to_owned();
        let recorded = doc["operations"].as_array().map_or(0, Vec::len);
        story += &format!("; history: run {killed_run} {status}, {recorded} operations");
        if status != "interrupted" {
            problems.push(format!(
                "the killed run {killed_run} is {status:?} in the history, not \"interrupted\""
            ));
        }
        if killed.writes > 0 && recorded == 0 {
            problems.push(format!(
                "the killed run {killed_run} made {} writes but the history records no operation",
                killed.writes
            ));
        }
    }
    problems.extend(world.everyone_leaves().await);
    world.done();
    (problems, story)
}

/// Runs every kill point of a scenario against its twin; fails with all problems found.
async fn run_scenario(scenario: Scenario, kills: &[(bool, &str, Kill)]) {
    let started = Instant::now();
    let (want, run_writes) = twin(scenario).await;
    let mut report = vec![format!(
        "{scenario:?}: the uninterrupted run made {run_writes} writes"
    )];
    let mut failed = false;
    for (adopt, label, kill) in kills {
        let at = match *kill {
            Kill::SourceRead(n) => KillAt::SourceRead(n),
            Kill::Share(share) => KillAt::Writes(((run_writes as f64 * share) as u64).max(1)),
        };
        let (problems, story) = killed_case(scenario, *adopt, at, label, &want).await;
        let adopt = if *adopt { "" } else { " adopt_by = []" };
        report.push(format!("- {label}{adopt} ({at:?}): {story}"));
        for p in &problems {
            report.push(format!("    ✗ {p}"));
        }
        failed |= !problems.is_empty();
    }
    report.push(format!("({:.0?} in all)", started.elapsed()));
    let report = report.join("\n");
    if !failed {
        eprintln!("{report}");
    }
    assert!(
        !failed,
        "a killed run left the targets unlike its twin:\n{report}"
    );
}

/// Where to kill, before the twin says how many writes a run makes.
#[derive(Debug, Clone, Copy)]
enum Kill {
    SourceRead(u64),
    /// At this share of the writes the uninterrupted run made.
    Share(f64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_killed_anywhere_ends_like_an_uninterrupted_one() {
    run_scenario(
        Scenario::FirstSync,
        &[
            (true, "source read", Kill::SourceRead(8)),
            (true, "early in the creations", Kill::Share(0.05)),
            (true, "late in the creations", Kill::Share(0.2)),
            (true, "middle of the memberships", Kill::Share(0.55)),
            (true, "late", Kill::Share(0.9)),
            (false, "late in the creations", Kill::Share(0.2)),
            (false, "middle of the memberships", Kill::Share(0.55)),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_killed_anywhere_ends_like_an_uninterrupted_one() {
    run_scenario(
        Scenario::Incremental,
        &[
            (true, "source read", Kill::SourceRead(3)),
            (true, "early", Kill::Share(0.1)),
            (true, "middle", Kill::Share(0.5)),
            (true, "late", Kill::Share(0.9)),
            (false, "middle", Kill::Share(0.5)),
        ],
    )
    .await;
}
