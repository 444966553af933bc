//! `idsync check` as a user runs it: the built binary against graph-sim (and, for the Jira
//! default leads, atlassian-sim) over loopback.

use std::path::PathBuf;
use std::process::Output;

use atlassian_sim::{AtlassianSim, Product, SimConfig, SimUser};
use graph_sim::{GraphSim, RunningGraphSim, TenantSpec};

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

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
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

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
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
    let sim = GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim");
    // Plain http to another host: allowed, with a warning. Nothing is sent to the target.
    let config = write_config(
        &sim,
        "targets",
        None,
        "[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"http://jira.example.com\"\n\
         token = \"pat\"\n",
    );
    let path = config.to_str().expect("utf-8 path");

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["targets"][0]["target"], "jira");
    assert_eq!(doc["targets"][0]["ok"], true);
    let warning = doc["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("targets[0].base_url"), "{doc:#}");
    assert!(warning.contains("plain http"), "{doc:#}");

    let out = idsync(&["check", "--config", path]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("target jira (jira-dc, http://jira.example.com/): client set up"),
        "{shown}"
    );
    assert!(shown.contains("warning: "), "{shown}");
    cleanup(&config);
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let sim = GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim");
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
    let sim = GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim");
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

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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

    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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

/// `idsync check` looks the Jira default leads up on the target: a missing or inactive one
/// fails the check (exit 1) naming the app, target, field and fix; an active one is fine. An
/// override's `users` table decides for its target.
#[tokio::test]
async fn jira_default_leads_must_be_active_accounts() {
    let sim = GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim");
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    let targets = format!(
        "[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n\n\
         [[targets]]\nname = \"wiki\"\nkind = \"confluence-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n",
        atl.jira_url(),
        atl.config().jira_token,
        atl.confluence_url(),
        atl.config().confluence_token,
    );
    let config = write_config(
        &sim,
        "leads",
        None,
        &format!("[apps.users]\ndefault_project_lead = \"jira-admin\"\n\n{targets}"),
    );
    let path = config.to_str().expect("utf-8 path");

    // Missing.
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
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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

    // Present and active.
    atl.seed_user(Product::Jira, SimUser::new("jira-admin"));
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
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
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let leads: Vec<(&str, &str, &str)> = doc["leads"]
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
        .collect();
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
    let sim = GraphSim::new(&TenantSpec::sized(20, 3))
        .start()
        .await
        .expect("sim");
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
    let out = idsync(&["check", "--config", path, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let lead = &doc["leads"][0];
    assert_eq!(lead["status"], "lookup_failed", "{doc:#}");
    assert_eq!(lead["error"]["kind"], "unauthorized", "{doc:#}");
    let message = lead["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not be looked up"), "{message}");
    assert!(!message.contains("does not exist"), "{message}");
    cleanup(&config);
}
