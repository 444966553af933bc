//! Confluence's reads: its paged lists (offsets or `_links.next`), users, groups, members
//! and the version, whose resources differ between releases.

use std::collections::BTreeSet;

use idsync_model::{ProductInfo, TargetError, TargetErrorKind};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ConfluenceDc, Group, Page, Person};
use crate::api::Call;
use crate::util::fan_out;

/// Items per page asked for; 200 is Confluence's documented default and usual maximum.
const PAGE: usize = 200;

impl ConfluenceDc {
    /// Every page of a list, read with `start`/`limit` on calls from `call`. `None` when the
    /// first page is a 404 (the resource does not exist on this version).
    ///
    /// When the first page says how many items there are (`totalCount`), the remaining pages
    /// are read `concurrency` at a time at the offsets that follows from the page size the
    /// server used; otherwise, and after that if the list grew meanwhile, `_links.next` is
    /// followed page by page.
    async fn pages<T: DeserializeOwned>(
        &self,
        template: &'static str,
        call: impl Fn() -> Call,
        what: &str,
    ) -> Result<Option<Vec<T>>, TargetError> {
        let first = call().query("start", 0).query("limit", PAGE);
        let reply = self.api.send(first).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, what));
        }
        let page: Page<T> = self.api.parse(&reply, what)?;
        let step = page.results.len();
        let total = page.total_count;
        let (mut items, mut next) = Self::take(page);
        if let (Some(_), Some(total)) = (&next, total.filter(|t| *t > step)) {
            let starts: Vec<usize> = (step..total).step_by(step).collect();
            let rest = fan_out(starts, self.api.concurrency, |start| {
                let call = call().query("start", start).query("limit", step);
                async move {
                    let page: Page<T> = self.api.fetch(call, what).await?;
                    Ok(Self::take(page))
                }
            })
            .await?;
            for (page_items, page_next) in rest {
                items.extend(page_items);
                next = page_next;
            }
        }
        while let Some(link) = next {
            let page: Page<T> = self
                .api
                .fetch(self.api.follow(template, &link)?, what)
                .await?;
            let (page_items, page_next) = Self::take(page);
            items.extend(page_items);
            next = page_next;
        }
        Ok(Some(items))
    }

    /// A page's items and the link to the next page, if there is one: none after an empty
    /// page or one shorter than its `limit`.
    fn take<T>(page: Page<T>) -> (Vec<T>, Option<String>) {
        let count = page.results.len();
        let short = page
            .limit
            .is_some_and(|limit| page.size.unwrap_or(count) < limit);
        let next = page
            .links
            .and_then(|l| l.next)
            .filter(|_| count > 0 && !short);
        (page.results, next)
    }

    pub(super) async fn list<T: DeserializeOwned>(
        &self,
        template: &'static str,
        call: impl Fn() -> Call,
        what: &str,
    ) -> Result<Vec<T>, TargetError> {
        self.pages(template, call, what)
            .await?
            .ok_or_else(|| {
                self.api.err(
                    TargetErrorKind::NotFound,
                    format!("cannot {what}: the resource is not there (HTTP 404); check that base_url is Confluence's, context path included"),
                    Some(404),
                )
            })
    }

    /// Every user, active or not (Confluence 8.4+); `None` on older servers.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-list-get
    pub(super) async fn users(&self) -> Result<Option<Vec<Person>>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/user/list", &[])
                .query("expand", "status")
        };
        self.pages("rest/api/user/list", call, "list users").await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-group/#api-rest-api-group-get
    pub(super) async fn groups(&self) -> Result<Vec<String>, TargetError> {
        let call = || self.api.get("rest/api/group", &[]);
        let groups: Vec<Group> = self.list("rest/api/group", call, "list groups").await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    /// Reads the version (`quick`: for a probe) and settles the capabilities.
    pub(super) async fn discover_version(&self, quick: bool) -> Result<ProductInfo, TargetError> {
        let info = crate::versions::confluence(&self.api, quick).await?;
        self.capabilities
            .found(crate::versions::confluence_unavailable(info.version));
        Ok(info)
    }

    /// The username of the account the credentials belong to. Confluence answers this for
    /// anyone, as the anonymous user (`type: anonymous`, no username) when it did not take the
    /// credentials: that is a refusal too.
    /// https://developer.atlassian.com/server/confluence/rest/v910/api-group-user/
    pub(super) async fn current_user(&self) -> Result<String, TargetError> {
        #[derive(Deserialize)]
        struct Current {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            username: Option<String>,
        }
        let me: Current = self.api.signed_in("rest/api/user/current").await?;
        match me.username {
            Some(name) if me.kind.as_deref() != Some("anonymous") => Ok(name),
            _ => Err(self.api.err(
                TargetErrorKind::Unauthorized,
                format!(
                    "{} (confluence-dc) answered GET /rest/api/user/current as for an anonymous user: it did not take the credentials",
                    self.api.shown()
                ),
                Some(200),
            )),
        }
    }

    /// Direct members of a group, with their status.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-group/#api-rest-api-group-groupname-member-get
    pub(super) async fn members(&self, group: &str) -> Result<Vec<Person>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/group/{}/member", &[group])
                .query("expand", "status")
        };
        let what = format!("list the members of group '{group}'");
        self.list("rest/api/group/{}/member", call, &what).await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-get
    pub(super) async fn user(&self, username: &str) -> Result<Option<Person>, TargetError> {
        let call = self
            .api
            .get("rest/api/user", &[])
            .query("username", username)
            .query("expand", "status");
        self.api
            .fetch_found(call, &format!("read user '{username}'"))
            .await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-memberof-get
    pub(super) async fn groups_of(&self, username: &str) -> Result<BTreeSet<String>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/user/memberof", &[])
                .query("username", username)
        };
        let what = format!("list the groups of user '{username}'");
        let groups: Vec<Group> = self.list("rest/api/user/memberof", call, &what).await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    pub(super) async fn group_exists(&self, group: &str) -> Result<bool, TargetError> {
        let reply = self
            .api
            .send(self.api.get("rest/api/group/{}", &[group]))
            .await?;
        match reply.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.api.error(&reply, &format!("read group '{group}'"))),
        }
    }
}
