//! idsync's own state, in SQLite (a file under the data directory; migrations embedded):
//! - what each app last read from its source, with its delta links;
//! - links between source objects and target accounts, and which app owns each;
//! - the memberships each app manages;
//! - the history of runs and of every operation in them.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use idsync_model::bookkeeping::{Bookkeeping, CreateIntent, Intentions};
use idsync_model::held::Held;
use idsync_model::link::Link;
use idsync_model::managed::ManagedMemberships;
use idsync_model::op_result::OpResult;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("cannot migrate the state store {location}: {source}")]
    Migrate {
        location: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("state store holds unreadable JSON in {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    #[error("state store: reading was cancelled because the program is shutting down")]
    Cancelled,
    #[error("{}", busy_message(app, run.as_ref()))]
    Busy {
        app: String,
        run: Option<RunInProgress>,
    },
    #[error(
        "cannot take the lock of app {app:?} (it keeps two runs of the app from overlapping): {source}"
    )]
    Lock { app: String, source: std::io::Error },
    #[error("run {run} cannot be approved: {why}")]
    NotApprovable { run: i64, why: String },
}

/// A run of an app that holds its lock, as far as the history tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInProgress {
    pub id: i64,
    pub pid: Option<i64>,
    pub started_at: String,
}

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

/// An app's names as a file name: hex, so any app name is a safe one.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

impl StoreError {
    /// Work handed to a blocking thread did not finish: a panic there goes on here; a
    /// cancellation (only when the runtime shuts down) is an error.
    fn from_join(e: tokio::task::JoinError) -> StoreError {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => StoreError::Cancelled,
        }
    }
}

/// One run as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub app: String,
    pub trigger: String,
    pub dry_run: bool,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub counts: serde_json::Value,
    pub summary: serde_json::Value,
    pub deprovisions: i64,
    pub approved_deprovisions: i64,
    pub error: Option<String>,
}

/// An approval not used yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The held run that was approved.
    pub run_id: i64,
    pub held: Held,
}

/// One operation of a run as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    pub seq: i64,
    pub target: String,
    pub kind: String,
    pub subject: String,
    pub detail: serde_json::Value,
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Separates the account keys of one managed group in its row (see migration 0003).
const MEMBER_SEPARATOR: char = idsync_model::managed::KEY_SEPARATOR;

/// Keeps `links`, many per statement (a statement each cost a round trip to SQLite's thread per
/// renamed or new account). A source object has one account per target: the last link given
/// for it wins, and replaces any older link of it.
async fn upsert_links(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    links: &[Link],
    linked_at: &str,
) -> Result<(), StoreError> {
    // Five values a link to delete, eight to insert: well under SQLite's 32,766 a statement.
    const LINKS_PER_STATEMENT: usize = 500;
    let mut last: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::with_capacity(links.len());
    for (i, link) in links.iter().enumerate() {
        last.insert((&link.app, &link.source_id), i);
    }
    let links: Vec<&Link> = links
        .iter()
        .enumerate()
        .filter(|(i, link)| last.get(&(link.app.as_str(), link.source_id.as_str())) == Some(i))
        .map(|(_, link)| link)
        .collect();
    for chunk in links.chunks(LINKS_PER_STATEMENT) {
        // Older links of these source objects, to other accounts.
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM links WHERE target = ");
        delete
            .push_bind(target)
            .push(" AND (app, source_id) IN (VALUES ");
        let mut pairs = delete.separated(", ");
        for link in chunk {
            pairs
                .push("(")
                .push_bind_unseparated(link.app.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(link.source_id.as_str())
                .push_unseparated(")");
        }
        delete.push(") AND (app, source_id, account_key) NOT IN (VALUES ");
        let mut triples = delete.separated(", ");
        for link in chunk {
            triples
                .push("(")
                .push_bind_unseparated(link.app.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(link.source_id.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(link.key.as_str())
                .push_unseparated(")");
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;

        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO links (target, account_key, app, source_id, username, linked_at, kept_username, rename_reported) ",
        );
        insert.push_values(chunk, |mut row, link| {
            row.push_bind(target)
                .push_bind(link.key.as_str())
                .push_bind(link.app.as_str())
                .push_bind(link.source_id.as_str())
                .push_bind(link.username.as_str())
                .push_bind(linked_at)
                .push_bind(link.kept_username.as_deref())
                .push_bind(link.rename_reported.as_deref());
        });
        insert.push(
            " ON CONFLICT (target, account_key) DO UPDATE SET
                app = excluded.app, source_id = excluded.source_id, username = excluded.username,
                kept_username = excluded.kept_username, rename_reported = excluded.rename_reported",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Groups named in one statement at most (one bound value each, or four to a row written).
const GROUPS_PER_STATEMENT: usize = 500;

/// Applies the managed-membership side of `changes` to the packed rows, rewriting only the
/// groups that change. Dropped links lose their memberships in every group.
async fn update_managed_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    changes: &Bookkeeping,
) -> Result<(), StoreError> {
    use std::collections::{BTreeMap, HashSet};
    if changes.add_managed.is_empty()
        && changes.remove_managed.is_empty()
        && changes.remove_links.is_empty()
    {
        return Ok(());
    }
    let gone: HashSet<&str> = changes.remove_links.iter().map(String::as_str).collect();
    // Only the groups that change are read, unless accounts left (they leave every group):
    // progress is recorded many times a run, and a target at 100k users manages a million
    // memberships.
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    if gone.is_empty() {
        let names: BTreeSet<&str> = changes
            .add_managed
            .iter()
            .chain(&changes.remove_managed)
            .map(|(g, _)| g.as_str())
            .collect();
        let names: Vec<&str> = names.into_iter().collect();
        for chunk in names.chunks(GROUPS_PER_STATEMENT) {
            let mut select = sqlx::QueryBuilder::new(
                "SELECT group_name, members FROM managed_groups WHERE app = ",
            );
            select
                .push_bind(app)
                .push(" AND target = ")
                .push_bind(target)
                .push(" AND group_name IN (");
            let mut list = select.separated(", ");
            for name in chunk {
                list.push_bind(*name);
            }
            select.push(")");
            for r in select.build().fetch_all(&mut **tx).await? {
                stored.insert(r.get(0), r.get(1));
            }
        }
    } else {
        let rows = sqlx::query(
            "SELECT group_name, members FROM managed_groups WHERE app = ? AND target = ?",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&mut **tx)
        .await?;
        stored = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    }
    // Per group: (keys to add, keys to remove).
    let mut touched: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (g, k) in &changes.add_managed {
        touched.entry(g).or_default().0.push(k);
    }
    for (g, k) in &changes.remove_managed {
        touched.entry(g).or_default().1.push(k);
    }
    if !gone.is_empty() {
        for group in stored.keys() {
            touched.entry(group).or_default();
        }
    }
    // Groups left empty, and groups with their new keys: written many per statement.
    let mut emptied: Vec<&str> = Vec::new();
    let mut rewritten: Vec<(&str, String)> = Vec::new();
    for (group, (adds, removes)) in touched {
        let before: BTreeSet<&str> = stored
            .get(group)
            .map(|m| {
                m.split(MEMBER_SEPARATOR)
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut after = before.clone();
        after.retain(|k| !gone.contains(k));
        for k in removes {
            after.remove(k);
        }
        after.extend(adds);
        if after == before {
            continue;
        }
        if after.is_empty() {
            emptied.push(group);
        } else {
            let members = after
                .into_iter()
                .collect::<Vec<_>>()
                .join(&MEMBER_SEPARATOR.to_string());
            rewritten.push((group, members));
        }
    }
    for chunk in emptied.chunks(GROUPS_PER_STATEMENT) {
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM managed_groups WHERE app = ");
        delete
            .push_bind(app)
            .push(" AND target = ")
            .push_bind(target)
            .push(" AND group_name IN (");
        let mut names = delete.separated(", ");
        for group in chunk {
            names.push_bind(*group);
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    for chunk in rewritten.chunks(GROUPS_PER_STATEMENT) {
        let mut upsert = sqlx::QueryBuilder::new(
            "INSERT INTO managed_groups (app, target, group_name, members) ",
        );
        upsert.push_values(chunk, |mut row, (group, members)| {
            row.push_bind(app)
                .push_bind(target)
                .push_bind(*group)
                .push_bind(members.as_str());
        });
        upsert.push(
            " ON CONFLICT (app, target, group_name) DO UPDATE SET members = excluded.members",
        );
        upsert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Everything [`Bookkeeping`] asks for, inside a transaction.
async fn write_bookkeeping(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    changes: &Bookkeeping,
) -> Result<(), StoreError> {
    for key in &changes.remove_links {
        sqlx::query("DELETE FROM links WHERE target = ? AND account_key = ?")
            .bind(target)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM sent_emails WHERE target = ? AND account_key = ?")
            .bind(target)
            .bind(key)
            .execute(&mut **tx)
            .await?;
    }
    // Three values a row.
    for chunk in changes.sent_emails.chunks(GROUPS_PER_STATEMENT) {
        let mut upsert =
            sqlx::QueryBuilder::new("INSERT INTO sent_emails (target, account_key, email) ");
        upsert.push_values(chunk, |mut row, (key, email)| {
            row.push_bind(target)
                .push_bind(key.as_str())
                .push_bind(email.as_str());
        });
        upsert.push(" ON CONFLICT (target, account_key) DO UPDATE SET email = excluded.email");
        upsert.build().execute(&mut **tx).await?;
    }
    upsert_links(tx, target, &changes.upsert_links, &now()).await?;
    update_managed_groups(tx, app, target, changes).await?;
    for chunk in changes.settled_creates.chunks(GROUPS_PER_STATEMENT) {
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM create_intents WHERE target = ");
        delete.push_bind(target).push(" AND username IN (");
        let mut names = delete.separated(", ");
        for name in chunk {
            names.push_bind(name.as_str());
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Appends operation results to a run's history, numbered after those already recorded.
async fn insert_operations(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    run_id: i64,
    results: &[OpResult],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM operations WHERE run_id = ?")
        .bind(run_id)
        .fetch_one(&mut **tx)
        .await?
        .get(0);
    // Many rows per statement: one statement per row cost a round trip to SQLite's thread
    // each, 80 s for the 2.7M operations of a first sync at 100k users. 9 values a row stay
    // well under SQLite's limit of 32,766 bound values per statement.
    const ROWS_PER_STATEMENT: usize = 1000;
    for (chunk_index, chunk) in results.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut rows = Vec::with_capacity(chunk.len());
        for r in chunk {
            let detail = serde_json::to_string(&r.planned).map_err(|source| StoreError::Json {
                what: "operation".into(),
                source,
            })?;
            let status = serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            rows.push((r, detail, status));
        }
        let first_seq = next + 1 + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO operations (run_id, seq, target, kind, subject, detail, status, error, duration_ms) ",
        );
        insert.push_values(
            rows.into_iter().enumerate(),
            |mut row, (i, (r, detail, status))| {
                let subject = r
                    .planned
                    .op
                    .user()
                    .or(r.planned.op.group())
                    .unwrap_or_default();
                row.push_bind(run_id)
                    .push_bind(first_seq + i as i64)
                    .push_bind(r.planned.target.clone())
                    .push_bind(r.planned.op.kind().as_str())
                    .push_bind(subject.to_owned())
                    .push_bind(detail)
                    .push_bind(status)
                    .push_bind(r.error.clone())
                    .push_bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX));
            },
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A target's state as idsync last knew it (see [`Store::known_target_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTargetState {
    /// What the state was read with; a state read with another is of no use.
    pub fingerprint: String,
    /// When the target was last read in full (unix seconds).
    pub read_at: i64,
    pub epoch: i64,
    /// The state in its stored form (`idsync_engine::packed`).
    pub state: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// SQLite has one writer at a time, and a writer that waits on a long transaction (the
    /// bookkeeping of a first sync at 100k users) can time out: the writes of this process take
    /// turns here instead.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where the apps' locks are (see [`Store::lock_app`]).
    locks: LockPlace,
}

/// Where an app's lock lives: a file beside the database, locked by the operating system
/// (released when the process dies, however it dies), or, for a store in memory, this process.
#[derive(Debug, Clone)]
enum LockPlace {
    Folder(std::path::PathBuf),
    Memory(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>),
}

pub use lease::AppLease;

mod lease {
    //! An app's lock. A file lock (`flock`) rather than a row in the database: a row would
    //! outlive a killed process and leave the next run to guess whether its owner is alive; the
    //! operating system drops a file lock the moment its process dies.

    use std::collections::HashSet;
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    /// Held while a run of the app goes on; dropping it lets the next run in.
    #[derive(Debug)]
    pub struct AppLease {
        held: Held,
    }

    #[derive(Debug)]
    enum Held {
        /// The open, locked file: closing it unlocks it.
        File(#[allow(dead_code)] File),
        Memory {
            held: Arc<Mutex<HashSet<String>>>,
            app: String,
        },
    }

    impl Drop for AppLease {
        fn drop(&mut self) {
            if let Held::Memory { held, app } = &self.held {
                held.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(app);
            }
        }
    }

    /// Locks `path` (created if need be), waiting for it or not. `Ok(None)`: held by another.
    pub(crate) fn lock_file(
        folder: PathBuf,
        path: PathBuf,
        wait: bool,
    ) -> std::io::Result<Option<AppLease>> {
        // Beside the database, and as private as its folder.
        super::create_private_dir(&folder)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        if wait {
            file.lock()?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        // Who holds it, for a person looking at the folder.
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Some(AppLease {
            held: Held::File(file),
        }))
    }

    pub(crate) async fn lock_in_memory(
        held: &Arc<Mutex<HashSet<String>>>,
        app: &str,
        wait: bool,
    ) -> std::io::Result<Option<AppLease>> {
        loop {
            let taken = held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(app.to_owned());
            if taken {
                return Ok(Some(AppLease {
                    held: Held::Memory {
                        held: Arc::clone(held),
                        app: app.to_owned(),
                    },
                }));
            }
            if !wait {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown"))
}

fn json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json {
        what: what.to_owned(),
        source,
    })
}

/// Creates `dir` and its missing parents, owner-only on unix (see [`Store::open_file`]).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // The mode given at creation passes through the umask; set it exactly.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Creates the database file empty (which SQLite takes as a new database), owner-only on unix,
/// before SQLite opens it: SQLite would create it with 0644 less the umask. An existing file
/// is left alone.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // The mode given at creation passes through the umask; set it exactly.
            Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
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
        Self::open_with(options, location, LockPlace::Folder(locks.into())).await
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
        })
    }

    /// What the app last read from its source, in its stored form (`idsync_entra::packed`).
    pub async fn source_state(&self, app: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT state FROM source_state WHERE app = ?")
            .bind(app)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Keeps what the app read from its source, to read only changes next time. Only a read
    /// the run went on with is kept: one the guard held is not the baseline for later runs.
    pub async fn save_source_state(
        &self,
        app: &str,
        state: &[u8],
        users_in_scope: usize,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO source_state (app, state, updated_at, users_in_scope) VALUES (?, ?, ?, ?)
             ON CONFLICT (app) DO UPDATE SET state = excluded.state,
                updated_at = excluded.updated_at, users_in_scope = excluded.users_in_scope",
        )
        .bind(app)
        .bind(state)
        .bind(now())
        .bind(i64::try_from(users_in_scope).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many users the last kept source read had in scope (`None`: no read kept yet, or
    /// kept by a version that did not count them).
    pub async fn source_users_in_scope(&self, app: &str) -> Result<Option<usize>, StoreError> {
        let row = sqlx::query("SELECT users_in_scope FROM source_state WHERE app = ?")
            .bind(app)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|r| r.get::<Option<i64>, _>(0))
            .and_then(|n| usize::try_from(n).ok()))
    }

    /// The target's write epoch: bumped by [`Store::begin_target_writes`]. Read it before a full
    /// read of the target, and save what was read at that epoch.
    pub async fn target_epoch(&self, target: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT epoch FROM target_epochs WHERE target = ?")
            .bind(target)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// What idsync last knew of a target, if it still holds (nothing has written to the target
    /// since without saving what it did).
    pub async fn known_target_state(
        &self,
        target: &str,
    ) -> Result<Option<KnownTargetState>, StoreError> {
        let row = sqlx::query(
            "SELECT s.fingerprint, s.read_at, s.epoch, s.state FROM target_state s
             JOIN target_epochs e ON e.target = s.target AND e.epoch = s.epoch
             WHERE s.target = ?",
        )
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| KnownTargetState {
            fingerprint: r.get(0),
            read_at: r.get(1),
            epoch: r.get(2),
            state: r.get(3),
        }))
    }

    /// Called before a run writes to a target: the known state no longer holds, and any state
    /// saved for an earlier epoch never will. Returns the run's own epoch.
    pub async fn begin_target_writes(&self, target: &str) -> Result<i64, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM target_state WHERE target = ?")
            .bind(target)
            .execute(&mut *tx)
            .await?;
        let epoch: i64 = sqlx::query(
            "INSERT INTO target_epochs (target, epoch) VALUES (?, 1)
             ON CONFLICT (target) DO UPDATE SET epoch = epoch + 1
             RETURNING epoch",
        )
        .bind(target)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        tx.commit().await?;
        Ok(epoch)
    }

    /// Keeps what a target holds, valid at `epoch`. Nothing is saved if another run has begun
    /// writing to the target since (its changes would be missing); returns whether it was saved.
    pub async fn save_target_state(
        &self,
        target: &str,
        fingerprint: &str,
        read_at: i64,
        epoch: i64,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        let _writing = self.writer.lock().await;
        let done = sqlx::query(
            "INSERT INTO target_state (target, fingerprint, read_at, epoch, state)
             SELECT ?, ?, ?, ?, ?
             WHERE COALESCE((SELECT epoch FROM target_epochs WHERE target = ?), 0) = ?
             ON CONFLICT (target) DO UPDATE SET fingerprint = excluded.fingerprint,
                read_at = excluded.read_at, epoch = excluded.epoch, state = excluded.state",
        )
        .bind(target)
        .bind(fingerprint)
        .bind(read_at)
        .bind(epoch)
        .bind(state)
        .bind(target)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 && epoch == 0 {
            // The epoch row makes the saved state visible to `known_target_state`.
            sqlx::query("INSERT OR IGNORE INTO target_epochs (target, epoch) VALUES (?, 0)")
                .bind(target)
                .execute(&self.pool)
                .await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// Drops what idsync knew of a target: its next run reads it in full.
    pub async fn forget_target_state(&self, target: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query("DELETE FROM target_state WHERE target = ?")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every app's links on one target.
    pub async fn links(&self, target: &str) -> Result<Vec<Link>, StoreError> {
        // One JSON array built inside SQLite rather than a row each: at 100k links per target,
        // handing rows over one value at a time cost about a second per target.
        let text: String = sqlx::query(
            "SELECT json_group_array(json_array(app, source_id, account_key, username,
                                                kept_username, rename_reported)
                                     ORDER BY app, source_id)
             FROM links WHERE target = ?",
        )
        .bind(target)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let links = tokio::task::spawn_blocking(move || {
            type Row = (
                String,
                String,
                String,
                String,
                Option<String>,
                Option<String>,
            );
            serde_json::from_str::<Vec<Row>>(&text)
                .map(|rows| {
                    rows.into_iter()
                        .map(
                            |(app, source_id, key, username, kept_username, rename_reported)| {
                                Link {
                                    app,
                                    source_id,
                                    key,
                                    username,
                                    kept_username,
                                    rename_reported,
                                }
                            },
                        )
                        .collect()
                })
                .map_err(|source| StoreError::Json {
                    what: "links".into(),
                    source,
                })
        });
        links.await.map_err(StoreError::from_join)?
    }

    /// The e-mail address idsync last sent to each account of a target, by account key: for
    /// targets that do not report e-mail addresses.
    pub async fn sent_emails(
        &self,
        target: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT account_key, email FROM sent_emails WHERE target = ?")
            .bind(target)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn managed_memberships(
        &self,
        app: &str,
        target: &str,
    ) -> Result<ManagedMemberships, StoreError> {
        let rows = sqlx::query(
            "SELECT group_name, members FROM managed_groups WHERE app = ? AND target = ?
             ORDER BY group_name",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        // Kept as stored, one string of sorted keys per group: no million small strings.
        let managed = tokio::task::spawn_blocking(move || {
            ManagedMemberships::from_joined(rows.into_iter().map(|row| (row.get(0), row.get(1))))
        });
        managed.await.map_err(StoreError::from_join)
    }

    /// Writes what a (partly) applied plan means for links, managed memberships and intended
    /// creations, in one transaction.
    pub async fn apply_bookkeeping(
        &self,
        app: &str,
        target: &str,
        changes: &Bookkeeping,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        write_bookkeeping(&mut tx, app, target, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Before a phase of a run's writes is sent: the accounts it is about to create and the
    /// memberships it is about to add (see [`Intentions`]).
    pub async fn record_intentions(
        &self,
        run_id: i64,
        target: &str,
        app: &str,
        intentions: &Intentions,
    ) -> Result<(), StoreError> {
        if intentions.is_empty() {
            return Ok(());
        }
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        // Seven values a row: well under SQLite's 32,766 a statement.
        const INTENTS_PER_STATEMENT: usize = 1000;
        for chunk in intentions.creates.chunks(INTENTS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO create_intents (target, username, app, source_id, display, email, run_id) ",
            );
            insert.push_values(chunk, |mut row, intent| {
                row.push_bind(target)
                    .push_bind(idsync_model::name::name_key(&intent.username))
                    .push_bind(intent.app.as_str())
                    .push_bind(intent.source_id.as_str())
                    .push_bind(intent.username.as_str())
                    .push_bind(intent.email.as_deref())
                    .push_bind(run_id);
            });
            insert.push(
                " ON CONFLICT (target, username) DO UPDATE SET app = excluded.app,
                    source_id = excluded.source_id, display = excluded.display,
                    email = excluded.email, run_id = excluded.run_id",
            );
            insert.build().execute(&mut *tx).await?;
        }
        let claims = Bookkeeping {
            add_managed: intentions.claims.clone(),
            ..Bookkeeping::default()
        };
        update_managed_groups(&mut tx, app, target, &claims).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A batch of a run's results on one target: its history rows and what they mean for the
    /// bookkeeping, in one transaction, so that the history never shows a write the
    /// bookkeeping does not know, nor the other way round.
    pub async fn record_progress(
        &self,
        run_id: i64,
        app: &str,
        target: &str,
        results: &[OpResult],
        changes: &Bookkeeping,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_operations(&mut tx, run_id, results).await?;
        write_bookkeeping(&mut tx, app, target, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creations of an app on a target that a run recorded and did not see through.
    pub async fn create_intents(
        &self,
        app: &str,
        target: &str,
    ) -> Result<Vec<CreateIntent>, StoreError> {
        let rows = sqlx::query(
            "SELECT source_id, display, email FROM create_intents WHERE app = ? AND target = ?
             ORDER BY username",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CreateIntent {
                app: app.to_owned(),
                source_id: r.get(0),
                username: r.get(1),
                email: r.get(2),
            })
            .collect())
    }

    /// Takes the app's lock, so that its runs never overlap: held until the lease is dropped,
    /// and released by the operating system if the process dies, so a run that was killed never
    /// blocks the next one. With `wait`, waits for the run in progress to end; otherwise a run
    /// in progress is [`StoreError::Busy`].
    pub async fn lock_app(&self, app: &str, wait: bool) -> Result<AppLease, StoreError> {
        let lease = match &self.locks {
            LockPlace::Folder(folder) => {
                let path = folder.join(format!("{}.lock", hex(app)));
                let folder = folder.clone();
                // Waiting for a file lock blocks the thread: not an async one.
                tokio::task::spawn_blocking(move || lease::lock_file(folder, path, wait))
                    .await
                    .map_err(StoreError::from_join)?
            }
            LockPlace::Memory(held) => lease::lock_in_memory(held, app, wait).await,
        };
        match lease {
            Ok(Some(lease)) => Ok(lease),
            Ok(None) => Err(self.busy(app).await),
            Err(e) => Err(StoreError::Lock {
                app: app.to_owned(),
                source: e,
            }),
        }
    }

    async fn busy(&self, app: &str) -> StoreError {
        let running = sqlx::query(
            "SELECT id, pid, started_at FROM runs WHERE app = ? AND status = 'running'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await
        .ok()
        .flatten();
        StoreError::Busy {
            app: app.to_owned(),
            run: running.map(|r| RunInProgress {
                id: r.get(0),
                pid: r.get(1),
                started_at: r.get(2),
            }),
        }
    }

    /// Closes the runs of an app still marked running. Call it holding the app's lock
    /// ([`Store::lock_app`]): a run marked running whose lock is free is known to have stopped
    /// (its process died). Returns their ids.
    pub async fn close_interrupted_runs(
        &self,
        _lease: &AppLease,
        app: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let _writing = self.writer.lock().await;
        let rows = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?,
                error = 'the process running it stopped before the run finished (it no longer held the app''s lock); what it did is in its operations, and the next run converges'
             WHERE app = ? AND status = 'running' RETURNING id",
        )
        .bind(now())
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    pub async fn start_run(
        &self,
        _lease: &AppLease,
        app: &str,
        trigger: idsync_model::run::Trigger,
        dry_run: bool,
    ) -> Result<i64, StoreError> {
        let _writing = self.writer.lock().await;
        let row = sqlx::query(
            "INSERT INTO runs (app, trigger, dry_run, status, started_at, pid) VALUES (?, ?, ?, 'running', ?, ?) RETURNING id",
        )
        .bind(app)
        .bind(trigger.as_str())
        .bind(dry_run)
        .bind(now())
        .bind(i64::from(std::process::id()))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Appends operation results to a run (numbered after those already recorded).
    pub async fn record_operations(
        &self,
        run_id: i64,
        results: &[OpResult],
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_operations(&mut tx, run_id, results).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes a run with its final status, counts and summary.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: idsync_model::run::RunStatus,
        counts: &serde_json::Value,
        summary: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = ?, counts = ?, summary = ?, error = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(now())
        .bind(counts.to_string())
        .bind(summary.to_string())
        .bind(error)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a run held by the guard, keeping its plan for review and the accounts it would
    /// deprovision (target, account key): an approval covers exactly those.
    pub async fn hold_run(
        &self,
        run_id: i64,
        plan: &serde_json::Value,
        held: &Held,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let accounts =
            serde_json::to_string(&held.accounts).map_err(|source| StoreError::Json {
                what: "runs.held_deprovisions".into(),
                source,
            })?;
        let memberships =
            serde_json::to_string(&held.memberships).map_err(|source| StoreError::Json {
                what: "runs.held_memberships".into(),
                source,
            })?;
        sqlx::query(
            "UPDATE runs SET plan = ?, deprovisions = ?, held_deprovisions = ?, held_empty_source = ?,
                held_memberships = ?
             WHERE id = ?",
        )
        .bind(plan.to_string())
        .bind(i64::try_from(held.accounts.len()).unwrap_or(i64::MAX))
        .bind(accounts)
        .bind(held.empty_source)
        .bind(memberships)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Approves a held run: the next run of its app that applies may deprovision the accounts
    /// its plan named, until `expires_at` (unix seconds). Refused for a run that is not held,
    /// that a later run of its app superseded, or that is older than `max_age_seconds`.
    pub async fn approve_run(
        &self,
        run_id: i64,
        max_age_seconds: i64,
        expires_at: i64,
    ) -> Result<RunRecord, StoreError> {
        let _writing = self.writer.lock().await;
        let run = self
            .run(run_id)
            .await?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        let refuse = |why: String| StoreError::NotApprovable { run: run_id, why };
        if run.status != idsync_model::run::RunStatus::Held.as_str() {
            return Err(refuse(format!(
                "it is {}, not held: only a run held by the guard can be approved",
                run.status
            )));
        }
        let later: Option<i64> = sqlx::query(
            "SELECT id FROM runs WHERE app = ? AND id > ? AND dry_run = 0 ORDER BY id LIMIT 1",
        )
        .bind(&run.app)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.get(0));
        if let Some(later) = later {
            return Err(refuse(format!(
                "run {later} of app {:?} came after it, so its plan is out of date. Sync again; if that run is held, review and approve it",
                run.app
            )));
        }
        let held_at = run
            .finished_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map_or(0, OffsetDateTime::unix_timestamp);
        let age = OffsetDateTime::now_utc().unix_timestamp() - held_at;
        if age > max_age_seconds {
            return Err(refuse(format!(
                "it was held {} minutes ago, longer than guard.approval_expires_minutes allows: sync again and review the new plan",
                age / 60
            )));
        }
        sqlx::query(
            "UPDATE runs SET status = 'approved', approved_deprovisions = deprovisions,
                approval_expires_at = ? WHERE id = ?",
        )
        .bind(expires_at)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(run)
    }

    /// The approval an app's next run may use: given, not used yet and not expired at `now`
    /// (unix seconds). Approvals that expired are marked so on the way.
    pub async fn pending_approval(
        &self,
        app: &str,
        now_unix: i64,
    ) -> Result<Option<Approval>, StoreError> {
        {
            let _writing = self.writer.lock().await;
            sqlx::query(
                "UPDATE runs SET status = 'approval-expired'
                 WHERE app = ? AND status = 'approved' AND COALESCE(approval_expires_at, 0) <= ?",
            )
            .bind(app)
            .bind(now_unix)
            .execute(&self.pool)
            .await?;
        }
        let row = sqlx::query(
            "SELECT id, held_deprovisions, held_empty_source, held_memberships FROM runs
             WHERE app = ? AND status = 'approved' ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let accounts: Vec<(String, String)> = match row.get::<Option<String>, _>(1) {
            Some(text) => serde_json::from_str(&text).map_err(|source| StoreError::Json {
                what: "runs.held_deprovisions".into(),
                source,
            })?,
            None => Vec::new(),
        };
        // NULL for runs held before migration 0006: they named no membership removals.
        let memberships: Vec<(String, String, String)> = match row.get::<Option<String>, _>(3) {
            Some(text) => serde_json::from_str(&text).map_err(|source| StoreError::Json {
                what: "runs.held_memberships".into(),
                source,
            })?,
            None => Vec::new(),
        };
        Ok(Some(Approval {
            run_id: row.get(0),
            held: Held {
                accounts: accounts.into_iter().collect(),
                empty_source: row.get(2),
                memberships: memberships.into_iter().collect(),
            },
        }))
    }

    /// Marks an approval as used by `by_run`, whatever that run goes on to do: an approval is
    /// good for one run only.
    pub async fn use_approval(&self, approved_run: i64, by_run: i64) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "UPDATE runs SET status = 'approval-used', approval_used_by = ?, error = ? WHERE id = ?",
        )
        .bind(by_run)
        .bind(format!("approval used by run {by_run}"))
        .bind(approved_run)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn held_plan(&self, run_id: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let row = sqlx::query("SELECT plan FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        row.get::<Option<String>, _>(0)
            .map(|p| json(&p, "runs.plan"))
            .transpose()
    }

    fn run_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RunRecord, StoreError> {
        Ok(RunRecord {
            id: r.get("id"),
            app: r.get("app"),
            trigger: r.get("trigger"),
            dry_run: r.get("dry_run"),
            status: r.get("status"),
            started_at: r.get("started_at"),
            finished_at: r.get("finished_at"),
            counts: json(&r.get::<String, _>("counts"), "runs.counts")?,
            summary: json(&r.get::<String, _>("summary"), "runs.summary")?,
            deprovisions: r.get("deprovisions"),
            approved_deprovisions: r.get("approved_deprovisions"),
            error: r.get("error"),
        })
    }

    pub async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::run_from_row).transpose()
    }

    /// Runs, newest first, optionally of one app.
    pub async fn runs(&self, app: Option<&str>, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE (?1 IS NULL OR app = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(app)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::run_from_row).collect()
    }

    pub async fn operations(&self, run_id: i64) -> Result<Vec<OperationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, target, kind, subject, detail, status, error, duration_ms FROM operations WHERE run_id = ? ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OperationRecord {
                    seq: r.get(0),
                    target: r.get(1),
                    kind: r.get(2),
                    subject: r.get(3),
                    detail: json(&r.get::<String, _>(4), "operations.detail")?,
                    status: r.get(5),
                    error: r.get(6),
                    duration_ms: r.get(7),
                })
            })
            .collect()
    }
}
