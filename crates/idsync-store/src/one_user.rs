//! What the store holds about one user, for a sign-in sync: that user's links and managed
//! memberships only, each read by an index instead of loading a whole target's (100k links, a
//! million memberships at scale), and the app's lock taken within a bounded wait.

use std::time::{Duration, Instant};

use idsync_model::link::{Link, ManagedMembership};
use idsync_model::managed::KEY_SEPARATOR;
use sqlx::Row;

use crate::{AppLease, Store, StoreError};

/// The source users of an app whose account has a username, by the index of migration 0011.
const SOURCES_OF_USERNAME: &str =
    "SELECT target, source_id FROM links WHERE app = ? AND lower(username) = lower(?)";

/// How often a bounded wait for an app's lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(25);

fn link_of(row: &sqlx::sqlite::SqliteRow) -> Link {
    Link {
        app: row.get(0),
        source_id: row.get(1),
        key: row.get(2),
        username: row.get(3),
        kept_username: row.get(4),
        rename_reported: row.get(5),
    }
}

/// The columns [`link_of`] reads, in its order: a macro, so that queries stay literals.
macro_rules! link_columns {
    () => {
        "app, source_id, account_key, username, kept_username, rename_reported"
    };
}

impl Store {
    /// Takes the app's lock, waiting at most `wait` for a run that holds it; then
    /// [`StoreError::Busy`], naming that run. Polls: a file lock has no timed wait, and a
    /// sign-in sync waits seconds at most.
    pub async fn lock_app_within(&self, app: &str, wait: Duration) -> Result<AppLease, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            match self.lock_app(app, false).await {
                Err(StoreError::Busy { .. }) if Instant::now() + LOCK_RETRY <= deadline => {
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                other => return other,
            }
        }
    }

    /// The link of `app` for source user `source_id` on `target`, if any.
    pub async fn link_of_source(
        &self,
        app: &str,
        target: &str,
        source_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE app = ? AND target = ? AND source_id = ?"
        ))
        .bind(app)
        .bind(target)
        .bind(source_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(link_of))
    }

    /// The links (of any app) of these accounts on `target`.
    pub async fn links_of_keys(
        &self,
        target: &str,
        keys: &[&str],
    ) -> Result<Vec<Link>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE target = "
        ));
        query.push_bind(target).push(" AND account_key IN (");
        let mut list = query.separated(", ");
        for key in keys {
            list.push_bind(*key);
        }
        query.push(") ORDER BY app, source_id");
        let rows = query.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(link_of).collect())
    }

    /// The source users of `app` whose account on some target has `username` (compared without
    /// case, as the products compare usernames), each with the target: `(target, source_id)`.
    pub async fn sources_of_username(
        &self,
        app: &str,
        username: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(SOURCES_OF_USERNAME)
            .bind(app)
            .bind(username)
            .fetch_all(&self.pool)
            .await?;
        let mut found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // Sorted here: asked to sort by target, SQLite prefers the index that gives that order
        // and reads every link of the app.
        found.sort();
        Ok(found)
    }

    /// The memberships `app` manages on `target` for one account, among `groups` (lower-case
    /// names: the groups the account is in, the only ones a plan can take it out of):
    /// (lower-case group, key). Only those groups' rows are looked at, not the whole target's.
    pub async fn managed_memberships_of(
        &self,
        app: &str,
        target: &str,
        key: &str,
        groups: &[String],
    ) -> Result<Vec<ManagedMembership>, StoreError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        // Each group keeps its members as one string of keys between separators (see the
        // `managed` module): matched with the separators around the key, so that a key is never
        // found inside a longer one.
        let sep = KEY_SEPARATOR.to_string();
        let mut found = Vec::new();
        for chunk in groups.chunks(500) {
            let mut query =
                sqlx::QueryBuilder::new("SELECT group_name FROM managed_groups WHERE app = ");
            query
                .push_bind(app)
                .push(" AND target = ")
                .push_bind(target)
                .push(" AND instr(")
                .push_bind(sep.clone())
                .push(" || members || ")
                .push_bind(sep.clone())
                .push(", ")
                .push_bind(format!("{sep}{key}{sep}"))
                .push(") > 0 AND group_name IN (");
            let mut list = query.separated(", ");
            for g in chunk {
                list.push_bind(g.as_str());
            }
            query.push(") ORDER BY group_name");
            let rows = query.build().fetch_all(&self.pool).await?;
            found.extend(rows.iter().map(|r| (r.get::<String, _>(0), key.to_owned())));
        }
        found.sort();
        Ok(found)
    }

    /// What a target's known state was read with, when, and at which write epoch, without the
    /// state itself (megabytes at 100k users): whether what was read of it before still holds.
    pub async fn known_target_stamp(
        &self,
        target: &str,
    ) -> Result<Option<(String, i64, i64)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT s.fingerprint, s.read_at, e.epoch FROM target_state s
             JOIN target_epochs e ON e.target = s.target AND e.epoch = ",
            crate::target_state::valid_epoch!("s"),
            " WHERE s.target = ?"
        ))
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    /// The e-mail address idsync last sent one account, for targets that do not report them.
    pub async fn sent_email(&self, target: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT email FROM sent_emails WHERE target = ? AND account_key = ?")
            .bind(target)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sign-in given a bare username looks it up by index (migration 0011), not by reading
    /// every link of the app: SQLite's own query plan says which.
    #[tokio::test]
    async fn a_username_is_looked_up_by_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_file(&dir.path().join("idsync.db"))
            .await
            .expect("store opens");
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {SOURCES_OF_USERNAME}"
        )))
        .bind("main")
        .bind("Ada")
        .fetch_all(&store.pool)
        .await
        .expect("planned")
        .iter()
        .map(|r| r.get::<String, _>(3))
        .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX links_by_app_lower_username")),
            "{plan:?}"
        );
    }
}
