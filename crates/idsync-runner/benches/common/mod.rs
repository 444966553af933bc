//! What the benchmarks share: their flags, and the config of one app reading graph-sim into
//! the chosen atlassian-sim products, written to a folder and loaded as `idsync` loads it, and
//! the store beside it.

use std::path::Path;

use atlassian_sim::{AtlassianSim, RunningAtlassianSim, SimConfig};
use graph_sim::RunningGraphSim;

/// Gives each `--flag value` pair of the command line to `set`, which says whether it knows
/// the flag (and so took the value); a word it does not know is skipped alone (cargo bench
/// passes `--bench`).
pub fn read_flags(mut set: impl FnMut(&str, Value) -> bool) {
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while let Some(flag) = args.get(i) {
        let value = args.get(i + 1).map(String::as_str).unwrap_or_default();
        i += if set(flag, Value(value)) { 2 } else { 1 };
    }
}

/// Runs `bench` to its end on a multi-threaded runtime.
pub fn block_on(
    bench: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench)
}

/// The value given a flag.
#[derive(Clone, Copy)]
pub struct Value<'a>(pub &'a str);

impl Value<'_> {
    /// As a whole number; 0 when it is not one.
    pub fn number(self) -> u64 {
        self.0.parse().unwrap_or(0)
    }

    /// As a count of things; 0 when it is not a number.
    pub fn count(self) -> usize {
        self.number() as usize
    }
}

/// One run of the app `bench` with `options`, telling `progress` its phases.
pub async fn sync(
    config: &idsync_config::Config,
    store: &idsync_store::Store,
    options: idsync_runner::RunOptions,
    progress: impl idsync_runner::Progress + 'static,
) -> anyhow::Result<idsync_runner::RunReport> {
    let report = idsync_runner::sync_app(
        config,
        "bench",
        store,
        options,
        std::sync::Arc::new(progress),
    )
    .await?;
    Ok(report)
}

/// What a benchmark syncs into: atlassian-sim started, and the config and store of the app
/// `bench` from `graph` into `targets` with `concurrency` (see [`config_and_store`]) in a
/// fresh folder, which is removed when the `TempDir` returned is dropped.
pub async fn start_targets(
    graph: &RunningGraphSim,
    targets: &[&str],
    concurrency: usize,
    groups_extra: &str,
) -> anyhow::Result<(
    RunningAtlassianSim,
    tempfile::TempDir,
    idsync_config::Config,
    idsync_store::Store,
)> {
    let atlassian = AtlassianSim::new(SimConfig::default()).start().await?;
    let dir = tempfile::tempdir()?;
    let (config, store) = config_and_store(
        graph,
        &atlassian,
        dir.path(),
        targets,
        concurrency,
        groups_extra,
    )
    .await?;
    Ok((atlassian, dir, config, store))
}

/// The app `bench` with usernames from UPNs and groups on the fly (plus `groups_extra`, TOML
/// lines of `[apps.groups]`), a guard that never holds, and one target per name in `targets`
/// (`jira`, `confluence`, `bitbucket`) with `concurrency`.
async fn config_and_store(
    graph: &RunningGraphSim,
    atlassian: &RunningAtlassianSim,
    dir: &Path,
    targets: &[&str],
    concurrency: usize,
    groups_extra: &str,
) -> anyhow::Result<(idsync_config::Config, idsync_store::Store)> {
    let creds = graph.credentials();
    let sims = atlassian.config().clone();
    let mut toml = format!(
        "data_dir = {dir:?}\n\n[[apps]]\nname = \"bench\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n\n[apps.users]\nusername = {{ attribute = \"userPrincipalName\", strip_domain = true, lowercase = true, replace = [{{ pattern = \"#EXT#$\", with = \"\" }}] }}\n\n[apps.groups]\nmapping = \"on_the_fly\"\n{groups_extra}\n[apps.guard]\nmax_deprovision_percent = 100.0\nmax_deprovision_count = 1000000\n",
        creds.tenant_id,
        creds.client_id,
        creds.client_secret,
        graph.base_url,
        graph.base_url,
        dir = dir.display().to_string(),
    );
    for t in targets {
        let token = |token: &str| format!("token = \"{token}\"");
        let (kind, url, credentials) = match *t {
            "jira" => ("jira-dc", atlassian.jira_url(), token(&sims.jira_token)),
            "confluence" => (
                "confluence-dc",
                atlassian.confluence_url(),
                token(&sims.confluence_token),
            ),
            // Bitbucket refuses HTTP access tokens on its admin endpoints: Basic auth.
            "bitbucket" => (
                "bitbucket-dc",
                atlassian.bitbucket_url(),
                format!(
                    "username = \"{}\"\npassword = \"{}\"",
                    sims.admin_user, sims.admin_password
                ),
            ),
            other => anyhow::bail!("unknown target {other:?}: use jira, confluence, bitbucket"),
        };
        toml.push_str(&format!(
            "\n[[targets]]\nname = \"{t}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\n{credentials}\nconcurrency = {concurrency}\n"
        ));
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, toml)?;
    let config = idsync_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = idsync_store::Store::open_file(&dir.join("idsync.db")).await?;
    Ok((config, store))
}
