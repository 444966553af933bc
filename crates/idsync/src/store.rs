//! Opening the config and the state store it names, with the CLI's exit-code mapping.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use idsync_config::Config;
use idsync_store::sealed::KeySource;
use idsync_store::{Store, StoreError};

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

/// The config in force, as `idsync serve` has it: the file's apps and targets, and those
/// created through the admin API, which the store keeps, composed and checked as the service
/// does ([`idsync_server::live::LiveConfig`]). Their secrets are sealed with the service's key:
/// `IDSYNC_SECRET_KEY`, `IDSYNC_SECRET_KEY_FILE`, else `{data_dir}/secret.key`. A key that is
/// missing or wrong, or entries that no longer fit the file, are a usage error (exit 2) that
/// says where the key was looked for or what does not fit.
pub async fn with_stored_entries(config: Config, store: &Store) -> Result<Config, CliError> {
    let key = KeySource::from_env(&|name| std::env::var(name).ok(), &config.data_dir);
    let live = idsync_server::live::LiveConfig::load(Arc::new(config), store.clone(), key)
        .await
        .map_err(|e| {
            if e.downcast_ref::<StoreError>().is_some() {
                CliError::Failed(e)
            } else {
                CliError::Usage(format!("{e:#}"))
            }
        })?;
    Ok(Arc::unwrap_or_clone(live.current()))
}

/// [`with_stored_entries`] for a command that keeps no state (`check`): a store whose file
/// does not exist holds no entries, and is not created to find that out.
pub async fn with_stored_entries_if_any(config: Config) -> Result<Config, CliError> {
    if store_file(&config).is_some_and(|file| !file.exists()) {
        return Ok(config);
    }
    let store = open_store(&config).await?;
    with_stored_entries(config, &store).await
}

/// The store's file, when the config names one (`None`: another kind of store, such as one in
/// memory).
fn store_file(config: &Config) -> Option<PathBuf> {
    match &config.store.url {
        None => Some(config.data_dir.join("idsync.db")),
        Some(url) => url
            .strip_prefix("sqlite://")
            .filter(|path| !path.starts_with(':'))
            .map(PathBuf::from),
    }
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
