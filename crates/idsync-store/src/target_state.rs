//! What idsync last knew of each target, and the target's write epoch: a run that writes to a
//! target bumps its epoch first, so that a state read before the writes is never taken for what
//! the target holds after them. A sign-in sync keeps the state instead, and adds a patch of
//! the accounts it touched ([`Store::begin_target_patch`], [`Store::save_target_patch`]).

use sqlx::Row;

use crate::{Store, StoreError};

/// The write epoch a kept state is valid at: that of its last patch, if it has any, else its
/// own. A patch moves it without touching the state's row, which SQLite would rewrite whole
/// (megabytes at 100k users) to change any of its columns. A macro, so that the queries
/// using it stay literals.
macro_rules! valid_epoch {
    ($state:literal) => {
        concat!(
            "COALESCE((SELECT MAX(p.epoch) FROM target_state_patches p WHERE p.target = ",
            $state,
            ".target), ",
            $state,
            ".epoch)"
        )
    };
}
pub(crate) use valid_epoch;

/// A target's state as idsync last knew it (see [`Store::known_target_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTargetState {
    /// What the state was read with; a state read with another is of no use.
    pub fingerprint: String,
    /// When the target was last read in full (unix seconds).
    pub read_at: i64,
    /// The target's write epoch the state, with its patches, is valid at.
    pub epoch: i64,
    /// The state in its stored form (`idsync_engine::packed`).
    pub state: Vec<u8>,
    /// What sign-in syncs did to the target since, oldest first (`idsync_engine::known_patch`):
    /// the state holds only with these folded in.
    pub patches: Vec<Vec<u8>>,
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
        // One read transaction: the state and its patches as of one moment (a save in between
        // would drop patches the state read before it still needs).
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT s.fingerprint, s.read_at, e.epoch, s.state FROM target_state s
             JOIN target_epochs e ON e.target = s.target AND e.epoch = ",
            valid_epoch!("s"),
            " WHERE s.target = ?"
        ))
        .bind(target)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let patches =
            sqlx::query("SELECT patch FROM target_state_patches WHERE target = ? ORDER BY seq")
                .bind(target)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
        tx.commit().await?;
        Ok(Some(KnownTargetState {
            fingerprint: row.get(0),
            read_at: row.get(1),
            epoch: row.get(2),
            state: row.get(3),
            patches,
        }))
    }

    /// Called before a run writes to a target: the known state no longer holds, and any state
    /// saved for an earlier epoch never will. Returns the run's own epoch.
    pub async fn begin_target_writes(&self, target: &str) -> Result<i64, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        drop_known_state(&mut tx, target).await?;
        let epoch = bump_epoch(&mut tx, target).await?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Called before a sign-in sync writes to a target whose known state it planned with:
    /// bumps the epoch as [`Store::begin_target_writes`] does, so that the state is not taken
    /// for what the target holds while the writes go on, but keeps it for
    /// [`Store::save_target_patch`] to bring up to date. Returns the sync's own epoch.
    pub async fn begin_target_patch(&self, target: &str) -> Result<i64, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let epoch = bump_epoch(&mut tx, target).await?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Adds what a sign-in sync did to the known state it planned with (read with
    /// `fingerprint` at `from_epoch`), making it valid at the sync's `epoch` again. Nothing is
    /// saved if the state was replaced, or another run began writing to the target, since.
    /// Returns how many patches the state now has, or `None` when nothing was saved.
    pub async fn save_target_patch(
        &self,
        target: &str,
        fingerprint: &str,
        from_epoch: i64,
        epoch: i64,
        patch: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(concat!(
            "INSERT INTO target_state_patches (target, epoch, patch)
             SELECT ?, ?, ? WHERE (SELECT epoch FROM target_epochs WHERE target = ?) = ?
               AND EXISTS (SELECT 1 FROM target_state s
                           WHERE s.target = ? AND s.fingerprint = ? AND ",
            valid_epoch!("s"),
            " = ?)"
        ))
        .bind(target)
        .bind(epoch)
        .bind(patch)
        .bind(target)
        .bind(epoch)
        .bind(target)
        .bind(fingerprint)
        .bind(from_epoch)
        .execute(&mut *tx)
        .await?;
        if added.rows_affected() == 0 {
            return Ok(None);
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM target_state_patches WHERE target = ?")
            .bind(target)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Some(u64::try_from(count).unwrap_or(0)))
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
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?;
        let saved = done.rows_affected() > 0;
        if saved {
            // The new state holds what the patches said (it was read, or folded, after them).
            sqlx::query("DELETE FROM target_state_patches WHERE target = ?")
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        if saved && epoch == 0 {
            // The epoch row makes the saved state visible to `known_target_state`.
            sqlx::query("INSERT OR IGNORE INTO target_epochs (target, epoch) VALUES (?, 0)")
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(saved)
    }

    /// Drops what idsync knew of a target: its next run reads it in full. Nothing in the
    /// workspace calls it today; it is the way to make a target be read afresh.
    pub async fn forget_target_state(&self, target: &str) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        drop_known_state(&mut tx, target).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Drops what idsync knew of a target, with its patches.
async fn drop_known_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM target_state WHERE target = ?",
        "DELETE FROM target_state_patches WHERE target = ?",
    ] {
        sqlx::query(statement)
            .bind(target)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Bumps a target's write epoch; returns the new one.
async fn bump_epoch(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO target_epochs (target, epoch) VALUES (?, 1)
         ON CONFLICT (target) DO UPDATE SET epoch = epoch + 1
         RETURNING epoch",
    )
    .bind(target)
    .fetch_one(&mut **tx)
    .await?
    .get(0))
}
