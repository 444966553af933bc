//! `idsync sync`, `check` and `approve` see the apps and targets created through the admin API
//! (kept in the store, their secrets sealed), as `idsync serve` does: the built binary against
//! graph-sim and atlassian-sim over loopback, with the key found where the service finds it
//! and a clear exit 2 naming the key's variable when it cannot open them.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use atlassian_sim::{AtlassianSim, Product, RunningAtlassianSim, SimConfig};
use graph_sim::{GraphSim, NewUser, RunningGraphSim};
use idsync_server::live::LiveConfig;
use idsync_store::sealed::KeySource;
use idsync_store::{EntryKind, Store};
use serde_json::{Value, json};

async fn tenant(user: &str) -> RunningGraphSim {
    let graph = GraphSim::from_json("{}")
        .expect("tenant")
        .start()
        .await
        .expect("graph-sim starts");
    graph
        .add_user(NewUser {
            mail: Some(user.to_owned()),
            ..NewUser::new(user, user)
        })
        .expect("user");
    graph
}

/// A config file with one app, `corp`, feeding the target `jira`.
fn write_config(dir: &Path, corp: &RunningGraphSim, atl: &RunningAtlassianSim) -> PathBuf {
    let c = corp.credentials();
    let text = format!(
        "data_dir = \"data\"\n\n[[apps]]\nname = \"corp\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = '{}'\nauthority_url = \"{}\"\ngraph_url = \"{}\"\ntargets = [\"jira\"]\n\n[[targets]]\nname = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"{}\"\ntoken = \"{}\"\n",
        c.tenant_id,
        c.client_id,
        c.client_secret,
        corp.authority_url(),
        corp.graph_url(),
        atl.jira_url(),
        atl.config().jira_token,
    );
    let path = dir.join("idsync.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Creates the target `wiki` and the app `hr` feeding it, as `POST /api/v1/targets` and
/// `POST /api/v1/apps` do, with the service's own key file in the data directory.
async fn create_through_the_api(config: &Path, hr: &RunningGraphSim, atl: &RunningAtlassianSim) {
    let config = idsync_config::load(config).expect("the config loads");
    let store = Store::open_file(&config.data_dir.join("idsync.db"))
        .await
        .expect("store");
    let key = KeySource::DataDir(config.data_dir.join("secret.key"));
    let live = LiveConfig::load(Arc::new(config), store, key)
        .await
        .expect("the live config");
    live.create(
        EntryKind::Target,
        json!({
            "name": "wiki",
            "kind": "confluence-dc",
            "base_url": atl.confluence_url(),
            "token": atl.config().confluence_token,
        }),
    )
    .await
    .expect("target created");
    let c = hr.credentials();
    live.create(
        EntryKind::App,
        json!({
            "name": "hr",
            "kind": "entra",
            "tenant_id": c.tenant_id,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "authority_url": hr.authority_url(),
            "graph_url": hr.graph_url(),
            "targets": ["wiki"],
        }),
    )
    .await
    .expect("app created");
}

/// Runs the built idsync with these extra environment variables; checks the exit code.
async fn idsync(args: &[&str], env: &[(&str, &str)], code: i32) -> Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("IDSYNC_SECRET_KEY")
        .env_remove("IDSYNC_SECRET_KEY_FILE")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("idsync runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "idsync {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "one JSON document on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_check_see_the_apps_and_targets_created_through_the_api() {
    let dir = std::env::temp_dir().join(format!("idsync-stored-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let corp = tenant("ada@contoso.com").await;
    let hr = tenant("erin@fabrikam.com").await;
    let atl = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("atlassian-sim starts");
    let config = write_config(&dir, &corp, &atl);
    create_through_the_api(&config, &hr, &atl).await;
    let config = config.to_str().expect("a UTF-8 path");

    // One app of the API, by name: its user reaches its target of the API.
    let out = idsync(
        &["sync", "--config", config, "--app", "hr", "--json"],
        &[],
        0,
    )
    .await;
    let run = json_of(&out);
    assert_eq!(run["app"], "hr", "{run}");
    assert_eq!(run["status"], "done", "{run}");
    assert!(atl.user(Product::Confluence, "erin@fabrikam.com").is_some());
    assert!(atl.user(Product::Jira, "erin@fabrikam.com").is_none());

    // Every app: the file's and the API's.
    let out = idsync(&["sync", "--config", config, "--json"], &[], 0).await;
    let apps: Vec<String> = json_of(&out)["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| r["app"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(apps, ["corp", "hr"]);
    assert!(atl.user(Product::Jira, "ada@contoso.com").is_some());

    // `check` reads the API's app and probes the API's target.
    let out = idsync(
        &["check", "--config", config, "--app", "hr", "--json"],
        &[],
        0,
    )
    .await;
    let check = json_of(&out);
    assert_eq!(check["apps"][0]["app"], "hr", "{check}");
    let targets: Vec<&str> = check["targets"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["target"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(targets, ["wiki"], "{check}");

    // Without the key the secrets cannot be opened: exit 2, saying where the key was looked
    // for and which variables give it. Nothing is synced, the file's app neither.
    let key_file = dir.join("data").join("secret.key");
    let key = std::fs::read(&key_file).expect("the service's key file");
    std::fs::remove_file(&key_file).expect("key file removed");
    for args in [
        ["sync", "--config", config, "--app", "corp"],
        ["check", "--config", config, "--app", "hr"],
    ] {
        let out = idsync(&args, &[], 2).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("IDSYNC_SECRET_KEY"), "{args:?}: {stderr}");
        assert!(stderr.contains("secret.key"), "{args:?}: {stderr}");
    }

    // The key given in IDSYNC_SECRET_KEY opens them; another key is named as the one that
    // does not.
    let given = match key.len() {
        32 => hex(&key),
        _ => String::from_utf8_lossy(&key).trim().to_owned(),
    };
    idsync(
        &["sync", "--config", config, "--app", "hr"],
        &[("IDSYNC_SECRET_KEY", &given)],
        0,
    )
    .await;
    let wrong = "00".repeat(32);
    let out = idsync(
        &["sync", "--config", config, "--app", "hr"],
        &[("IDSYNC_SECRET_KEY", &wrong)],
        2,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("with the key from IDSYNC_SECRET_KEY"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
