//! `idsync check` as a user runs it: the built binary against graph-sim (and, for the Jira
//! default leads, atlassian-sim) over loopback.

use std::path::PathBuf;
use std::process::Output;

use atlassian_sim::{AtlassianSim, Product, RunningAtlassianSim, SimConfig, SimUser};
use graph_sim::{GraphSim, RunningGraphSim, TenantSpec};
use serde_json::{Value, json};

/// A config file for the simulator in a fresh folder; `secret` overrides the right one.
fn write_config(sim: &RunningGraphSim, name: &str, secret: Option<&str>, extra: &str) -> PathBuf {
    let c = sim.credentials();
    let dir = std::env::temp_dir().join(format!("idsync-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("idsync.toml");
    let text = format!(
        "[[apps]]\nname = \"corp\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = '{}'\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n{extra}\n",
        c.tenant_id,
        c.client_id,
        secret.unwrap_or(&c.client_secret),
        sim.authority_url(),
        sim.graph_url(),
    );
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

/// `idsync check --json` on the config at `path`: the document it prints, once it exited
/// with `code`.
async fn check_json(path: &str, code: i32) -> serde_json::Value {
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}",
        text(&out.stderr)
    );
    document(&out)
}

/// The JSON document `check --json` printed.
fn document(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// A tenant of 20 users in 3 groups: enough for the checks that are about the targets.
async fn small_tenant() -> RunningGraphSim {
    GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim")
}

#[tokio::test]
async fn check_prints_the_counts_of_the_scope() {
    let sim = GraphSim::new(&TenantSpec::sized(300, 20))
        .start()
        .await
        .expect("sim");
    let truth = sim.snapshot();
    let disabled = truth
        .users
        .values()
        .filter(|u| u["accountEnabled"] == serde_json::Value::Bool(false))
        .count();
    let config = write_config(&sim, "counts", None, "");
    let path = config.to_str().expect("utf-8 path");

    let doc = check_json(path, 0).await;
    assert_eq!(doc["ok"], true);
    let stats = &doc["apps"][0]["stats"];
    assert_eq!(doc["apps"][0]["app"], "corp");
    assert_eq!(stats["users_in_scope"], truth.users.len());
    assert_eq!(stats["disabled"], disabled);
    assert_eq!(stats["enabled"], truth.users.len() - disabled);
    assert_eq!(stats["groups"], truth.groups.len());
    assert_eq!(stats["mode"], "full");
    assert_eq!(stats["requests"]["token"], 1);
    assert!(stats["requests_total"].as_u64().unwrap_or(0) >= 3);

    let out = idsync(&["check", "--config", path, "--app", "corp"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("users in scope"), "{shown}");
    assert!(shown.contains(&truth.users.len().to_string()), "{shown}");

    let out = idsync(&["check", "--config", path, "--app", "other"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no app named \"other\""));
    cleanup(&config);
}

fn cleanup(config: &std::path::Path) {
    if let Some(dir) = config.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn a_wrong_secret_fails_with_the_aadsts_explanation() {
    let sim = GraphSim::new(&TenantSpec::default())
        .start()
        .await
        .expect("sim");
    let config = write_config(&sim, "secret", Some("0a1b2c3d-secret-id"), "");
    let path = config.to_str().expect("utf-8 path");
    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(stderr.contains("instead of its Value"), "{stderr}");
    assert!(
        !stderr.contains("0a1b2c3d-secret-id"),
        "the secret is never shown"
    );

    let doc = check_json(path, 1).await;
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["apps"][0]["error"]["kind"], "sign_in");
    assert_eq!(doc["apps"][0]["error"]["aadsts"], 7000215);
    cleanup(&config);
}

#[tokio::test]
async fn a_bad_config_exits_2_with_file_and_line() {
    let sim = GraphSim::new(&TenantSpec::default())
        .start()
        .await
        .expect("sim");
    let config = write_config(
        &sim,
        "bad",
        None,
        "[apps.scope]\nkind = \"groups\"\ngroups = []",
    );
    let path = config.to_str().expect("utf-8 path");
    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{path}:11: apps[0].scope.groups")),
        "{stderr}"
    );

    let doc = check_json(path, 2).await;
    assert_eq!(doc["error"]["kind"], "config");
    assert_eq!(doc["error"]["problems"][0]["line"], 11);
    cleanup(&config);
}

/// The store opens SQLite only: a PostgreSQL `store.url` is a located config problem (exit
/// 2) before anything is read, not a failure of the first run.
#[tokio::test]
async fn a_postgres_store_url_is_a_config_problem() {
    let sim = GraphSim::new(&TenantSpec::default())
        .start()
        .await
        .expect("sim");
    let config = write_config(
        &sim,
        "postgres",
        None,
        "[store]\nurl = \"postgres://idsync:hunter2@db.example.com/idsync\"",
    );
    let path = config.to_str().expect("utf-8 path");
    for command in ["check", "sync"] {
        let out = idsync(&[command, "--config", path]).await;
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("{path}:10: store.url")),
            "{stderr}"
        );
        assert!(stderr.contains("only SQLite"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    assert!(sim.kit().counters().is_empty(), "nothing was read");
    cleanup(&config);
}

#[tokio::test]
async fn check_sets_up_every_target_client_and_shows_warnings() {
    let sim = small_tenant().await;
    // Plain http to another host: allowed, with a warning. `.invalid` never resolves, so the
    // target is unreachable, which fails the check but not the config.
    let config = write_config(
        &sim,
        "targets",
        None,
        "[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"http://jira.invalid\"\n\
         token = \"pat\"\n",
    );
    let path = config.to_str().expect("utf-8 path");

    let doc = check_json(path, 1).await;
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["apps"][0]["ok"], true);
    assert_eq!(doc["targets"][0]["target"], "jira");
    assert_eq!(doc["targets"][0]["ok"], false);
    assert_eq!(
        doc["targets"][0]["reachable"]["status"], "failed",
        "{doc:#}"
    );
    let warning = doc["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("targets[0].base_url"), "{doc:#}");
    assert!(warning.contains("plain http"), "{doc:#}");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("target jira (jira-dc, http://jira.invalid/)"),
        "{shown}"
    );
    assert!(shown.contains("warning: "), "{shown}");
    cleanup(&config);
}

/// The four targets of `idsync demo`, on `atl`, with the administrator's credentials.
fn demo_targets(atl: &RunningAtlassianSim) -> String {
    let c = atl.config();
    format!(
        "[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n\n\
         [[targets]]\nname = \"confluence\"\nkind = \"confluence-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n\n\
         [[targets]]\nname = \"bitbucket\"\nkind = \"bitbucket-dc\"\nbase_url = \"{}\"\n\
         username = \"{}\"\npassword = \"{}\"\n\n\
         [[targets]]\nname = \"cloud\"\nkind = \"atlassian-cloud\"\nbase_url = \"{}\"\ntoken = \"{}\"\n",
        atl.jira_url(),
        c.jira_token,
        atl.confluence_url(),
        c.confluence_token,
        atl.bitbucket_url(),
        c.admin_user,
        c.admin_password,
        atl.scim_url(),
        c.scim_token,
    )
}

async fn atlassian() -> RunningAtlassianSim {
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    // As every Confluence has: a group whose members only an administrator may list.
    atl.seed_user(Product::Confluence, SimUser::new("ada"));
    atl.seed_membership(Product::Confluence, "confluence-users", "ada");
    atl
}

/// The tenant, atlassian-sim, and a config (in folder `name`) whose targets are the demo's as
/// `edit` changes their text, given the simulator's credentials.
async fn demo_world(
    name: &str,
    edit: impl FnOnce(String, &SimConfig) -> String,
) -> (RunningGraphSim, RunningAtlassianSim, PathBuf) {
    let sim = small_tenant().await;
    let atl = atlassian().await;
    let targets = edit(demo_targets(&atl), atl.config());
    let config = write_config(&sim, name, None, &targets);
    (sim, atl, config)
}

fn target<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == name))
        .unwrap_or_else(|| panic!("no target {name} in {doc:#}"))
}

/// A config like the demo's passes: every target answers, takes the credentials, has an
/// administrator behind them; the table shows product, version and seats where exposed.
#[tokio::test]
async fn check_probes_every_target_and_prints_its_table() {
    let (_sim, atl, config) = demo_world("probe", |targets, _| targets).await;
    atl.set_licence_seats(Product::Jira, Some(10));
    for name in ["ada", "bob", "cyd"] {
        atl.seed_user(Product::Jira, SimUser::new(name));
    }
    atl.set_licence_seats(Product::Bitbucket, Some(50));
    atl.seed_user(Product::Bitbucket, SimUser::new("ada"));
    atl.seed_membership(Product::Bitbucket, "stash-users", "ada");
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        &format!("target jira (jira-dc, {})", atl.jira_url()),
        "reachable",
        "accepted (account admin)",
        "yes: GET /rest/api/2/applicationrole",
        "Jira 10.3.0",
        "nothing: this version has every resource idsync uses",
        "Jira Software: 7 of 10 left (3 in use)",
        "Confluence 9.2.0",
        "yes: GET /rest/api/group/{groupName}/member",
        "not exposed by the product's REST API",
        "Bitbucket 9.4.0",
        "Bitbucket: 49 of 50 left (1 in use)",
        "Atlassian Cloud",
        "the directory API key grants every provisioning operation",
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    assert!(!shown.contains("FAILED"), "{shown}");

    let doc = check_json(path, 0).await;
    assert_eq!(doc["ok"], true, "{doc:#}");
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(4));
    let jira = target(&doc, "jira");
    assert_eq!(jira["ok"], true);
    assert_eq!(jira["reachable"]["status"], "ok");
    assert_eq!(jira["credentials"]["status"], "ok");
    assert_eq!(jira["credentials"]["account"], "admin");
    assert_eq!(jira["admin_rights"]["status"], "ok");
    assert_eq!(
        (jira["product"].clone(), jira["version"].clone()),
        (json!("Jira"), json!("10.3.0"))
    );
    assert_eq!(jira["not_synced"], json!([]));
    assert_eq!(
        jira["licence_seats"],
        json!({"status": "read", "licences": [
            {"licence": "Jira Software", "total": 10, "used": 3, "remaining": 7}
        ]})
    );
    let bitbucket = target(&doc, "bitbucket");
    assert_eq!(bitbucket["licence_seats"]["licences"][0]["remaining"], 49);
    assert_eq!(bitbucket["credentials"]["account"], "admin");
    for name in ["confluence", "cloud"] {
        assert_eq!(target(&doc, name)["licence_seats"]["status"], "not_exposed");
        assert_eq!(target(&doc, name)["admin_rights"]["status"], "ok");
    }
    assert_eq!(target(&doc, "cloud")["version"], json!(null));
    cleanup(&config);
}

/// Wrong credentials fail the check (exit 1), each with the fix for its product.
#[tokio::test]
async fn wrong_credentials_fail_the_check_with_the_fix() {
    let (_sim, _atl, config) = demo_world("wrong-credentials", |targets, c| {
        targets
            .replace(&c.jira_token, "expired-jira-token")
            .replace(
                &format!("password = \"{}\"", c.admin_password),
                "password = \"wrong\"",
            )
    })
    .await;
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("target \"jira\": credentials refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("create a new personal access token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("target \"bitbucket\": credentials refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "use `username` and `password` of an account with Admin or System admin permission"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("target \"confluence\""), "{stderr}");
    assert!(
        !stderr.contains("expired-jira-token"),
        "no secret shown: {stderr}"
    );
    let shown = text(&out.stdout);
    assert!(
        shown.contains("fix: create a new personal access token"),
        "{shown}"
    );
    assert!(shown.contains("not checked"), "{shown}");

    let doc = check_json(path, 1).await;
    let jira = target(&doc, "jira");
    assert_eq!(jira["ok"], false);
    assert_eq!(jira["reachable"]["status"], "ok");
    assert_eq!(jira["credentials"]["status"], "failed");
    assert_eq!(jira["credentials"]["error"]["kind"], "unauthorized");
    assert_eq!(jira["admin_rights"]["status"], "not_checked");
    assert_eq!(jira["error"]["step"], "credentials");
    assert!(
        jira["credentials"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("personal access token")),
        "{jira:#}"
    );
    assert_eq!(target(&doc, "confluence")["ok"], true);
    cleanup(&config);
}

/// An account the products accept but that is no administrator fails the check (exit 1) at
/// the admin rights, with the fix.
#[tokio::test]
async fn an_account_that_is_no_administrator_fails_the_check() {
    let (_sim, _atl, config) = demo_world("not-admin", |targets, c| {
        targets
            .replace(&c.jira_token, &c.jira_plain_token)
            .replace(&c.confluence_token, &c.confluence_plain_token)
            .replace(
                &format!(
                    "username = \"{}\"\npassword = \"{}\"",
                    c.admin_user, c.admin_password
                ),
                &format!(
                    "username = \"{}\"\npassword = \"{}\"",
                    c.bitbucket_plain_user, c.bitbucket_plain_password
                ),
            )
    })
    .await;
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for (name, fix) in [
        ("jira", "Jira Administrators global permission"),
        ("confluence", "Confluence Administrator global permission"),
        (
            "bitbucket",
            "use `username` and `password` of an account with Admin or System admin permission",
        ),
    ] {
        assert!(
            stderr.contains(&format!("target \"{name}\": no administrator rights")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(fix), "{name}: {stderr}");
    }
    let shown = text(&out.stdout);
    assert!(shown.contains("accepted (account developer)"), "{shown}");

    let doc = check_json(path, 1).await;
    for name in ["jira", "confluence", "bitbucket"] {
        let t = target(&doc, name);
        assert_eq!(t["credentials"]["status"], "ok", "{t:#}");
        assert_eq!(t["admin_rights"]["status"], "failed", "{t:#}");
        assert_eq!(t["error"]["step"], "admin_rights", "{t:#}");
        // What was learned before the failure is kept.
        assert!(t["product"].is_string(), "{t:#}");
    }
    assert_eq!(target(&doc, "cloud")["ok"], true);
    cleanup(&config);
}

/// A target nobody listens for fails the check (exit 1) at once, pointing at `base_url`.
#[tokio::test]
async fn an_unreachable_target_fails_the_check() {
    let sim = small_tenant().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").port()
    };
    let config = write_config(
        &sim,
        "unreachable",
        None,
        &format!(
            "[apps.users]\ndefault_project_lead = \"jira-admin\"\n\n[[targets]]\nname = \"jira\"\n\
             kind = \"jira-dc\"\nbase_url = \"http://127.0.0.1:{closed}/jira\"\ntoken = \"pat\"\n"
        ),
    );
    let path = config.to_str().expect("utf-8 path");
    let started = std::time::Instant::now();
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("target \"jira\": not reachable"),
        "{stderr}"
    );
    assert!(stderr.contains("check base_url"), "{stderr}");
    // The lead is not asked for, and not reported as a failure of its own.
    assert!(!stderr.contains("default_project_lead"), "{stderr}");
    let doc = document(&out);
    let jira = target(&doc, "jira");
    assert_eq!(jira["reachable"]["status"], "failed", "{jira:#}");
    assert_eq!(jira["reachable"]["error"]["kind"], "unavailable");
    assert_eq!(jira["credentials"]["status"], "not_checked");
    assert_eq!(jira["product"], json!(null));
    assert_eq!(doc["leads"][0]["asked"], false, "{doc:#}");
    cleanup(&config);
}

/// An old Confluence passes, and the table says what idsync will not sync there.
#[tokio::test]
async fn an_old_confluence_shows_what_will_not_be_synced() {
    let (_sim, atl, config) = demo_world("old-confluence", |targets, _| targets).await;
    atl.set_version(Product::Confluence, "8.3.0");
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("Confluence 8.3.0"), "{shown}");
    assert!(
        shown.contains(
            "Confluence 8.3.0 cannot create users through its REST API (needs Confluence 8.4 or later)"
        ),
        "{shown}"
    );
    assert!(shown.contains("needs Confluence 9.0 or later"), "{shown}");

    let doc = check_json(path, 0).await;
    let confluence = target(&doc, "confluence");
    assert_eq!(confluence["ok"], true);
    assert_eq!(confluence["version"], "8.3.0");
    assert_eq!(
        confluence["not_synced"].as_array().map(Vec::len),
        Some(4),
        "{confluence:#}"
    );
    assert_eq!(target(&doc, "jira")["not_synced"], json!([]));
    cleanup(&config);
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let sim = small_tenant().await;
    let config = write_config(&sim, "colour", None, "");
    let path = config.to_str().expect("utf-8 path");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["check", "--config", path])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .await
        .expect("idsync runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("signing in"), "logs are written: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr:?}");
    cleanup(&config);
}

#[tokio::test]
async fn a_closed_stdout_ends_check_quietly() {
    let sim = small_tenant().await;
    let config = write_config(&sim, "closed", None, "");
    let path = config.to_str().expect("utf-8 path");
    for args in [
        &["check", "--config", path][..],
        &["check", "--config", path, "--json"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        // As after `idsync check | head -0`: nobody reads any more.
        drop(reader);
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::from(writer))
            // Not `output()`: tokio's replaces stdout with a pipe of its own.
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("idsync starts")
            .wait_with_output()
            .await
            .expect("idsync runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
    cleanup(&config);
}

#[tokio::test]
async fn a_manual_mapping_naming_no_group_or_several_is_an_error() {
    let sim = GraphSim::new(&TenantSpec::default())
        .start()
        .await
        .expect("sim");
    sim.create_group("SG-DESIGN-Core");
    let first = sim.create_group("Design Leads");
    let second = sim.create_group("design leads");
    // "SG-DESIGN-Nordics" was renamed in Entra (or never existed).
    let config = write_config(
        &sim,
        "manual",
        None,
        r#"
[apps.groups]
mapping = "manual"
manual = [
  { source = "SG-DESIGN-Nordics", targets = ["design", "design-nordics"] },
  { source = "Design Leads", targets = ["design-leads"] },
  { source = "sg-design-core", targets = ["design"] },
]
"#,
    );
    let path = config.to_str().expect("utf-8 path");

    let doc = check_json(path, 1).await;
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["apps"][0]["ok"], false);
    let problems: Vec<&str> = doc["apps"][0]["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(problems.len(), 2, "{doc:#}");
    assert!(
        problems[0].starts_with("apps[0].groups.manual[0].source: ")
            && problems[0].contains("\"SG-DESIGN-Nordics\"")
            && problems[0].contains("design, design-nordics")
            && problems[0].contains("object id"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("apps[0].groups.manual[1].source: 2 source groups")
            && problems[1].contains(&first)
            && problems[1].contains(&second)
            && problems[1].contains("object id"),
        "{problems:?}"
    );

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("error: apps[0].groups.manual[0].source"),
        "{shown}"
    );
    assert!(
        text(&out.stderr).contains("manual[1].source"),
        "{}",
        text(&out.stderr)
    );
    cleanup(&config);
}

/// The line (1-based) of the first line of `path` holding `marker`.
fn line_of(path: &std::path::Path, marker: &str) -> usize {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .position(|l| l.contains(marker))
        .map(|i| i + 1)
        .expect("marker in the config")
}

/// A scope naming a group the tenant does not have, or a name two groups share, is a config
/// error: exit 2, each entry at its line, in the text and in `--json`.
#[tokio::test]
async fn a_scope_group_the_tenant_lacks_or_shares_is_a_config_error() {
    let sim = GraphSim::new(&TenantSpec::default())
        .start()
        .await
        .expect("sim");
    sim.create_group("Idsync Pilot Users");
    let first = sim.create_group("Design Leads");
    let second = sim.create_group("Design Leads");
    let config = write_config(
        &sim,
        "scope",
        None,
        "[apps.scope]\nkind = \"groups\"\ngroups = [\n  \"Idsync Pilot Users\",\n  \"Idsync Pilot Admins\",\n  \"Design Leads\",\n]",
    );
    let unknown = line_of(&config, "\"Idsync Pilot Admins\"");
    let shared = line_of(&config, "\"Design Leads\"");
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:{unknown}: apps[0].scope.groups[1]: no group is named \"Idsync Pilot Admins\"; similar names: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("\"Idsync Pilot Users\""), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:{shared}: apps[0].scope.groups[2]: 2 groups are named \"Design Leads\""
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&first) && stderr.contains(&second),
        "{stderr}"
    );
    assert!(!stderr.contains("groups[0]"), "{stderr}");
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("{path}:{unknown}: apps[0].scope.groups[1]")),
        "{shown}"
    );

    let doc = check_json(path, 2).await;
    assert_eq!(doc["ok"], false);
    let error = &doc["apps"][0]["error"];
    assert_eq!(error["kind"], "scope", "{doc:#}");
    let placed: Vec<(String, u64, String)> = error["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap_or_default().to_owned(),
                p["line"].as_u64().unwrap_or_default(),
                p["file"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        vec![
            (
                "apps[0].scope.groups[1]".to_owned(),
                unknown as u64,
                path.to_owned()
            ),
            (
                "apps[0].scope.groups[2]".to_owned(),
                shared as u64,
                path.to_owned()
            ),
        ],
        "{doc:#}"
    );
    cleanup(&config);
}

/// The `[[targets]]` of the leads tests: `jira` (Jira DC) and `wiki` (Confluence DC) on `atl`.
fn jira_and_wiki_targets(atl: &RunningAtlassianSim) -> String {
    format!(
        "[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n\n\
         [[targets]]\nname = \"wiki\"\nkind = \"confluence-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n",
        atl.jira_url(),
        atl.config().jira_token,
        atl.confluence_url(),
        atl.config().confluence_token,
    )
}

/// Checks that `idsync check` on `path` fails (exit 1) for the missing `jira-admin` lead of
/// jira, in its messages and in its JSON (only Jira asked).
async fn assert_missing_lead_reported(path: &str) {
    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "app \"corp\": target \"jira\": apps[0].users.default_project_lead: Jira user \
             'jira-admin' does not exist; it is to take over the projects led by users idsync \
             deprovisions: create the account or name an active one"
        ),
        "{stderr}"
    );
    let shown = text(&out.stdout);
    assert!(
        shown.contains("error: apps[0].users.default_project_lead"),
        "{shown}"
    );
    let doc = check_json(path, 1).await;
    assert_eq!(doc["ok"], false);
    // Confluence has no leads: only Jira is asked.
    assert_eq!(doc["leads"].as_array().map(Vec::len), Some(1), "{doc:#}");
    let lead = &doc["leads"][0];
    assert_eq!(lead["app"], "corp");
    assert_eq!(lead["target"], "jira");
    assert_eq!(lead["field"], "apps[0].users.default_project_lead");
    assert_eq!(lead["username"], "jira-admin");
    assert_eq!(lead["status"], "missing");
    assert_eq!(lead["ok"], false);
}

/// The leads of a check's JSON, as (field, username, status).
fn lead_statuses(doc: &Value) -> Vec<(&str, &str, &str)> {
    doc["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .map(|l| {
            (
                l["field"].as_str().unwrap_or_default(),
                l["username"].as_str().unwrap_or_default(),
                l["status"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// `idsync check` looks the Jira default leads up on the target: a missing or inactive one
/// fails the check (exit 1) naming the app, target, field and fix; an active one is fine. An
/// override's `users` table decides for its target.
#[tokio::test]
async fn jira_default_leads_must_be_active_accounts() {
    let sim = small_tenant().await;
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    let targets = jira_and_wiki_targets(&atl);
    let config = write_config(
        &sim,
        "leads",
        None,
        &format!("[apps.users]\ndefault_project_lead = \"jira-admin\"\n\n{targets}"),
    );
    let path = config.to_str().expect("utf-8 path");

    // Missing.
    assert_missing_lead_reported(path).await;

    // Present and active.
    atl.seed_user(Product::Jira, SimUser::new("jira-admin"));
    let doc = check_json(path, 0).await;
    assert_eq!(doc["ok"], true, "{doc:#}");
    assert_eq!(doc["leads"][0]["status"], "active");
    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("default lead apps[0].users.default_project_lead = 'jira-admin': active"),
        "{shown}"
    );

    // Inactive; and an override for jira names a component lead nobody has.
    atl.seed_user(
        Product::Jira,
        SimUser {
            active: false,
            ..SimUser::new("jira-admin")
        },
    );
    let config = write_config(
        &sim,
        "leads",
        None,
        &format!(
            "[apps.users]\ndefault_project_lead = \"jira-admin\"\n\n\
             [apps.overrides.jira.users]\ndefault_project_lead = \"jira-admin\"\n\
             default_component_lead = \"ghost\"\n\n{targets}"
        ),
    );
    let path = config.to_str().expect("utf-8 path");
    // The stderr of this run is checked too.
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let doc = document(&out);
    let leads = lead_statuses(&doc);
    assert_eq!(
        leads,
        vec![
            (
                "apps[0].overrides.jira.users.default_project_lead",
                "jira-admin",
                "inactive"
            ),
            (
                "apps[0].overrides.jira.users.default_component_lead",
                "ghost",
                "missing"
            ),
        ],
        "{doc:#}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Jira user 'jira-admin' is inactive")
            && stderr.contains("activate the account or name an active one"),
        "{stderr}"
    );
    cleanup(&config);
}

/// A Jira target that cannot be asked (here: a wrong token) is reported as such, never as a
/// missing lead.
#[tokio::test]
async fn a_lead_that_cannot_be_looked_up_is_not_called_missing() {
    let sim = small_tenant().await;
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    let config = write_config(
        &sim,
        "leads-unreachable",
        None,
        &format!(
            "[apps.users]\ndefault_component_lead = \"jira-admin\"\n\n[[targets]]\nname = \"jira\"\n\
             kind = \"jira-dc\"\nbase_url = \"{}\"\ntoken = \"not-the-token\"\n",
            atl.jira_url()
        ),
    );
    let path = config.to_str().expect("utf-8 path");
    let doc = check_json(path, 1).await;
    let lead = &doc["leads"][0];
    assert_eq!(lead["status"], "lookup_failed", "{doc:#}");
    assert_eq!(lead["error"]["kind"], "unauthorized", "{doc:#}");
    let message = lead["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not be looked up"), "{message}");
    assert!(!message.contains("does not exist"), "{message}");
    cleanup(&config);
}
