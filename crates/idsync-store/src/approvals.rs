//! Runs held by the mass-change guard, their approval, and the approval's one use: an approval
//! covers exactly the accounts and memberships the held plan named, for one later run.

use idsync_model::held::Held;
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{RunRecord, Store, StoreError, json};

/// An approval not used yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The held run that was approved.
    pub run_id: i64,
    /// What the approval covers: exactly what the held plan named.
    pub held: Held,
}

impl Store {
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

    /// [`Store::approve_run`] with the app's `guard.approval_expires_minutes`: the run may
    /// be approved that long after it was held, and the approval is used within as long from
    /// now.
    pub async fn approve_run_within(
        &self,
        run_id: i64,
        approval_expires_minutes: u64,
    ) -> Result<RunRecord, StoreError> {
        let window = i64::try_from(approval_expires_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
        let expires_at = OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_add(window);
        self.approve_run(run_id, window, expires_at).await
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

    /// The plan a held run kept for review (`None`: the run kept none, it was not held).
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
}
