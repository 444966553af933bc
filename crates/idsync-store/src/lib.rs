//! idsync's own state, in SQLite (a file under the data directory; migrations embedded):
//! - what each app last read from its source, with its delta links;
//! - links between source objects and target accounts, and which app owns each;
//! - the memberships each app manages;
//! - the history of runs and of every operation in them.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use idsync_engine::outcome::Bookkeeping;
use idsync_engine::{Link, ManagedMemberships, OpResult};
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
const MEMBER_SEPARATOR: char = idsync_engine::managed::KEY_SEPARATOR;

/// Keeps `links`, many per statement (a statement each cost a round trip to SQLite's thread per
/// renamed or new account). A source object has one account per target: the last link given
/// for it wins, and replaces any older link of it.
async fn upsert_links(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    links: &[Link],
    linked_at: &str,
) -> Result<(), StoreError> {
    // Five values a link to delete, six to insert: well under SQLite's 32,766 a statement.
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
            "INSERT INTO links (target, account_key, app, source_id, username, linked_at) ",
        );
        insert.push_values(chunk, |mut row, link| {
            row.push_bind(target)
                .push_bind(link.key.as_str())
                .push_bind(link.app.as_str())
                .push_bind(link.source_id.as_str())
                .push_bind(link.username.as_str())
                .push_bind(linked_at);
        });
        insert.push(
            " ON CONFLICT (target, account_key) DO UPDATE SET
                app = excluded.app, source_id = excluded.source_id, username = excluded.username",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

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
    let rows =
        sqlx::query("SELECT group_name, members FROM managed_groups WHERE app = ? AND target = ?")
            .bind(app)
            .bind(target)
            .fetch_all(&mut **tx)
            .await?;
    let stored: BTreeMap<String, String> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    let gone: HashSet<&str> = changes.remove_links.iter().map(String::as_str).collect();
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
    const GROUPS_PER_STATEMENT: usize = 500;
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

impl Store {
    /// Opens (creating if needed) the SQLite file at `path` and brings its schema up to date.
    pub async fn open_file(path: &Path) -> Result<Store, StoreError> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                location: location.clone(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets the console read history while a run writes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        Self::open_with(options, location).await
    }

    /// Opens a `sqlite://PATH` URL (or `sqlite::memory:` for tests).
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://")
            && !path.starts_with(':')
        {
            return Self::open_file(Path::new(path)).await;
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            location: url.to_owned(),
            source,
        })?;
        Self::open_with(options, url.to_owned()).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        location: String,
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

    pub async fn save_source_state(&self, app: &str, state: &[u8]) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO source_state (app, state, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (app) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(app)
        .bind(state)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
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
            "SELECT json_group_array(json_array(app, source_id, account_key, username)
                                     ORDER BY app, source_id)
             FROM links WHERE target = ?",
        )
        .bind(target)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let links = tokio::task::spawn_blocking(move || {
            serde_json::from_str::<Vec<(String, String, String, String)>>(&text)
                .map(|rows| {
                    rows.into_iter()
                        .map(|(app, source_id, key, username)| Link {
                            app,
                            source_id,
                            key,
                            username,
                        })
                        .collect()
                })
                .map_err(|source| StoreError::Json {
                    what: "links".into(),
                    source,
                })
        });
        links.await.map_err(StoreError::from_join)?
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

    /// Writes what a (partly) applied plan means for links and managed memberships, in one
    /// transaction.
    pub async fn apply_bookkeeping(
        &self,
        app: &str,
        target: &str,
        changes: &Bookkeeping,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let linked_at = now();
        for key in &changes.remove_links {
            sqlx::query("DELETE FROM links WHERE target = ? AND account_key = ?")
                .bind(target)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        upsert_links(&mut tx, target, &changes.upsert_links, &linked_at).await?;
        update_managed_groups(&mut tx, app, target, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the runs of an app still marked running: their process stopped before they
    /// finished (one run per app at a time, so a new run means the old one is gone). Returns
    /// their ids.
    pub async fn close_interrupted_runs(&self, app: &str) -> Result<Vec<i64>, StoreError> {
        let _writing = self.writer.lock().await;
        let rows = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?,
                error = 'the run stopped before it finished; the next run converges'
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
        app: &str,
        trigger: &str,
        dry_run: bool,
    ) -> Result<i64, StoreError> {
        let _writing = self.writer.lock().await;
        let row = sqlx::query(
            "INSERT INTO runs (app, trigger, dry_run, status, started_at) VALUES (?, ?, ?, 'running', ?) RETURNING id",
        )
        .bind(app)
        .bind(trigger)
        .bind(dry_run)
        .bind(now())
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
        let next: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM operations WHERE run_id = ?")
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        // Many rows per statement: one statement per row cost a round trip to SQLite's thread
        // each, 80 s for the 2.7M operations of a first sync at 100k users. 9 values a row stay
        // well under SQLite's limit of 32,766 bound values per statement.
        const ROWS_PER_STATEMENT: usize = 1000;
        for (chunk_index, chunk) in results.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut rows = Vec::with_capacity(chunk.len());
            for r in chunk {
                let detail =
                    serde_json::to_string(&r.planned).map_err(|source| StoreError::Json {
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
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes a run with its final status, counts and summary.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        counts: &serde_json::Value,
        summary: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = ?, counts = ?, summary = ?, error = ? WHERE id = ?",
        )
        .bind(status)
        .bind(now())
        .bind(counts.to_string())
        .bind(summary.to_string())
        .bind(error)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a run held by the guard, keeping its plan for review.
    pub async fn hold_run(
        &self,
        run_id: i64,
        plan: &serde_json::Value,
        deprovisions: usize,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query("UPDATE runs SET plan = ?, deprovisions = ? WHERE id = ?")
            .bind(plan.to_string())
            .bind(i64::try_from(deprovisions).unwrap_or(i64::MAX))
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Approves a held run: its deprovisions may be applied by the next run of its app.
    pub async fn approve_run(&self, run_id: i64) -> Result<RunRecord, StoreError> {
        let _writing = self.writer.lock().await;
        let run = self
            .run(run_id)
            .await?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        sqlx::query("UPDATE runs SET status = 'approved', approved_deprovisions = deprovisions WHERE id = ?")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(run)
    }

    /// The deprovisions approved for an app and not yet used, and the run that approved them.
    pub async fn pending_approval(&self, app: &str) -> Result<Option<(i64, usize)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, approved_deprovisions FROM runs WHERE app = ? AND status = 'approved' ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let n: i64 = r.get(1);
            (r.get(0), usize::try_from(n).unwrap_or(0))
        }))
    }

    /// Marks an approval as used by a later run.
    pub async fn consume_approval(&self, approved_run: i64, by_run: i64) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query("UPDATE runs SET status = 'approved-applied', error = ? WHERE id = ?")
            .bind(format!("applied by run {by_run}"))
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
