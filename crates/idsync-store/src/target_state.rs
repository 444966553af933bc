//! What idsync last knew of each target, and the target's write epoch: a run that writes to a
//! target bumps its epoch first, so that a state read before the writes is never taken for what
//! the target holds after them.

use sqlx::Row;

use crate::{Store, StoreError};

/// A target's state as idsync last knew it (see [`Store::known_target_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTargetState {
    /// What the state was read with; a state read with another is of no use.
    pub fingerprint: String,
    /// When the target was last read in full (unix seconds).
    pub read_at: i64,
    /// The target's write epoch the state was read at.
    pub epoch: i64,
    /// The state in its stored form (`idsync_engine::packed`).
    pub state: Vec<u8>,
}

impl Store {
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

    /// Drops what idsync knew of a target: its next run reads it in full. Nothing in the
    /// workspace calls it today; it is the way to make a target be read afresh.
    pub async fn forget_target_state(&self, target: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        sqlx::query("DELETE FROM target_state WHERE target = ?")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
