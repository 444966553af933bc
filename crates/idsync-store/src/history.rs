//! The history of every operation a run sent, with its result: written in the same
//! transaction as the bookkeeping it implies, so the two never disagree.

use idsync_model::bookkeeping::Bookkeeping;
use idsync_model::op_result::OpResult;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::managed::write_bookkeeping;
use crate::{Store, StoreError, json};

/// One operation of a run as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Its place in the run, from 1.
    pub seq: i64,
    /// The target it was sent to.
    pub target: String,
    /// What kind of operation (`OperationKind`).
    pub kind: String,
    /// The user or group it was about.
    pub subject: String,
    /// The planned operation in full, with its reason.
    pub detail: serde_json::Value,
    /// Where it ended up (`OpStatus`).
    pub status: String,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// How long it took, retries included.
    pub duration_ms: i64,
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
            rows.push((r, detail, r.status.as_str()));
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

impl Store {
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

    /// A run's operations, in the order they were recorded.
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
