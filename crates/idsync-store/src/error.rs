//! The store's errors. One type for every method, so that callers match on what went wrong
//! (busy, not approvable, no such run) without caring which table it came from.

use serde::{Deserialize, Serialize};

/// What can go wrong with the store; every method of [`crate::Store`] returns it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (or its file and folders created).
    #[error("cannot open the state store {location}: {source}")]
    Open {
        /// Where the store is (file path or URL), as the user configured it.
        location: String,
        /// Why SQLite refused.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the state store {location}: {source}")]
    Migrate {
        /// Where the store is (file path or URL), as the user configured it.
        location: String,
        /// The migration that failed, and why.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    /// The database file is no longer where the store opened it (deleted, or its volume
    /// unmounted). SQLite goes on writing to the open file, so nothing else fails: what is
    /// written now is lost when the process ends.
    #[error(
        "the state store's file {} is no longer there (deleted, or its volume unmounted): what idsync records now is lost when it stops; put the file back (or restore a backup) and restart idsync",
        path.display()
    )]
    Gone {
        /// Where the file was.
        path: std::path::PathBuf,
    },
    /// A JSON column did not read back (or a value did not write as JSON).
    #[error("state store holds unreadable JSON in {what}: {source}")]
    Json {
        /// The table and column (or the value) that did not convert.
        what: String,
        /// Why serde_json refused.
        source: serde_json::Error,
    },
    /// The run asked for is not in the history.
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    /// Work on a blocking thread was cancelled: the runtime is shutting down.
    #[error("state store: reading was cancelled because the program is shutting down")]
    Cancelled,
    /// Another run of the app holds its lock (see [`crate::Store::lock_app`]).
    #[error("{}", busy_message(app, run.as_ref()))]
    Busy {
        /// The app asked for.
        app: String,
        /// The run holding the lock, when the history records one in progress.
        run: Option<RunInProgress>,
    },
    /// The app's lock file could not be created or locked.
    #[error(
        "cannot take the lock of app {app:?} (it keeps two runs of the app from overlapping): {source}"
    )]
    Lock {
        /// The app whose lock was asked for.
        app: String,
        /// Why the file system refused.
        source: std::io::Error,
    },
    /// The run is not held, was superseded, or is too old to approve.
    #[error("run {run} cannot be approved: {why}")]
    NotApprovable {
        /// The run's id in the history.
        run: i64,
        /// Why it cannot be approved, to show the person who asked.
        why: String,
    },
    /// The run is not held, or was already approved or discarded.
    #[error("run {run} cannot be discarded: {why}")]
    NotDiscardable {
        /// The run's id in the history.
        run: i64,
        /// Why it cannot be discarded, to show the person who asked.
        why: String,
    },
}

/// A run of an app that holds its lock, as far as the history tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInProgress {
    /// The run's id in the history.
    pub id: i64,
    /// The process that started it, when recorded.
    pub pid: Option<i64>,
    /// When it started (RFC 3339).
    pub started_at: String,
}

/// What [`StoreError::Busy`] says: who holds the app, so that a person can tell whether to wait.
fn busy_message(app: &str, run: Option<&RunInProgress>) -> String {
    let who = match run {
        Some(r) => format!(
            "run {} (process {}, started {})",
            r.id,
            r.pid
                .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
            r.started_at
        ),
        None => "another run".to_owned(),
    };
    format!(
        "app {app:?} is being synced by {who}: one run of an app at a time. Wait for it to end (or use --wait)"
    )
}

impl StoreError {
    /// Work handed to a blocking thread did not finish: a panic there goes on here; a
    /// cancellation (only when the runtime shuts down) is an error.
    pub(crate) fn from_join(e: tokio::task::JoinError) -> StoreError {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => StoreError::Cancelled,
        }
    }
}
