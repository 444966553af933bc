//! `idsync sync`, `history` and `approve` as a user runs them: the built binary against
//! graph-sim and atlassian-sim over loopback, checking the printed plan operation by operation,
//! the applied state, the history and the exit codes (0 done, 2 bad config, 3 held).

use std::path::{Path, PathBuf};
use std::process::Output;

use atlassian_sim::{AtlassianSim, Product, RunningAtlassianSim, SimConfig};
use graph_sim::{GraphSim, NewUser, RunningGraphSim};
use serde_json::Value;

/// A fresh folder for one test's config and store.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idsync-sync-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The config of one test, in its own fresh folder `name` (where its store goes too).
fn write_config(
    name: &str,
    graph: &RunningGraphSim,
    atl: &RunningAtlassianSim,
    guard_percent: f64,
) -> PathBuf {
    let dir = folder(name);
    let c = graph.credentials();
    let s = atl.config();
    let text = format!(
        r#"data_dir = "data"

[[apps]]
name = "corp"
kind = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = '{secret}'
authority_url = "{authority}"
graph_url = "{graph_url}"

[apps.groups]
mapping = "manual"
manual = [{{ source = "Devs", targets = ["developers"] }}]

[apps.guard]
max_deprovision_percent = {guard_percent:.1}

[[targets]]
name = "jira"
kind = "jira-dc"
base_url = "{jira}"
token = "{jira_token}"

[[targets]]
name = "bitbucket"
kind = "bitbucket-dc"
base_url = "{bitbucket}"
username = "{bitbucket_user}"
password = "{bitbucket_password}"
"#,
        tenant = c.tenant_id,
        client = c.client_id,
        secret = c.client_secret,
        authority = graph.authority_url(),
        graph_url = graph.graph_url(),
        jira = atl.jira_url(),
        jira_token = s.jira_token,
        bitbucket = atl.bitbucket_url(),
        bitbucket_user = s.admin_user,
        bitbucket_password = s.admin_password,
    );
    let path = dir.join("idsync.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

async fn idsync(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("idsync runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs idsync, checks the exit code, and returns stdout parsed as JSON when asked.
async fn run(args: &[&str], code: i32) -> (Value, String) {
    let out = idsync(args).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "idsync {args:?}\nstdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    let json = if args.contains(&"--json") {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("one JSON document on stdout ({e}): {}", text(&out.stdout)))
    } else {
        Value::Null
    };
    (json, stderr)
}

/// (op, target, user or group, reason) of every operation in a run document, in order.
fn operations(doc: &Value) -> Vec<(String, String, String, String)> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    doc["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .flat_map(|t| t["operations"].as_array().expect("operations").iter())
        .map(|o| {
            let subject = match s(o, "op").as_str() {
                "create_group" | "delete_group" => s(o, "group"),
                "add_membership" | "remove_membership" => {
                    format!("{} in {}", s(o, "user"), s(o, "group"))
                }
                _ => s(o, "user"),
            };
            (s(o, "op"), s(o, "target"), subject, s(o, "reason"))
        })
        .collect()
}

fn expected_first_plan(target: &str) -> Vec<(String, String, String, String)> {
    let t = target.to_owned();
    [
        (
            "create_group",
            "developers",
            "mapped group missing on the target",
        ),
        (
            "create_user",
            "ada@contoso.com",
            "in scope at the source, no account yet",
        ),
        (
            "create_user",
            "bob@contoso.com",
            "in scope at the source, no account yet",
        ),
        (
            "add_membership",
            "ada@contoso.com in developers",
            "member of source group \"Devs\"",
        ),
        (
            "add_membership",
            "bob@contoso.com in developers",
            "member of source group \"Devs\"",
        ),
    ]
    .into_iter()
    .map(|(op, subject, reason)| {
        (
            op.to_owned(),
            t.clone(),
            subject.to_owned(),
            reason.to_owned(),
        )
    })
    .collect()
}

async fn world() -> (RunningGraphSim, RunningAtlassianSim, Vec<String>) {
    let graph = GraphSim::from_json("{}")
        .expect("tenant")
        .start()
        .await
        .expect("graph-sim starts");
    let mut ids = Vec::new();
    for (upn, name, enabled) in [
        ("ada@contoso.com", "Ada", true),
        ("bob@contoso.com", "Bob", true),
        ("cyd@contoso.com", "Cyd", false),
    ] {
        let user = NewUser {
            mail: Some(upn.to_owned()),
            account_enabled: enabled,
            ..NewUser::new(upn, name)
        };
        ids.push(graph.add_user(user).expect("user"));
    }
    let devs = graph.create_group("Devs");
    for id in &ids {
        graph.add_member(&devs, id).expect("member");
    }
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    (graph, atl, ids)
}

/// Checks the dry run's answer: planned, both targets' first plans, each target's operations
/// in plan order (groups, users, memberships).
fn assert_first_plan(plan: &Value) {
    assert_eq!(plan["status"], "planned");
    assert_eq!(plan["dry_run"], true);
    let mut expected = expected_first_plan("jira");
    expected.extend(expected_first_plan("bitbucket"));
    let mut got = operations(plan);
    got.sort_by(|a, b| (a.1 == "bitbucket", a).cmp(&(b.1 == "bitbucket", b)));
    let mut want = expected.clone();
    want.sort_by(|a, b| (a.1 == "bitbucket", a).cmp(&(b.1 == "bitbucket", b)));
    assert_eq!(got, want, "{plan:#}");
    // Each target's operations are in plan order: groups, users, memberships.
    for target in plan["targets"].as_array().expect("targets") {
        let ops: Vec<&str> = target["operations"]
            .as_array()
            .expect("ops")
            .iter()
            .map(|o| o["op"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            ops,
            vec![
                "create_group",
                "create_user",
                "create_user",
                "add_membership",
                "add_membership"
            ]
        );
    }
}

/// Checks that the history lists the four runs (plan, apply, plan, apply), newest first, all
/// of `corp`.
fn assert_history_of_four_runs(history: &Value) {
    let runs = history["runs"].as_array().expect("runs");
    let statuses: Vec<(&str, bool)> = runs
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap_or(""),
                r["dry_run"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("done", false),
            ("planned", true),
            ("done", false),
            ("planned", true)
        ],
        "{history:#}"
    );
    assert!(runs.iter().all(|r| r["app"] == "corp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plan_then_apply_then_nothing_then_history() {
    let (graph, atl, _ids) = world().await;
    let config = write_config("plan", &graph, &atl, 100.0);
    let config = config.to_str().expect("utf-8 path");

    // The dry run prints the plan, operation by operation, and changes nothing.
    let (plan, _) = run(&["sync", "--config", config, "--dry-run", "--json"], 0).await;
    assert_first_plan(&plan);
    assert!(
        atl.users(Product::Jira).is_empty(),
        "a dry run changes nothing"
    );
    assert_eq!(atl.users(Product::Bitbucket).len(), 0);

    // The real run applies it.
    let (applied, _) = run(&["sync", "--config", config, "--json"], 0).await;
    assert_eq!(applied["status"], "done", "{applied:#}");
    assert_eq!(operations(&applied).len(), 10);
    for op in applied["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .flat_map(|t| t["operations"].as_array().expect("ops"))
    {
        assert_eq!(op["status"], "done", "{op:#}");
    }
    assert_eq!(applied["totals"]["create_user"]["done"], 4);
    for p in [Product::Jira, Product::Bitbucket] {
        assert_eq!(
            atl.members(p, "developers"),
            vec!["ada@contoso.com", "bob@contoso.com"]
        );
        assert!(atl.user(p, "cyd@contoso.com").is_none());
    }

    // A second run plans nothing.
    let (again, _) = run(&["sync", "--config", config, "--dry-run", "--json"], 0).await;
    assert!(operations(&again).is_empty(), "{again:#}");

    // The table output works too (exit 0, no JSON).
    let out = idsync(&["sync", "--config", config]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // The history lists the runs, newest first.
    let (history, _) = run(&["history", "--config", config, "--json"], 0).await;
    assert_history_of_four_runs(&history);
    // One run in detail, with its operations.
    let applied_id = applied["run_id"].as_i64().expect("run id").to_string();
    let (detail, _) = run(
        &[
            "history",
            "--config",
            config,
            "--run",
            &applied_id,
            "--json",
        ],
        0,
    )
    .await;
    assert_eq!(detail["operations"].as_array().expect("ops").len(), 10);

    // Nobody reading stdout any more (`| head` has exited): each command ends quietly, with its
    // usual exit code and no panic.
    for args in [
        &["sync", "--config", config, "--dry-run", "--json"][..],
        &["sync", "--config", config, "--dry-run"],
        &["history", "--config", config],
        &["history", "--config", config, "--json"],
        &["history", "--config", config, "--run", &applied_id],
    ] {
        let out = closed_stdout(args).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// Runs idsync with stdout a pipe whose reading end is already closed, as after `| head` has
/// read what it wanted and exited.
async fn closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::from(writer))
        // Not `output()`: tokio's replaces stdout with a pipe of its own.
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("idsync starts")
        .wait_with_output()
        .await
        .expect("idsync runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_plan_exits_3_then_approve_applies_it() {
    let (graph, atl, ids) = world().await;
    let config = write_config("held", &graph, &atl, 10.0);
    let config = config.to_str().expect("utf-8 path");
    run(&["sync", "--config", config], 0).await;

    graph.disable_user(&ids[0]).expect("disabled");
    let (held, stderr) = run(&["sync", "--config", config, "--json"], 3).await;
    assert_eq!(held["status"], "held", "{held:#}");
    assert!(stderr.contains("held"), "{stderr}");
    let run_id = held["run_id"].as_i64().expect("run id");
    for p in [Product::Jira, Product::Bitbucket] {
        assert!(
            atl.members(p, "developers")
                .contains(&"ada@contoso.com".to_owned())
        );
    }
    assert!(
        atl.user(Product::Jira, "ada@contoso.com")
            .expect("ada")
            .active
    );

    // The held plan can be reviewed in the history before it is approved.
    let (detail, _) = run(
        &[
            "history",
            "--config",
            config,
            "--run",
            &run_id.to_string(),
            "--json",
        ],
        0,
    )
    .await;
    let held_ops: Vec<&str> = detail["plan"]
        .as_array()
        .expect("held plan kept for review")
        .iter()
        .flat_map(|t| t["operations"].as_array().into_iter().flatten())
        .filter_map(|o| o["op"].as_str())
        .collect();
    assert!(held_ops.contains(&"deactivate_user"), "{detail:#}");

    // Approving something that is not held is a usage error.
    run(&["approve", "--config", config, "1"], 2).await;
    // Approving the held run applies it.
    run(&["approve", "--config", config, &run_id.to_string()], 0).await;
    assert!(
        !atl.user(Product::Jira, "ada@contoso.com")
            .expect("ada")
            .active
    );
    assert!(
        !atl.members(Product::Bitbucket, "stash-users")
            .contains(&"ada@contoso.com".to_owned()),
        "Bitbucket deprovisioning removes the licence group"
    );
    let (again, _) = run(&["sync", "--config", config, "--dry-run", "--json"], 0).await;
    assert!(operations(&again).is_empty(), "{again:#}");
    let (history, _) = run(&["history", "--config", config, "--json"], 0).await;
    let held_run = history["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["id"].as_i64() == Some(run_id))
        .expect("the held run is in the history");
    assert_ne!(held_run["status"], "held", "{held_run:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_exits_2_naming_the_field() {
    let (graph, atl, _) = world().await;
    let config = write_config("bad", &graph, &atl, 100.0);
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replace("mapping = \"manual\"", "mapping = \"sometimes\""),
    )
    .expect("written");
    let config = config.to_str().expect("utf-8 path");
    let (_, stderr) = run(&["sync", "--config", config, "--dry-run"], 2).await;
    assert!(stderr.contains("mapping"), "{stderr}");
    assert!(stderr.contains("idsync.toml"), "{stderr}");
    // Asked for JSON, the error comes on stdout as a JSON document as well.
    let (document, _) = run(&["sync", "--config", config, "--dry-run", "--json"], 2).await;
    assert_eq!(document["exit_code"], 2);
    assert!(
        document["error"]
            .as_str()
            .is_some_and(|e| e.contains("mapping")),
        "{document}"
    );
    // With the config put right, an unknown app is bad usage too.
    std::fs::write(config, &text).expect("written");
    let (_, stderr) = run(&["sync", "--config", config, "--app", "nope"], 2).await;
    assert!(
        stderr.contains("corp"),
        "lists the apps there are: {stderr}"
    );
    assert!(atl.users(Product::Jira).is_empty());
}

/// A second `idsync sync` of an app while the first is applying exits 4, naming the run in
/// progress, and changes nothing; the first finishes as if alone, and is never marked
/// interrupted. `--wait` waits its turn instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_of_an_app_in_progress_exits_4() {
    let (graph, atl, _ids) = world().await;
    let config = write_config("busy", &graph, &atl, 100.0);
    let config = config.to_str().expect("utf-8 path").to_owned();
    // Slow enough that the first run is still applying when the second comes.
    atl.kit().set_latency(std::time::Duration::from_millis(400));
    let first = tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["sync", "--config", &config, "--json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("first sync starts");
    // Until the first run has written to a target: it holds the lock by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while atl
        .kit()
        .counters()
        .keys()
        .all(|k| k.starts_with("GET ") || k == "total")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never wrote"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, stderr) = run(&["sync", "--config", &config], 4).await;
    assert!(
        stderr.contains("is being synced by run 1") && stderr.contains("--wait"),
        "{stderr}"
    );
    let waiting = tokio::spawn({
        let config = config.clone();
        async move { run(&["sync", "--config", &config, "--wait", "--json"], 0).await }
    });
    let out = first.wait_with_output().await.expect("first sync ends");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    atl.kit().set_latency(std::time::Duration::ZERO);
    let (second, _) = waiting.await.expect("joined");
    assert_eq!(second["run_id"], 2, "{second:#}");
    assert!(
        operations(&second).is_empty(),
        "the waiting run found the work done"
    );

    let (history, _) = run(&["history", "--config", &config, "--json"], 0).await;
    let statuses: Vec<&str> = history["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["done", "done"], "{history:#}");
}

/// `config` with `scope` put in as its `[apps.scope]` table; returns the line (1-based) of the
/// first line holding `marker`.
fn with_scope(config: &Path, scope: &str, marker: &str) -> usize {
    let text = std::fs::read_to_string(config).expect("read");
    let text = text.replacen(
        "[apps.groups]",
        &format!("[apps.scope]\n{scope}\n\n[apps.groups]"),
        1,
    );
    std::fs::write(config, &text).expect("written");
    text.lines()
        .position(|l| l.contains(marker))
        .map(|i| i + 1)
        .expect("marker in the config")
}

/// A scope group the tenant does not have is a config error: exit 2, the entry pointed at by
/// its line as any config error, nothing changed, and the run recorded as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_scope_group_exits_2_at_its_line() {
    let (graph, atl, _) = world().await;
    let config = write_config("unknown-scope-group", &graph, &atl, 100.0);
    let line = with_scope(
        &config,
        "kind = \"groups\"\ngroups = [\n  \"Devs\",\n  \"Designers\",\n]",
        "\"Designers\"",
    );
    let config = config.to_str().expect("utf-8 path");

    let (_, stderr) = run(&["sync", "--config", config], 2).await;
    assert!(
        stderr.contains(&format!(
            "{config}:{line}: apps[0].scope.groups[1]: no group is named \"Designers\""
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("groups[0]"), "\"Devs\" is fine: {stderr}");

    // With --json: the run's document alone on stdout, its problems placed in the file.
    let (doc, _) = run(&["sync", "--config", config, "--json"], 2).await;
    assert_eq!(doc["status"], "failed", "{doc:#}");
    let problem = &doc["config_problems"][0];
    assert_eq!(problem["field"], "apps[0].scope.groups[1]", "{doc:#}");
    assert_eq!(problem["line"], line, "{doc:#}");
    assert_eq!(problem["file"], config, "{doc:#}");
    assert_eq!(doc["config_problems"].as_array().map(Vec::len), Some(1));

    assert!(atl.users(Product::Jira).is_empty(), "nothing changed");
    let (history, _) = run(&["history", "--config", config, "--json"], 0).await;
    let runs = history["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{history:#}");
    for r in runs {
        assert_eq!(r["status"], "failed", "{history:#}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(
                "reading the source of app \"corp\" failed: apps[0].scope.groups[1]: no group is named \"Designers\""
            ),
            "{error}"
        );
        assert!(
            !error.contains("app 'corp'"),
            "the app is named once: {error}"
        );
    }
}

/// A scope group name that two groups of the tenant share is a config error too, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_group_name_two_groups_share_exits_2_at_its_line() {
    let (graph, atl, _) = world().await;
    let second = graph.create_group("Devs");
    let config = write_config("shared-scope-group", &graph, &atl, 100.0);
    let line = with_scope(
        &config,
        "kind = \"groups\"\ngroups = [\"Devs\"]",
        "groups = [",
    );
    let config = config.to_str().expect("utf-8 path");

    let (_, stderr) = run(&["sync", "--config", config, "--dry-run"], 2).await;
    assert!(
        stderr.contains(&format!(
            "{config}:{line}: apps[0].scope.groups[0]: 2 groups are named \"Devs\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&second), "names both groups: {stderr}");
    assert!(stderr.contains("object id"), "says what to write: {stderr}");
    assert!(atl.users(Product::Jira).is_empty(), "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_is_synced_with_user_and_printed_or_json() {
    let (graph, atl, ids) = world().await;
    let config = write_config("one-user", &graph, &atl, 100.0);
    let path = config.to_str().expect("utf-8 path");

    // --user needs --app.
    run(&["sync", "--config", path, "--user", "ada@contoso.com"], 2).await;

    let (doc, _) = run(
        &[
            "sync",
            "--config",
            path,
            "--app",
            "corp",
            "--user",
            "ada@contoso.com",
            "--json",
        ],
        0,
    )
    .await;
    assert_eq!(doc["outcome"], "synced");
    assert_eq!(doc["resolved_by"], "user_principal_name");
    assert_eq!(doc["source_id"], ids[0].as_str());
    assert_eq!(doc["run"]["trigger"], "login");
    let ops = operations(&doc["run"]);
    for target in ["jira", "bitbucket"] {
        for (op, subject) in [
            ("create_user", "ada@contoso.com"),
            ("add_membership", "ada@contoso.com in developers"),
        ] {
            assert!(
                ops.iter()
                    .any(|(o, t, s, _)| o == op && t == target && s == subject),
                "{op} {subject} on {target}: {ops:?}"
            );
        }
        // Bob, in scope too, is left to full runs.
        assert!(!ops.iter().any(|(_, _, s, _)| s.contains("bob")), "{ops:?}");
    }
    assert!(atl.user(Product::Jira, "ada@contoso.com").is_some());
    assert!(atl.user(Product::Jira, "bob@contoso.com").is_none());

    // Disabled at the source: nothing, said in words.
    let out = idsync(&["sync", "--config", path, "--app", "corp", "--user", &ids[2]]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("disabled at the source: nothing done"),
        "{printed}"
    );

    // Unknown: exit 1, naming the user.
    let out = idsync(&[
        "sync", "--config", path, "--app", "corp", "--user", "nobody",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("\"nobody\""),
        "{}",
        text(&out.stderr)
    );
    if let Some(dir) = config.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
