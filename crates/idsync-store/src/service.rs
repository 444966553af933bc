//! What the service (`idsync serve`) keeps beyond runs: the admin token's hash, and the
//! history read with filters and paging for the admin API.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{RunRecord, Store, StoreError};

/// Which runs to list: every field narrows the list; `before` pages back from a run id
/// (newest first), so that pages stay stable while new runs are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Runs of this app.
    pub app: Option<String>,
    /// Runs with this status (`done`, `held`, …; see `RunStatus`).
    pub status: Option<String>,
    /// Runs started this way (`schedule`, `manual`, …; see `Trigger`).
    pub trigger: Option<String>,
    /// Runs with at least one operation on this target.
    pub target: Option<String>,
    /// Runs with at least one operation of this kind (`create_user`, `add_membership`, …).
    pub kind: Option<String>,
    /// Runs with at least one operation on this user (username, any case).
    pub user: Option<String>,
    /// Only runs older than this one.
    pub before: Option<i64>,
    /// At most this many runs (a negative limit lists none).
    pub limit: i64,
}

impl Store {
    /// Whether the store answers, for the service's readiness: its file (when it is one) is
    /// still where it was opened, and a query reads the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if let Some(path) = &self.file
            && !tokio::fs::try_exists(path).await.unwrap_or(false)
        {
            return Err(StoreError::Gone { path: path.clone() });
        }
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    /// The admin token's hash, if one was made.
    pub async fn admin_token_hash(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT hash FROM admin_token WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Keeps a new admin token's hash, replacing the old one (which stops working at once).
    pub async fn set_admin_token_hash(&self, hash: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO admin_token (id, hash, created_at) VALUES (1, ?, ?)
             ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs matching `filter`, newest first.
    pub async fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let by_operation =
            filter.target.is_some() || filter.kind.is_some() || filter.user.is_some();
        let rows = sqlx::query(
            "SELECT * FROM runs
             WHERE (?1 IS NULL OR app = ?1)
               AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR trigger = ?3)
               AND (?4 IS NULL OR id < ?4)
               AND (?5 = 0 OR EXISTS (
                    SELECT 1 FROM operations o
                    WHERE o.run_id = runs.id
                      AND (?6 IS NULL OR o.target = ?6)
                      AND (?7 IS NULL OR o.kind = ?7)
                      AND (?8 IS NULL OR o.subject = ?8 COLLATE NOCASE)))
             ORDER BY id DESC LIMIT ?9",
        )
        .bind(&filter.app)
        .bind(&filter.status)
        .bind(&filter.trigger)
        .bind(filter.before)
        .bind(by_operation)
        .bind(&filter.target)
        .bind(&filter.kind)
        .bind(&filter.user)
        .bind(filter.limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::run_from_row).collect()
    }

    /// When the app's newest run started (RFC 3339), dry runs included: the scheduler counts
    /// an interval from it.
    pub async fn last_run_started(&self, app: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT started_at FROM runs WHERE app = ? ORDER BY id DESC LIMIT 1")
            .bind(app)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// When the app's newest run that ended `done` finished (RFC 3339).
    pub async fn last_successful_run(&self, app: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT finished_at FROM runs WHERE app = ? AND status = 'done' AND dry_run = 0
             ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Discards a run held by the guard: its plan is never applied, and no approval can be
    /// given for it any more. Refused for a run that is not held.
    pub async fn discard_run(&self, run_id: i64) -> Result<RunRecord, StoreError> {
        let _writing = self.writer.lock().await;
        let run = self
            .run(run_id)
            .await?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        if run.status != idsync_model::run::RunStatus::Held.as_str() {
            return Err(StoreError::NotDiscardable {
                run: run_id,
                why: format!(
                    "it is {}, not held: only a run held by the guard can be discarded",
                    run.status
                ),
            });
        }
        sqlx::query("UPDATE runs SET status = 'discarded' WHERE id = ? AND status = 'held'")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(RunRecord {
            status: "discarded".into(),
            ..run
        })
    }
}
