//! Links between source objects and target accounts (which app owns each account), and the
//! e-mail addresses idsync sent to accounts of targets that do not report them.

use idsync_model::link::Link;
use sqlx::Row;

use crate::{Store, StoreError};

/// Keeps `links`, many per statement (a statement each cost a round trip to SQLite's thread per
/// renamed or new account). A source object has one account per target: the last link given
/// for it wins, and replaces any older link of it.
pub(crate) async fn upsert_links(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    links: &[Link],
    linked_at: &str,
) -> Result<(), StoreError> {
    // Five values a link to delete, eight to insert: well under SQLite's 32,766 a statement.
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
            "INSERT INTO links (target, account_key, app, source_id, username, linked_at, kept_username, rename_reported) ",
        );
        insert.push_values(chunk, |mut row, link| {
            row.push_bind(target)
                .push_bind(link.key.as_str())
                .push_bind(link.app.as_str())
                .push_bind(link.source_id.as_str())
                .push_bind(link.username.as_str())
                .push_bind(linked_at)
                .push_bind(link.kept_username.as_deref())
                .push_bind(link.rename_reported.as_deref());
        });
        insert.push(
            " ON CONFLICT (target, account_key) DO UPDATE SET
                app = excluded.app, source_id = excluded.source_id, username = excluded.username,
                kept_username = excluded.kept_username, rename_reported = excluded.rename_reported",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops the links of these accounts (by key), and the e-mail addresses idsync sent them.
pub(crate) async fn remove_links(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    for key in keys {
        sqlx::query("DELETE FROM links WHERE target = ? AND account_key = ?")
            .bind(target)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM sent_emails WHERE target = ? AND account_key = ?")
            .bind(target)
            .bind(key)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Remembers (account key, e-mail) idsync sent, many per statement (three values a row).
pub(crate) async fn upsert_sent_emails(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    sent: &[(String, String)],
) -> Result<(), StoreError> {
    const EMAILS_PER_STATEMENT: usize = 500;
    for chunk in sent.chunks(EMAILS_PER_STATEMENT) {
        let mut upsert =
            sqlx::QueryBuilder::new("INSERT INTO sent_emails (target, account_key, email) ");
        upsert.push_values(chunk, |mut row, (key, email)| {
            row.push_bind(target)
                .push_bind(key.as_str())
                .push_bind(email.as_str());
        });
        upsert.push(" ON CONFLICT (target, account_key) DO UPDATE SET email = excluded.email");
        upsert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Every app's links on one target.
    pub async fn links(&self, target: &str) -> Result<Vec<Link>, StoreError> {
        // One JSON array built inside SQLite rather than a row each: at 100k links per target,
        // handing rows over one value at a time cost about a second per target.
        let text: String = sqlx::query(
            "SELECT json_group_array(json_array(app, source_id, account_key, username,
                                                kept_username, rename_reported)
                                     ORDER BY app, source_id)
             FROM links WHERE target = ?",
        )
        .bind(target)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let links = tokio::task::spawn_blocking(move || {
            type Row = (
                String,
                String,
                String,
                String,
                Option<String>,
                Option<String>,
            );
            serde_json::from_str::<Vec<Row>>(&text)
                .map(|rows| {
                    rows.into_iter()
                        .map(
                            |(app, source_id, key, username, kept_username, rename_reported)| {
                                Link {
                                    app,
                                    source_id,
                                    key,
                                    username,
                                    kept_username,
                                    rename_reported,
                                }
                            },
                        )
                        .collect()
                })
                .map_err(|source| StoreError::Json {
                    what: "links".into(),
                    source,
                })
        });
        links.await.map_err(StoreError::from_join)?
    }

    /// The e-mail address idsync last sent to each account of a target, by account key: for
    /// targets that do not report e-mail addresses.
    pub async fn sent_emails(
        &self,
        target: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT account_key, email FROM sent_emails WHERE target = ?")
            .bind(target)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
