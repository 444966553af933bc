//! The memberships each app manages (the only ones it ever removes), the bookkeeping that keeps
//! them and the links in step with what a run did, and the intentions (creations and
//! memberships) recorded before a phase of writes is sent.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use idsync_model::bookkeeping::{Bookkeeping, CreateIntent, Intentions};
use idsync_model::managed::ManagedMemberships;
use sqlx::Row;

use crate::links::{remove_links, upsert_links, upsert_sent_emails};
use crate::{Store, StoreError, now};

/// Separates the account keys of one managed group in its row (see migration 0003).
const MEMBER_SEPARATOR: char = idsync_model::managed::KEY_SEPARATOR;

/// Groups named in one statement at most (one bound value each, or four to a row written).
const GROUPS_PER_STATEMENT: usize = 500;

/// Applies the managed-membership side of `changes` to the packed rows, rewriting only the
/// groups that change. Dropped links lose their memberships in every group.
pub(crate) async fn update_managed_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    changes: &Bookkeeping,
) -> Result<(), StoreError> {
    if changes.add_managed.is_empty()
        && changes.remove_managed.is_empty()
        && changes.remove_links.is_empty()
    {
        return Ok(());
    }
    let gone: HashSet<&str> = changes.remove_links.iter().map(String::as_str).collect();
    let stored = read_managed_groups(tx, app, target, changes, !gone.is_empty()).await?;
    let (emptied, rewritten) = new_group_members(&stored, changes, &gone);
    delete_managed_groups(tx, app, target, &emptied).await?;
    write_managed_groups(tx, app, target, &rewritten).await
}

/// The stored rows (group → joined keys) that `changes` may touch. Only the groups that change
/// are read, unless accounts left (`every_group`: they leave every group): progress is recorded
/// many times a run, and a target at 100k users manages a million memberships.
async fn read_managed_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    changes: &Bookkeeping,
    every_group: bool,
) -> Result<BTreeMap<String, String>, StoreError> {
    if every_group {
        let rows = sqlx::query(
            "SELECT group_name, members FROM managed_groups WHERE app = ? AND target = ?",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&mut **tx)
        .await?;
        return Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect());
    }
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    let names: BTreeSet<&str> = changes
        .add_managed
        .iter()
        .chain(&changes.remove_managed)
        .map(|(g, _)| g.as_str())
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    for chunk in names.chunks(GROUPS_PER_STATEMENT) {
        let mut select =
            sqlx::QueryBuilder::new("SELECT group_name, members FROM managed_groups WHERE app = ");
        select
            .push_bind(app)
            .push(" AND target = ")
            .push_bind(target)
            .push(" AND group_name IN (");
        let mut list = select.separated(", ");
        for name in chunk {
            list.push_bind(*name);
        }
        select.push(")");
        for r in select.build().fetch_all(&mut **tx).await? {
            stored.insert(r.get(0), r.get(1));
        }
    }
    Ok(stored)
}

/// Each group `changes` touches, with its keys after them: (groups left empty, groups with
/// their new keys joined). Groups whose keys do not change are in neither.
fn new_group_members<'a>(
    stored: &'a BTreeMap<String, String>,
    changes: &'a Bookkeeping,
    gone: &HashSet<&str>,
) -> (Vec<&'a str>, Vec<(&'a str, String)>) {
    // Per group: (keys to add, keys to remove).
    let mut touched: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (g, k) in &changes.add_managed {
        touched.entry(g).or_default().0.push(k);
    }
    for (g, k) in &changes.remove_managed {
        touched.entry(g).or_default().1.push(k);
    }
    if !gone.is_empty() {
        for group in stored.keys() {
            touched.entry(group).or_default();
        }
    }
    let mut emptied: Vec<&str> = Vec::new();
    let mut rewritten: Vec<(&str, String)> = Vec::new();
    for (group, (adds, removes)) in touched {
        let stored = stored.get(group).map(String::as_str);
        match members_after(stored, adds, &removes, gone) {
            None => {}
            Some(members) if members.is_empty() => emptied.push(group),
            Some(members) => rewritten.push((group, members)),
        }
    }
    (emptied, rewritten)
}

/// A group's keys (joined, sorted) after `gone` and `removes` leave and `adds` join (adds win
/// over removes), or `None` when they do not change. One merge of two sorted lists: a sign-in
/// adds one key to groups that may hold 100k (a default group, everyone's group), and building
/// a set of every key for it cost tens of milliseconds per group.
fn members_after(
    stored: Option<&str>,
    mut adds: Vec<&str>,
    removes: &[&str],
    gone: &HashSet<&str>,
) -> Option<String> {
    let mut keys: Vec<&str> = stored
        .map(|m| {
            m.split(MEMBER_SEPARATOR)
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !keys.windows(2).all(|w| w[0] < w[1]) {
        // Rows are written sorted; one that is not is read as the set it holds.
        keys.sort_unstable();
        keys.dedup();
    }
    let removes: HashSet<&str> = removes.iter().copied().collect();
    adds.sort_unstable();
    adds.dedup();
    let mut after: Vec<&str> = Vec::with_capacity(keys.len() + adds.len());
    let mut changed = false;
    let mut adds = adds.into_iter().peekable();
    for key in keys {
        while let Some(added) = adds.next_if(|a| *a < key) {
            after.push(added);
            changed = true;
        }
        if adds.next_if_eq(&key).is_some() {
            after.push(key);
        } else if gone.contains(key) || removes.contains(key) {
            changed = true;
        } else {
            after.push(key);
        }
    }
    for added in adds {
        after.push(added);
        changed = true;
    }
    changed.then(|| after.join(&MEMBER_SEPARATOR.to_string()))
}

/// Deletes the rows of groups left with no managed member, many per statement.
async fn delete_managed_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    emptied: &[&str],
) -> Result<(), StoreError> {
    for chunk in emptied.chunks(GROUPS_PER_STATEMENT) {
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM managed_groups WHERE app = ");
        delete
            .push_bind(app)
            .push(" AND target = ")
            .push_bind(target)
            .push(" AND group_name IN (");
        let mut names = delete.separated(", ");
        for group in chunk {
            names.push_bind(*group);
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes groups with their new keys (joined), many per statement.
async fn write_managed_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    rewritten: &[(&str, String)],
) -> Result<(), StoreError> {
    for chunk in rewritten.chunks(GROUPS_PER_STATEMENT) {
        let mut upsert = sqlx::QueryBuilder::new(
            "INSERT INTO managed_groups (app, target, group_name, members) ",
        );
        upsert.push_values(chunk, |mut row, (group, members)| {
            row.push_bind(app)
                .push_bind(target)
                .push_bind(*group)
                .push_bind(members.as_str());
        });
        upsert.push(
            " ON CONFLICT (app, target, group_name) DO UPDATE SET members = excluded.members",
        );
        upsert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Everything [`Bookkeeping`] asks for, inside a transaction.
pub(crate) async fn write_bookkeeping(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    app: &str,
    target: &str,
    changes: &Bookkeeping,
) -> Result<(), StoreError> {
    remove_links(tx, target, &changes.remove_links).await?;
    upsert_sent_emails(tx, target, &changes.sent_emails).await?;
    upsert_links(tx, target, &changes.upsert_links, &now()).await?;
    update_managed_groups(tx, app, target, changes).await?;
    settle_creates(tx, target, &changes.settled_creates).await
}

/// Drops the create intents of these usernames (lower case): linked, or surely not created.
async fn settle_creates(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    usernames: &[String],
) -> Result<(), StoreError> {
    for chunk in usernames.chunks(GROUPS_PER_STATEMENT) {
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM create_intents WHERE target = ");
        delete.push_bind(target).push(" AND username IN (");
        let mut names = delete.separated(", ");
        for name in chunk {
            names.push_bind(name.as_str());
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// The memberships an app manages on a target: the only ones it may take away.
    pub async fn managed_memberships(
        &self,
        app: &str,
        target: &str,
    ) -> Result<ManagedMemberships, StoreError> {
        let rows = sqlx::query(
            "SELECT group_name, members FROM managed_groups WHERE app = ? AND target = ?
             ORDER BY group_name",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        // Kept as stored, one string of sorted keys per group: no million small strings.
        let managed = tokio::task::spawn_blocking(move || {
            ManagedMemberships::from_joined(rows.into_iter().map(|row| (row.get(0), row.get(1))))
        });
        managed.await.map_err(StoreError::from_join)
    }

    /// Writes what a (partly) applied plan means for links, managed memberships and intended
    /// creations, in one transaction.
    pub async fn apply_bookkeeping(
        &self,
        app: &str,
        target: &str,
        changes: &Bookkeeping,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        write_bookkeeping(&mut tx, app, target, changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Before a phase of a run's writes is sent: the accounts it is about to create and the
    /// memberships it is about to add (see [`Intentions`]).
    pub async fn record_intentions(
        &self,
        run_id: i64,
        target: &str,
        app: &str,
        intentions: &Intentions,
    ) -> Result<(), StoreError> {
        if intentions.is_empty() {
            return Ok(());
        }
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        // Seven values a row: well under SQLite's 32,766 a statement.
        const INTENTS_PER_STATEMENT: usize = 1000;
        for chunk in intentions.creates.chunks(INTENTS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO create_intents (target, username, app, source_id, display, email, run_id) ",
            );
            insert.push_values(chunk, |mut row, intent| {
                row.push_bind(target)
                    .push_bind(idsync_model::name::name_key(&intent.username))
                    .push_bind(intent.app.as_str())
                    .push_bind(intent.source_id.as_str())
                    .push_bind(intent.username.as_str())
                    .push_bind(intent.email.as_deref())
                    .push_bind(run_id);
            });
            insert.push(
                " ON CONFLICT (target, username) DO UPDATE SET app = excluded.app,
                    source_id = excluded.source_id, display = excluded.display,
                    email = excluded.email, run_id = excluded.run_id",
            );
            insert.build().execute(&mut *tx).await?;
        }
        let claims = Bookkeeping {
            add_managed: intentions.claims.clone(),
            ..Bookkeeping::default()
        };
        update_managed_groups(&mut tx, app, target, &claims).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creations of an app on a target that a run recorded and did not see through.
    pub async fn create_intents(
        &self,
        app: &str,
        target: &str,
    ) -> Result<Vec<CreateIntent>, StoreError> {
        let rows = sqlx::query(
            "SELECT source_id, display, email FROM create_intents WHERE app = ? AND target = ?
             ORDER BY username",
        )
        .bind(app)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CreateIntent {
                app: app.to_owned(),
                source_id: r.get(0),
                username: r.get(1),
                email: r.get(2),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(
        stored: Option<&str>,
        adds: &[&str],
        removes: &[&str],
        gone: &[&str],
    ) -> Option<String> {
        let gone: HashSet<&str> = gone.iter().copied().collect();
        members_after(stored, adds.to_vec(), removes, &gone).map(|m| m.replace('\n', " "))
    }

    #[test]
    fn a_groups_keys_change_by_one_merge() {
        let row = "K1\nK3\nK5";
        assert_eq!(
            after(Some(row), &["K4", "K0", "K9"], &[], &[]).as_deref(),
            Some("K0 K1 K3 K4 K5 K9")
        );
        assert_eq!(
            after(Some(row), &[], &["K3"], &["K5"]).as_deref(),
            Some("K1")
        );
        // An add wins over a remove of the same key; keys already there change nothing.
        assert_eq!(after(Some(row), &["K3", "K1"], &["K3"], &[]), None);
        assert_eq!(after(Some(row), &[], &["K7"], &["K8"]), None);
        assert_eq!(after(None, &[], &["K1"], &[]), None);
        assert_eq!(after(None, &["K2", "K2"], &[], &[]).as_deref(), Some("K2"));
        // Left with no key: the row goes.
        assert_eq!(
            after(Some(row), &[], &["K1", "K3", "K5"], &[]).as_deref(),
            Some("")
        );
        // A row not sorted (or with a stray separator) is read as the set it holds.
        assert_eq!(after(Some("K5\nK1\n\nK1"), &[], &[], &[]), None);
        assert_eq!(
            after(Some("K5\nK1"), &["K2"], &[], &[]).as_deref(),
            Some("K1 K2 K5")
        );
    }
}
