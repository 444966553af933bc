//! Apps and targets created through the admin API. The store keeps each as the JSON of one
//! `[[apps]]` / `[[targets]]` entry of the config file, as given; sealing its secrets before
//! they get here is the caller's (see [`crate::sealed`]): the store never sees them in plain
//! text.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError};

/// Which list an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An `[[apps]]` entry.
    App,
    /// A `[[targets]]` entry.
    Target,
}

impl EntryKind {
    /// As stored in the `kind` column and shown by the admin API (`app`, `target`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::App => "app",
            EntryKind::Target => "target",
        }
    }
}

/// One app or target created through the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiEntry {
    /// Whether it is an app or a target.
    pub kind: EntryKind,
    /// Its `name`, unique within its kind.
    pub name: String,
    /// The entry, secrets sealed.
    pub body: serde_json::Value,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it was last replaced (RFC 3339, UTC); `created_at` until then.
    pub updated_at: String,
}

impl Store {
    /// Every entry created through the API, in the order they were created.
    pub async fn api_entries(&self) -> Result<Vec<ApiEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, body, created_at, updated_at FROM api_entries
             ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.get(0);
                let name: String = row.get(1);
                let body: String = row.get(2);
                Ok(ApiEntry {
                    kind: if kind == "app" {
                        EntryKind::App
                    } else {
                        EntryKind::Target
                    },
                    body: crate::json(&body, &format!("api_entries ({kind} {name:?})"))?,
                    name,
                    created_at: row.get(3),
                    updated_at: row.get(4),
                })
            })
            .collect()
    }

    /// Creates the entry, or replaces it (keeping when it was created).
    pub async fn put_api_entry(
        &self,
        kind: EntryKind,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let now = crate::now();
        sqlx::query(
            "INSERT INTO api_entries (kind, name, body, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body,
                                                    updated_at = excluded.updated_at",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(body.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the entry; false when there was none. The app's history and what idsync knows
    /// of its accounts stay: they are the record of what was done.
    pub async fn delete_api_entry(&self, kind: EntryKind, name: &str) -> Result<bool, StoreError> {
        let _writing = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM api_entries WHERE kind = ? AND name = ?")
            .bind(kind.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn entries_are_created_replaced_listed_and_deleted() {
        let store = Store::open_url("sqlite::memory:").await.expect("store");
        assert!(store.api_entries().await.expect("list").is_empty());
        store
            .put_api_entry(EntryKind::Target, "jira", &json!({"name": "jira"}))
            .await
            .expect("put");
        store
            .put_api_entry(EntryKind::App, "jira", &json!({"name": "jira", "n": 1}))
            .await
            .expect("an app may share a target's name");
        store
            .put_api_entry(EntryKind::App, "jira", &json!({"name": "jira", "n": 2}))
            .await
            .expect("replace");
        let entries = store.api_entries().await.expect("list");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].kind, EntryKind::Target);
        assert_eq!(entries[1].body["n"], 2);
        assert!(
            store
                .delete_api_entry(EntryKind::App, "jira")
                .await
                .expect("delete")
        );
        assert!(
            !store
                .delete_api_entry(EntryKind::App, "jira")
                .await
                .expect("delete again")
        );
        assert_eq!(store.api_entries().await.expect("list").len(), 1);
    }
}
