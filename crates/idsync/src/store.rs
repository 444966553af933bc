//! Opening the config and the state store it names, with the CLI's exit-code mapping.

use std::path::Path;

use idsync_config::Config;
use idsync_store::Store;

use crate::exit::CliError;

/// Loads and checks the config: any problem is a usage error (exit 2) naming file and line.
/// Warnings (plain http to another host) go to stderr, where they do not disturb `--json`.
pub fn load_config(path: &Path) -> Result<Config, CliError> {
    let config = idsync_config::load(path).map_err(|e| CliError::Usage(e.to_string()))?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(config)
}

/// Opens the store the config names (`store.url`, else `{data_dir}/idsync.db`).
pub async fn open_store(config: &Config) -> Result<Store, CliError> {
    let store = match &config.store.url {
        Some(url) => Store::open_url(url).await,
        None => Store::open_file(&config.data_dir.join("idsync.db")).await,
    };
    store.map_err(|e| CliError::Failed(anyhow::Error::new(e)))
}

/// The apps a command works on: the one named by `--app`, or all of them.
pub fn select_apps(config: &Config, app: Option<&str>) -> Result<Vec<String>, CliError> {
    match app {
        Some(name) => {
            if config.apps.iter().any(|a| a.name == name) {
                Ok(vec![name.to_owned()])
            } else {
                let known: Vec<_> = config.apps.iter().map(|a| a.name.as_str()).collect();
                Err(CliError::Usage(format!(
                    "there is no app named {name:?} in the config; apps: {}",
                    if known.is_empty() {
                        "(none)".to_owned()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
        None if config.apps.is_empty() => Err(CliError::Usage(
            "the config has no [[apps]]: add one (see docs/config.md)".into(),
        )),
        None => Ok(config.apps.iter().map(|a| a.name.clone()).collect()),
    }
}
