//! `idsync demo`: the whole product on built-in simulators. A generated Entra tenant (graph-sim)
//! and Jira, Confluence, Bitbucket and Atlassian Cloud (atlassian-sim) are started on loopback,
//! a config pointing at them is written, and idsync syncs them exactly as it would sync real
//! services: first a full sync, then, after some changes in the tenant, an incremental one.
//! Then it keeps serving, as `idsync serve` does: the admin API, a sync every minute, and a
//! small change in the simulated tenant every minute so that the schedule has work
//! (`--once` stops after the two syncs instead).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use atlassian_sim::{AtlassianSim, Product, SimConfig, SimUser};
use clap::Args;
use graph_sim::{GraphSim, TenantSpec};
use idsync_runner::{Quiet, RunReport, Trigger};

use crate::exit::CliError;
use crate::output;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo writes its config and state store. A folder an earlier demo made is
    /// emptied first; any other folder must be empty (or not exist yet).
    #[arg(long, default_value = ".idsync/demo")]
    pub data_dir: PathBuf,
    /// Users in the simulated tenant.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Groups in the simulated tenant.
    #[arg(long, default_value_t = 24)]
    pub groups: usize,
    /// Stop after the two syncs instead of serving (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Where the demo's admin API listens (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    #[arg(long, value_enum, default_value_t = crate::serve::LogFormat::Text)]
    pub log_format: crate::serve::LogFormat,
}

pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    // First, so that a folder that is not the demo's is refused (bad usage: exit 2) before
    // anything starts.
    prepare_data_dir(&args.data_dir).map_err(|e| CliError::Usage(format!("{e:#}")))?;
    demo(args).await.map_err(CliError::Failed)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let spec = TenantSpec {
        seed: 7,
        ..TenantSpec::sized(args.users, args.groups)
    };
    let graph = GraphSim::new(&spec)
        .start()
        .await
        .context("starting the simulated Entra tenant")?;
    let atlassian = AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .context("starting the simulated Atlassian products")?;
    outln!("simulated Entra tenant:   {}", graph.base_url);
    outln!("simulated Atlassian:      {}", atlassian.base_url);

    // An account that already exists in Jira before the first sync, to show adoption.
    let snapshot = graph.snapshot();
    let upns = snapshot.users.values().filter_map(|u| {
        let enabled = u.get("accountEnabled").and_then(|v| v.as_bool()) == Some(true);
        let upn = u.get("userPrincipalName").and_then(|v| v.as_str())?;
        (enabled && !upn.contains("#EXT#")).then_some(upn)
    });
    if let Some(upn) = upns.into_iter().next() {
        let name = demo_username(upn);
        atlassian.seed_user(
            Product::Jira,
            SimUser {
                email: format!("{name}@old-address.example"),
                display_name: "Set up by hand".into(),
                ..SimUser::new(&name)
            },
        );
    }

    let config_path = args.data_dir.join("idsync.toml");
    let creds = graph.credentials();
    let sims = atlassian.config().clone();
    std::fs::write(
        &config_path,
        demo_config(
            &graph.base_url,
            &creds.tenant_id,
            &creds.client_id,
            &creds.client_secret,
            &atlassian,
            &sims,
        ),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;
    let config = idsync_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = idsync_store::Store::open_file(&config.data_dir.join("idsync.db")).await?;

    outln!("\n── first sync: every user and group in the tenant ──");
    let first = sync(&config, &store).await?;
    output::print_run(&first);

    // Some life in the directory: a rename, a leaver, a new joiner.
    // Enabled members (not guests), so that each change shows on the targets.
    let users: Vec<String> = graph
        .snapshot()
        .users
        .iter()
        .filter(|(_, u)| {
            u.get("accountEnabled").and_then(|v| v.as_bool()) == Some(true)
                && u.get("userType").and_then(|v| v.as_str()) != Some("Guest")
        })
        .map(|(id, _)| id.clone())
        .collect();
    let mut changes = Vec::new();
    if let Some(id) = users.first() {
        let upn = format!("renamed.person@{}", spec.tenant_domain);
        graph.update_user(id, serde_json::json!({ "userPrincipalName": upn }))?;
        changes.push(format!("renamed a user to {upn}"));
    }
    if let Some(id) = users.get(1) {
        graph.disable_user(id)?;
        changes.push("disabled a user".to_owned());
    }
    let joiner = graph.add_user(graph_sim::NewUser {
        user_principal_name: format!("new.joiner@{}", spec.tenant_domain),
        display_name: Some("New Joiner".into()),
        mail: Some(format!("new.joiner@{}", spec.tenant_domain)),
        ..graph_sim::NewUser::default()
    })?;
    if let Some(group) = graph.group_ids().first() {
        graph.add_member(group, &joiner)?;
    }
    changes.push("added a new joiner to a group".to_owned());
    outln!("\n── in Entra meanwhile: {} ──", changes.join("; "));
    outln!("── second sync: only the changes are read (delta) ──");
    let second = sync(&config, &store).await?;
    output::print_run(&second);

    outln!("\nconfig: {}", config_path.display());
    outln!("state:  {}", config.data_dir.join("idsync.db").display());
    outln!(
        "history: idsync history --config {}   (the simulators stop when the demo ends)",
        config_path.display()
    );
    if [&first, &second].iter().any(|r| incomplete(r)) {
        anyhow::bail!("the demo sync did not complete; see the errors above");
    }
    if args.once {
        return Ok(());
    }
    serve(
        config,
        config_path,
        store,
        &graph,
        &spec.tenant_domain,
        args.listen,
    )
    .await
}

/// A run that did not do all it planned.
fn incomplete(report: &RunReport) -> bool {
    matches!(
        report.status,
        idsync_runner::RunStatus::Failed | idsync_runner::RunStatus::Partial
    )
}

/// Serves the demo's config until Ctrl-C: the admin API, a sync every minute (the config's
/// `schedule`), and a change in the simulated tenant every minute.
async fn serve(
    config: idsync_config::Config,
    config_path: PathBuf,
    store: idsync_store::Store,
    graph: &graph_sim::RunningGraphSim,
    domain: &str,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let running = idsync_server::start(
        Arc::new(config),
        Some(config_path),
        store,
        idsync_server::ServeOptions {
            listen,
            ..idsync_server::ServeOptions::default()
        },
    )
    .await?;
    outln!(
        "\n── serving: a sync every minute, a change in the tenant every minute; Ctrl-C stops ──"
    );
    crate::serve::print_endpoints("http", running.addr, running.new_admin_token.as_deref());
    outln!(
        "try:   curl -s -H \"Authorization: Bearer $TOKEN\" http://{}/api/v1/apps",
        running.addr
    );
    let mut finished = running.coordinator.subscribe();
    let report_runs = async {
        while let Ok(run) = finished.recv().await {
            match run.outcome {
                Ok(report) => outln!(
                    "run {} ({}): {}, {} operation(s)",
                    report.run_id,
                    run.trigger.as_str(),
                    report.status.as_str(),
                    report.totals.values().map(|t| t.planned).sum::<usize>()
                ),
                Err(e) => outln!("run of {} failed: {e}", run.app),
            }
        }
    };
    let mut changes = DemoChanges::new(graph, domain);
    let change_tenant = async {
        // Half a minute apart from the syncs, so that each sync has a change to pick up.
        let mut every_minute = tokio::time::interval_at(
            tokio::time::Instant::now() + std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(60),
        );
        loop {
            every_minute.tick().await;
            match changes.next() {
                Ok(what) => outln!("in Entra: {what}"),
                Err(e) => outln!("in Entra: the change failed: {e}"),
            }
        }
    };
    tokio::select! {
        () = crate::serve::wait_for_stop() => {}
        () = report_runs => {}
        () = change_tenant => {}
    }
    outln!("stopping");
    running.shutdown().await;
    Ok(())
}

/// The small changes the demo makes in its tenant while serving: a joiner, a new display name,
/// a leaver, in turn.
struct DemoChanges<'a> {
    graph: &'a graph_sim::RunningGraphSim,
    domain: &'a str,
    step: usize,
}

impl<'a> DemoChanges<'a> {
    fn new(graph: &'a graph_sim::RunningGraphSim, domain: &'a str) -> Self {
        DemoChanges {
            graph,
            domain,
            step: 0,
        }
    }

    fn next(&mut self) -> anyhow::Result<String> {
        self.step += 1;
        let n = self.step;
        let enabled: Vec<String> = self
            .graph
            .snapshot()
            .users
            .iter()
            .filter(|(_, u)| u.get("accountEnabled").and_then(|v| v.as_bool()) == Some(true))
            .map(|(id, _)| id.clone())
            .collect();
        let pick = enabled.get(n % enabled.len().max(1)).cloned();
        match (n % 3, pick) {
            (1, Some(id)) => {
                let name = format!("Demo Person {n}");
                self.graph
                    .update_user(&id, serde_json::json!({ "displayName": name }))?;
                Ok(format!("a user is now called {name}"))
            }
            (2, Some(id)) => {
                self.graph.disable_user(&id)?;
                Ok("a user left (disabled)".into())
            }
            _ => {
                let upn = format!("joiner.{n}@{}", self.domain);
                let id = self.graph.add_user(graph_sim::NewUser {
                    user_principal_name: upn.clone(),
                    display_name: Some(format!("Joiner {n}")),
                    mail: Some(upn.clone()),
                    ..graph_sim::NewUser::default()
                })?;
                if let Some(group) = self.graph.group_ids().first() {
                    self.graph.add_member(group, &id)?;
                }
                Ok(format!("{upn} joined"))
            }
        }
    }
}

/// The file that marks a folder as made by `idsync demo`, and so safe for the next demo to
/// empty.
const MARKER: &str = ".idsync-demo";

/// Makes `dir` an empty folder holding only the marker. `--data-dir` is whatever the user
/// typed, so a folder is deleted only when an earlier demo made it (it holds the marker); an
/// empty folder is used as it is, and anything else (a file, a link, a folder with other
/// things in it) is refused.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("looking at {shown}")),
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "--data-dir {shown} exists and is not a folder (a file or a symbolic link); give \
             a folder for the demo, e.g. --data-dir .idsync/demo"
        ),
        Ok(_) if dir.join(MARKER).is_file() || made_by_an_earlier_demo(dir) => {
            std::fs::remove_dir_all(dir).with_context(|| format!("emptying {shown}"))?;
        }
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("looking into {shown}"))?;
            if entries.next().is_some() {
                anyhow::bail!(
                    "--data-dir {shown} is not empty and was not made by `idsync demo` (it has \
                     no {MARKER} file), so the demo will not delete what is in it; give a new \
                     or empty folder, e.g. --data-dir .idsync/demo"
                );
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {shown}"))?;
    std::fs::write(
        dir.join(MARKER),
        "Made by `idsync demo`: the next demo with this --data-dir deletes this folder.\n",
    )
    .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    Ok(())
}

/// A folder that demos of versions before the marker made: nothing in it but the files a demo
/// writes (its config, its state store and the store's companions). Without this, the README's
/// `demo` command would refuse, after an upgrade, the very folder it made.
fn made_by_an_earlier_demo(dir: &Path) -> bool {
    const DEMO_FILES: [&str; 5] = [
        "idsync.toml",
        "idsync.db",
        "idsync.db-wal",
        "idsync.db-shm",
        "idsync.db.locks",
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.iter().any(|n| n == "idsync.toml")
        && names.iter().all(|n| DEMO_FILES.contains(&n.as_str()))
}

async fn sync(
    config: &idsync_config::Config,
    store: &idsync_store::Store,
) -> anyhow::Result<RunReport> {
    Ok(idsync_runner::sync_app(
        config,
        "contoso",
        store,
        idsync_runner::RunOptions {
            trigger: Trigger::Manual,
            dry_run: false,
            full_read: false,
            wait: false,
        },
        Arc::new(Quiet),
    )
    .await?)
}

/// The username the demo config derives from a UPN (see `demo_config`).
fn demo_username(upn: &str) -> String {
    upn.split('@').next().unwrap_or(upn).to_lowercase()
}

fn demo_config(
    graph_url: &str,
    tenant_id: &str,
    client_id: &str,
    client_secret: &str,
    atlassian: &atlassian_sim::RunningAtlassianSim,
    sims: &SimConfig,
) -> String {
    let data_dir = Path::new(".").display();
    format!(
        r##"# Written by `idsync demo`: a simulated Entra tenant synced into simulated Atlassian products.
data_dir = "{data_dir}"

[[targets]]
name = "jira"
kind = "jira-dc"
base_url = "{jira}"
token = "{jira_token}"

[[targets]]
name = "confluence"
kind = "confluence-dc"
base_url = "{confluence}"
token = "{confluence_token}"

[[targets]]
name = "bitbucket"
kind = "bitbucket-dc"
base_url = "{bitbucket}"
# Bitbucket refuses HTTP access tokens on its admin endpoints: an admin account's password.
username = "{bitbucket_user}"
password = "{bitbucket_password}"

[[targets]]
name = "cloud"
kind = "atlassian-cloud"
base_url = "{scim}"
token = "{scim_token}"

[[apps]]
name = "contoso"
kind = "entra"
tenant_id = "{tenant_id}"
client_id = "{client_id}"
client_secret = "{client_secret}"
authority_url = "{graph_url}"
graph_url = "{graph_url}"
scope = {{ kind = "directory" }}
# Under `idsync serve` (and the demo after its first two syncs): a sync every minute.
schedule = "1m"

[apps.users]
username = {{ attribute = "userPrincipalName", strip_domain = true, lowercase = true, replace = [{{ pattern = "#EXT#$", with = "" }}] }}
custom_attributes = {{ department = "department" }}

[apps.groups]
mapping = "on_the_fly"
default_groups_all_users = ["idsync-users"]

# Atlassian Cloud user names are email addresses.
[apps.overrides.cloud.users]
username = {{ attribute = "mail", fallback = ["userPrincipalName"], lowercase = true }}
custom_attributes = {{ department = "department" }}
"##,
        jira = atlassian.jira_url(),
        confluence = atlassian.confluence_url(),
        bitbucket = atlassian.bitbucket_url(),
        scim = atlassian.scim_url(),
        jira_token = sims.jira_token,
        confluence_token = sims.confluence_token,
        bitbucket_user = sims.admin_user,
        bitbucket_password = sims.admin_password,
        scim_token = sims.scim_token,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("idsync-demo-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_folder_an_earlier_demo_made_is_emptied_too() {
        let dir = folder("earlier");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in ["idsync.toml", "idsync.db", "idsync.db-wal"] {
            std::fs::write(dir.join(name), "old").expect("write");
        }
        prepare_data_dir(&dir).expect("emptied");
        assert!(!dir.join("idsync.db").exists());
        assert!(dir.join(MARKER).is_file());
        // One file more that a demo never writes: refused.
        let other = folder("earlier-plus");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("idsync.toml"), "old").expect("write");
        std::fs::write(other.join("notes.txt"), "mine").expect("write");
        prepare_data_dir(&other).expect_err("refused");
        assert!(other.join("notes.txt").is_file());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
    }

    #[test]
    fn only_a_folder_a_demo_made_is_emptied() {
        // Not there yet: created, with the marker.
        let dir = folder("new");
        prepare_data_dir(&dir).expect("created");
        assert!(dir.join(MARKER).is_file());

        // Made by a demo: emptied and marked again.
        std::fs::write(dir.join("idsync.db"), "old state").expect("write");
        prepare_data_dir(&dir).expect("emptied");
        assert!(!dir.join("idsync.db").exists());
        assert!(dir.join(MARKER).is_file());
        std::fs::remove_dir_all(&dir).expect("cleanup");

        // Empty: used as it is.
        let dir = folder("empty");
        std::fs::create_dir_all(&dir).expect("mkdir");
        prepare_data_dir(&dir).expect("used");
        assert!(dir.join(MARKER).is_file());
        std::fs::remove_dir_all(&dir).expect("cleanup");

        // Somebody else's: refused, and left exactly as it was.
        let dir = folder("precious");
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("thesis.tex"), "years of work").expect("write");
        let error = prepare_data_dir(&dir).expect_err("refused").to_string();
        assert!(error.contains("not made by `idsync demo`"), "{error}");
        assert!(error.contains(MARKER), "{error}");
        assert_eq!(
            std::fs::read_to_string(dir.join("thesis.tex")).expect("still there"),
            "years of work"
        );
        assert!(dir.join("sub").is_dir());
        assert!(!dir.join(MARKER).exists());

        // A file: refused.
        let file = dir.join("thesis.tex");
        let error = prepare_data_dir(&file).expect_err("refused").to_string();
        assert!(error.contains("not a folder"), "{error}");
        assert!(file.is_file());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
