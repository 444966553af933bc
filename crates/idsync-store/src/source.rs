//! What each app last read from its source (Entra ID), kept so that the next run reads only
//! the changes (delta links), and how many users it had in scope (for the empty-source guard).

use sqlx::Row;

use crate::{Store, StoreError, now};

impl Store {
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
}
