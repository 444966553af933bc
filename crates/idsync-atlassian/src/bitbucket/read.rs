//! Bitbucket's reads: the paged `admin/*` listings of users, groups and memberships, and how
//! a Bitbucket account becomes a target user under the licensed-groups policy.

use std::collections::{BTreeMap, BTreeSet};

use idsync_model::{TargetError, TargetUser};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{BbGroup, BbUser, BitbucketDc};
use crate::api::Call;
use crate::util::{fan_out, same_name};

/// Page size asked for; Bitbucket caps it (usually at 1000) and says so in `limit`.
const PAGE: usize = 1000;

/// The paged envelope of every `admin/*` listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(default)]
    is_last_page: Option<bool>,
    #[serde(default)]
    next_page_start: Option<usize>,
}

impl BitbucketDc {
    /// Follows `start`/`nextPageStart` until `isLastPage`.
    pub(super) async fn pages<T: DeserializeOwned>(
        &self,
        call: impl Fn() -> Call,
        what: &str,
    ) -> Result<Vec<T>, TargetError> {
        let mut items = Vec::new();
        let mut start = 0usize;
        loop {
            let page: Page<T> = self
                .api
                .fetch(call().query("start", start).query("limit", PAGE), what)
                .await?;
            let count = page.values.len();
            items.extend(page.values);
            if page.is_last_page != Some(false) {
                return Ok(items);
            }
            match page.next_page_start {
                Some(next) if next > start && count > 0 => start = next,
                _ => {
                    return Err(self.api.malformed(
                        what,
                        "a page that is not the last one has no usable nextPageStart",
                    ));
                }
            }
        }
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-get
    pub(super) async fn users(&self, filter: Option<&str>) -> Result<Vec<BbUser>, TargetError> {
        self.pages(
            || {
                let call = self.api.get("rest/api/1.0/admin/users", &[]);
                match filter {
                    Some(f) => call.query("filter", f),
                    None => call,
                }
            },
            "list users",
        )
        .await
    }

    pub(super) async fn find_user(&self, username: &str) -> Result<Option<BbUser>, TargetError> {
        Ok(self
            .users(Some(username))
            .await?
            .into_iter()
            .find(|u| same_name(&u.name, username)))
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-get
    pub(super) async fn groups(&self, filter: Option<&str>) -> Result<Vec<String>, TargetError> {
        let groups: Vec<BbGroup> = self
            .pages(
                || {
                    let call = self.api.get("rest/api/1.0/admin/groups", &[]);
                    match filter {
                        Some(f) => call.query("filter", f),
                        None => call,
                    }
                },
                "list groups",
            )
            .await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    /// Direct members of a group.
    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-more-members-get
    pub(super) async fn members(&self, group: &str) -> Result<Vec<BbUser>, TargetError> {
        self.pages(
            || {
                self.api
                    .get("rest/api/1.0/admin/groups/more-members", &[])
                    .query("context", group)
            },
            &format!("list the members of group '{group}'"),
        )
        .await
    }

    /// The groups a user is directly in.
    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-more-members-get
    pub(super) async fn groups_of(&self, user: &str) -> Result<Vec<String>, TargetError> {
        let groups: Vec<BbGroup> = self
            .pages(
                || {
                    self.api
                        .get("rest/api/1.0/admin/users/more-members", &[])
                        .query("context", user)
                },
                &format!("list the groups of user '{user}'"),
            )
            .await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    /// Group → member keys for every one of `groups`, read per user. A group a user holds that
    /// is not among `groups` (created since they were listed) is left out, as the per-group
    /// read would.
    pub(super) async fn memberships_by_user(
        &self,
        users: &[BbUser],
        groups: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>, TargetError> {
        let held = fan_out(users, self.api.concurrency, |u| self.groups_of(&u.name)).await?;
        let mut memberships: BTreeMap<String, BTreeSet<String>> = groups
            .iter()
            .map(|g| (g.clone(), BTreeSet::new()))
            .collect();
        for (user, held) in users.iter().zip(held) {
            for group in held {
                if let Some(members) = memberships.get_mut(&group) {
                    members.insert(user.key());
                }
            }
        }
        Ok(memberships)
    }

    pub(super) fn target_user(
        &self,
        user: BbUser,
        groups: Option<&BTreeSet<String>>,
    ) -> TargetUser {
        let key = user.key();
        // Under the licensed-groups policy "active" means "holds a licensed group".
        let active = match (self.licensed(), groups) {
            (Some((licensed, _)), Some(groups)) => groups
                .iter()
                .any(|g| licensed.iter().any(|l| same_name(l, g))),
            _ => user.active,
        };
        TargetUser {
            key,
            username: user.name,
            email: user.email_address.filter(|e| !e.is_empty()),
            display_name: user.display_name.filter(|d| !d.is_empty()),
            active,
            attributes: BTreeMap::new(),
            external_id: None,
        }
    }
}
