//! Runs: started, finished, or closed as interrupted when their process died; and the history
//! of runs as the console and the command line show it.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{AppLease, Store, StoreError, json, now};

/// One run as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id, increasing.
    pub id: i64,
    /// The app it synced.
    pub app: String,
    /// What started it (`Trigger`).
    pub trigger: String,
    /// Whether it only planned.
    pub dry_run: bool,
    /// Where it stands (`RunStatus`).
    pub status: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339), if it has.
    pub finished_at: Option<String>,
    /// Its operation counts, as the run reported them.
    pub counts: serde_json::Value,
    /// Its summary, as the run reported it.
    pub summary: serde_json::Value,
    /// Accounts its plan deprovisions, when held.
    pub deprovisions: i64,
    /// Deprovisions an approval of it allowed.
    pub approved_deprovisions: i64,
    /// Why it failed, was interrupted, or what became of its approval.
    pub error: Option<String>,
}

impl Store {
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

    /// Records a run as started (running, with this process's id), holding the app's lock.
    /// Returns its id.
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

    pub(crate) fn run_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RunRecord, StoreError> {
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

    /// One run, if the history has it.
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
}
