//! Small helpers the product modules share.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures::{StreamExt, TryStreamExt, stream};
use idsync_model::{Capabilities, Operation, OperationKind, TargetError, TargetKind, UserChanges};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Map, Value};

use crate::api::Api;

/// A random password for accounts created where the API insists on one (Bitbucket, Confluence).
/// idsync's users sign in through SSO or an external directory; nobody ever learns this one.
pub(crate) fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

/// A custom attribute as a string: JSON strings as they are, anything else as JSON text.
pub(crate) fn attribute_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The details `changes` sets, as JSON fields under the names the product gives the e-mail
/// address (`email`) and the display name (`display_name`); `None` when nothing changes, so
/// that nothing need be sent.
pub(crate) fn user_changes(
    changes: &UserChanges,
    email: &str,
    display_name: &str,
) -> Option<Map<String, Value>> {
    let fields: Map<String, Value> = [
        (email, &changes.email),
        (display_name, &changes.display_name),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field.to_owned(), Value::from(value.as_deref()?))))
    .collect();
    (!fields.is_empty()).then_some(fields)
}

/// Usernames compare case-insensitively in every Atlassian product.
pub(crate) use idsync_model::name::same_name;

/// Runs `f` over `items` with at most `concurrency` in flight, returning the results in input
/// order; the first error fails the whole (a partial read must never be planned against), and
/// the calls still in flight are dropped with it.
///
/// Completion order is free (`buffer_unordered`): with an ordered buffer one slow item (a
/// group of many pages) would hold back every later one and leave the other slots idle.
pub(crate) async fn fan_out<I, T, F, Fut>(
    items: I,
    concurrency: usize,
    f: F,
) -> Result<Vec<T>, TargetError>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Result<T, TargetError>>,
{
    let mut done: Vec<(usize, T)> = stream::iter(items.into_iter().enumerate())
        .map(|(index, item)| {
            let call = f(item);
            async move { call.await.map(|value| (index, value)) }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    done.sort_unstable_by_key(|(index, _)| *index);
    Ok(done.into_iter().map(|(_, value)| value).collect())
}

/// One page of a list paged by item offset (`startAt`, `start`, `startIndex`).
pub(crate) struct OffsetPage<T> {
    pub items: Vec<T>,
    /// How many items the whole list holds, when the server says.
    pub total: Option<usize>,
    /// Whether the server says (or its paging fields imply) that more follow this page.
    pub more: bool,
}

/// Every item of an offset-paged list; `fetch(offset)` reads the page starting at the 0-based
/// `offset`. The first page gives the server's real page size (servers lower a `limit` above
/// their maximum) and, where the API has one, the total: the remaining pages are then read
/// `concurrency` at a time instead of one after another. Without a total, or if the list grew
/// while it was read (its last page still says more follow), it goes on page by page. Any
/// failure fails the whole list.
pub(crate) async fn offset_pages<T, F, Fut>(
    concurrency: usize,
    fetch: F,
) -> Result<Vec<T>, TargetError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<OffsetPage<T>, TargetError>>,
{
    let first = fetch(0).await?;
    let step = first.items.len();
    let mut more = first.more && step > 0;
    let mut next = step;
    let mut items = first.items;
    if more && let Some(total) = first.total.filter(|t| *t > next) {
        let starts: Vec<usize> = (next..total).step_by(step).collect();
        let pages = fan_out(starts.iter().copied(), concurrency, &fetch).await?;
        for (start, page) in starts.into_iter().zip(pages) {
            more = page.more && !page.items.is_empty();
            next = start + page.items.len();
            items.extend(page.items);
        }
    }
    while more {
        let page = fetch(next).await?;
        let count = page.items.len();
        more = page.more && count > 0;
        next += count;
        items.extend(page.items);
    }
    Ok(items)
}

/// The error for an operation this product cannot carry out at all, saying why.
pub(crate) fn unsupported(api: &Api, op: &Operation) -> TargetError {
    let product = match api.kind {
        TargetKind::JiraDc => "Jira",
        TargetKind::ConfluenceDc => "Confluence",
        TargetKind::BitbucketDc => "Bitbucket",
        TargetKind::AtlassianCloud => "the Atlassian SCIM directory",
    };
    api.unsupported(match op {
        Operation::RenameUser {
            user, new_username, ..
        } => format!(
            "cannot rename user '{user}' to '{new_username}': {product}'s REST API cannot rename users; rename them in the user directory"
        ),
        Operation::SetAttribute { user, name, .. } => format!(
            "cannot set attribute '{name}' of user '{user}': {product} has no custom user attributes"
        ),
        Operation::CreateUser { user, .. } => {
            format!("cannot create user '{user}' with custom attributes: {product} has none")
        }
        Operation::HandOverLead { kind, id, .. } => {
            format!("cannot hand over {kind:?} {id}: {product} has no project or component leads")
        }
        other => format!("{product} cannot {}", other.kind()),
    })
}

/// The members of every group, `concurrency` groups at a time, paired with the group.
pub(crate) async fn members_of_all<T, F, Fut>(
    groups: &[String],
    concurrency: usize,
    members: F,
) -> Result<Vec<(String, Vec<T>)>, TargetError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<T>, TargetError>>,
{
    let lists = fan_out(groups.iter().cloned(), concurrency, members).await?;
    Ok(groups.iter().cloned().zip(lists).collect())
}

/// The groups `groups` lists, then the members of every one of them (`members`),
/// `concurrency` groups at a time, paired with the group.
pub(crate) async fn groups_and_members<T, F, Fut>(
    groups: impl Future<Output = Result<Vec<String>, TargetError>>,
    concurrency: usize,
    members: F,
) -> Result<(Vec<String>, Vec<(String, Vec<T>)>), TargetError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<T>, TargetError>>,
{
    let groups = groups.await?;
    let members = members_of_all(&groups, concurrency, members).await?;
    Ok((groups, members))
}

/// Group → account keys of its members, as `ActualState::memberships` holds them.
pub(crate) fn membership_keys<T>(
    lists: &[(String, Vec<T>)],
    key: impl Fn(&T) -> String,
) -> BTreeMap<String, BTreeSet<String>> {
    lists
        .iter()
        .map(|(group, members)| (group.clone(), members.iter().map(&key).collect()))
        .collect()
}

/// A target's capabilities: those of the newest version of its product until the version it
/// runs is known, then those of that version.
pub(crate) struct VersionedCapabilities {
    newest: Capabilities,
    found: std::sync::OnceLock<Capabilities>,
}

impl VersionedCapabilities {
    pub(crate) fn new(newest: Capabilities) -> Self {
        VersionedCapabilities {
            newest,
            found: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> &Capabilities {
        self.found.get().unwrap_or(&self.newest)
    }

    /// Those of the version found: the newest's, less `unavailable`. Set once (a target object
    /// lives for one run, against one server).
    pub(crate) fn found(&self, unavailable: BTreeMap<OperationKind, String>) {
        let mut capabilities = self.newest.clone();
        capabilities.unavailable = unavailable;
        let _ = self.found.set(capabilities);
    }
}

/// A future as `#[async_trait]` returns it from a trait method.
pub(crate) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The `Target` methods every target answers alike from its `api` and `capabilities`
/// fields; used inside each `impl Target`.
///
/// `target_basics!(data_center)` adds the two a Data Center product answers alike from its
/// own `discover_version(quick)` and `check_access(&mut probe)`: `discover`, which reads the
/// version, and `probe`, which reads it quickly and then, once the product answered, checks
/// the credentials and the administrator rights its own way. `#[async_trait]` does not see
/// into a macro, so these two are written out as it writes an async trait method: a
/// boxed future.
macro_rules! target_basics {
    () => {
        fn name(&self) -> &str {
            &self.api.name
        }

        fn kind(&self) -> idsync_model::TargetKind {
            self.api.kind
        }

        fn capabilities(&self) -> &idsync_model::Capabilities {
            self.capabilities.get()
        }

        fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
            self.api.request_counts()
        }
    };
    (data_center) => {
        $crate::util::target_basics!();

        fn discover<'life0, 'async_trait>(
            &'life0 self,
        ) -> $crate::util::Boxed<
            'async_trait,
            Result<idsync_model::ProductInfo, idsync_model::TargetError>,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(self.discover_version(false))
        }

        fn probe<'life0, 'async_trait>(
            &'life0 self,
        ) -> $crate::util::Boxed<'async_trait, idsync_model::TargetProbe>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move {
                let discovered = self.discover_version(true).await;
                match $crate::probe::reached(discovered, &self.api, self.capabilities.get()) {
                    std::ops::ControlFlow::Continue(mut probe) => {
                        // A step that fails has put its failure in the probe; nothing else
                        // is left to do with the break.
                        let _ = self.check_access(&mut probe).await;
                        probe
                    }
                    std::ops::ControlFlow::Break(stopped) => stopped,
                }
            })
        }
    };
}
pub(crate) use target_basics;

/// An account found by name and the groups it is in, asked side by side (a sign-in waits for
/// both). The groups are asked by the name given; where the account's own spelling differs
/// (the products compare names ignoring case), they are asked again by that spelling. A name
/// nobody has is no account, whatever the groups request answered beside it.
pub(crate) async fn account_and_groups<A, G, F>(
    username: &str,
    account: impl Future<Output = Result<Option<A>, TargetError>>,
    groups_of: impl Fn(String) -> F,
    name_of: impl Fn(&A) -> &str,
) -> Result<Option<(A, G)>, TargetError>
where
    F: Future<Output = Result<G, TargetError>>,
{
    let (account, groups) = futures::join!(account, groups_of(username.to_owned()));
    let Some(account) = account? else {
        return Ok(None);
    };
    let groups = match groups {
        Ok(groups) if name_of(&account) == username => groups,
        _ => groups_of(name_of(&account).to_owned()).await?,
    };
    Ok(Some((account, groups)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_differ() {
        let a = random_password();
        assert_eq!(a.len(), 40);
        assert_ne!(a, random_password());
    }

    #[test]
    fn attribute_texts() {
        assert_eq!(attribute_text(&Value::from("x")), Some("x".into()));
        assert_eq!(attribute_text(&Value::from(3)), Some("3".into()));
        assert_eq!(attribute_text(&Value::Null), None);
    }
}
