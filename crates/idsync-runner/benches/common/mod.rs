//! What the benchmarks share: the config of one app reading graph-sim into the chosen
//! atlassian-sim products, written to a folder and loaded as `idsync` loads it, and the store
//! beside it.

use std::path::Path;

use atlassian_sim::RunningAtlassianSim;
use graph_sim::RunningGraphSim;

/// The app `bench` with usernames from UPNs and groups on the fly (plus `groups_extra`, TOML
/// lines of `[apps.groups]`), a guard that never holds, and one target per name in `targets`
/// (`jira`, `confluence`, `bitbucket`) with `concurrency`.
pub async fn config_and_store(
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
