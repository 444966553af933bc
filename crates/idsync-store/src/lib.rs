//! idsync's own state, in SQLite (a file under the data directory; migrations embedded):
//! - what each app last read from its source, with its delta links (`source`);
//! - what idsync last knew of each target, and its write epoch (`target_state`);
//! - links between source objects and target accounts, and which app owns each (`links`);
//! - the memberships each app manages, the bookkeeping and the intentions of a run (`managed`);
//! - the history of runs (`runs`), of the approvals of held runs (`approvals`) and of every
//!   operation in them (`history`);
//! - each app's lock, so that two runs of an app never overlap (`lease`);
//! - what the service keeps: the admin token's hash, and the history read with filters (`service`);
//! - the apps and targets created through the admin API (`api_entries`), their secrets sealed
//!   with a key kept outside the store ([`sealed`]).
//!
//! One [`Store`] serves them all: each module adds its methods to it.

#![warn(missing_docs)]

mod api_entries;
mod approvals;
mod error;
mod files;
mod history;
mod lease;
mod links;
mod managed;
mod one_user;
mod runs;
pub mod sealed;
mod service;
mod source;
mod target_state;

use std::path::Path;
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use api_entries::{ApiEntry, EntryKind};
pub use approvals::Approval;
pub use error::{RunInProgress, StoreError};
pub use history::OperationRecord;
pub use lease::AppLease;
pub use runs::RunRecord;
pub use service::RunFilter;
pub use target_state::KnownTargetState;

use files::{create_private_dir, create_private_file};
use lease::LockPlace;

/// idsync's state store: a pool of connections to its SQLite database, cheap to clone (clones
/// share the pool, the writers' turn and the apps' locks).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// SQLite has one writer at a time, and a writer that waits on a long transaction (the
    /// bookkeeping of a first sync at 100k users) can time out: the writes of this process take
    /// turns here instead.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where the apps' locks are (see [`Store::lock_app`]).
    locks: LockPlace,
    /// The database file, when the store is one: [`Store::ping`] checks it is still there.
    file: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file at `path` and brings its schema up to date.
    ///
    /// The store holds names, e-mail addresses and memberships, so on unix the folders this
    /// creates are owner-only (0700) and a new database file is 0600 whatever the umask; SQLite
    /// gives its `-wal` and `-shm` files the database file's mode. Existing folders and files
    /// are left as they are (an administrator may have chosen their modes).
    pub async fn open_file(path: &Path) -> Result<Store, StoreError> {
        let location = path.display().to_string();
        let io_error = |e: std::io::Error| StoreError::Open {
            location: location.clone(),
            source: sqlx::Error::Io(e),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(io_error)?;
        }
        create_private_file(path).map_err(io_error)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets the console read history while a run writes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        // The locks sit beside the database: every process that opens this file sees them.
        let mut locks = path.as_os_str().to_owned();
        locks.push(".locks");
        let mut store = Self::open_with(options, location, LockPlace::Folder(locks.into())).await?;
        store.file = Some(path.to_owned());
        Ok(store)
    }

    /// Opens a `sqlite://PATH` URL (or `sqlite::memory:` for tests).
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://")
            && !path.starts_with(':')
        {
            return Self::open_file(Path::new(path)).await;
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            location: idsync_model::redact::redact_url(url),
            source,
        })?;
        // Only this process sees a database in memory, so only it needs to know its locks; a
        // file named some other way keeps them beside it, as `open_file` does.
        let filename = options.get_filename().as_os_str();
        let locks =
            if url.contains(":memory:") || url.contains("mode=memory") || filename.is_empty() {
                LockPlace::Memory(Default::default())
            } else {
                let mut folder = filename.to_owned();
                folder.push(".locks");
                LockPlace::Folder(folder.into())
            };
        Self::open_with(options, idsync_model::redact::redact_url(url), locks).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        location: String,
        locks: LockPlace,
    ) -> Result<Store, StoreError> {
        let pool = SqlitePoolOptions::new()
            // Each target's stored state loads on a connection of its own, alongside the source.
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { location, source })?;
        Ok(Store {
            pool,
            writer: std::sync::Arc::default(),
            locks,
            file: None,
        })
    }
}

/// The time now, as the store writes it (RFC 3339, UTC).
pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown"))
}

/// JSON the store wrote, read back; `what` names the column for the error.
pub(crate) fn json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json {
        what: what.to_owned(),
        source,
    })
}
