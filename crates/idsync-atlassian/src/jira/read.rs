//! Jira's reads: users (`/user/list`, or `/user/search` plus group members on servers
//! before 10.3), groups through the picker, members, user properties and project and component
//! leads. Kept apart from the writes so that each half can be read on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use idsync_model::{Lead, LeadKind, TargetError};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{JiraDc, JiraUser, LISTING_SEARCH, LISTING_USER_LIST, Named};
use crate::util::{OffsetPage, attribute_text, fan_out, offset_pages, same_name};

/// Users per `/user/list` page: the server's default and maximum. The listing is cursor-paged,
/// so its pages can only be read one after another; the fewer, the faster.
const USER_LIST_PAGE: usize = 2000;

/// `/user/search` returns at most 100 per page.
const USER_SEARCH_PAGE: usize = 100;

/// `/group/member` page size asked for. Jira's default is 50 and servers are known to cap it
/// there; asking for more costs nothing where they do (the page says what it holds) and saves
/// requests where they do not.
const MEMBER_PAGE: usize = 1000;

/// `/groups/picker` shows `maxResults` groups of `total`; asked for generously, then for
/// `total` if that was not enough.
const GROUP_PICKER_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserListPage {
    #[serde(default)]
    values: Vec<JiraUser>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberPage {
    #[serde(default)]
    values: Vec<JiraUser>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    total: Option<usize>,
    /// The page size the server actually used.
    #[serde(default)]
    max_results: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct GroupPicker {
    #[serde(default)]
    total: Option<usize>,
    #[serde(default)]
    groups: Vec<Named>,
}

#[derive(Debug, Deserialize)]
struct Project {
    key: String,
    name: String,
    #[serde(default)]
    lead: Option<Named>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    id: String,
    name: String,
    #[serde(default)]
    lead: Option<Named>,
    #[serde(default)]
    lead_user_name: Option<String>,
}

impl JiraDc {
    /// Every user through `/user/list`, or `None` when the server does not have it.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-list-get
    async fn user_list(&self) -> Result<Option<Vec<JiraUser>>, TargetError> {
        let what = "list users";
        let mut users = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut call = self
                .api
                .get("rest/api/2/user/list", &[])
                .query("maxResults", USER_LIST_PAGE);
            if let Some(cursor) = &cursor {
                call = call.query("cursor", cursor);
            }
            let reply = self.api.send(call).await?;
            if reply.status == StatusCode::NOT_FOUND && cursor.is_none() {
                return Ok(None);
            }
            let page: UserListPage = self
                .api
                .success(&reply, what)
                .and_then(|r| self.api.parse(r, what))?;
            let empty = page.values.is_empty();
            users.extend(page.values);
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(next) if page.is_last != Some(true) && !empty => {
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Err(self
                            .api
                            .malformed(what, "the next cursor repeats the last one"));
                    }
                    cursor = Some(next);
                }
                _ => return Ok(Some(users)),
            }
        }
    }

    /// Users through `/user/search` (every user matches "."); Jira stops at the first 100.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-search-get
    async fn user_search(&self) -> Result<Vec<JiraUser>, TargetError> {
        let mut users: Vec<JiraUser> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut start = 0usize;
        loop {
            let call = self
                .api
                .get("rest/api/2/user/search", &[])
                .query("username", ".")
                .query("includeActive", true)
                .query("includeInactive", true)
                .query("startAt", start)
                .query("maxResults", USER_SEARCH_PAGE);
            let page: Vec<JiraUser> = self.api.fetch(call, "search users").await?;
            let count = page.len();
            let fresh: Vec<JiraUser> = page
                .into_iter()
                .filter(|u| seen.insert(u.key.clone()))
                .collect();
            // A short page, or one that brings nobody new, is the end of what Jira will show.
            if count < USER_SEARCH_PAGE || fresh.is_empty() {
                users.extend(fresh);
                return Ok(users);
            }
            users.extend(fresh);
            start += count;
        }
    }

    pub(super) async fn users(&self) -> Result<(Vec<JiraUser>, bool), TargetError> {
        if self.listing.load(Ordering::Relaxed) != LISTING_SEARCH {
            if let Some(users) = self.user_list().await? {
                self.listing.store(LISTING_USER_LIST, Ordering::Relaxed);
                return Ok((users, true));
            }
            tracing::info!(target_name = %self.api.name, "GET /user/list is not available (Jira before 10.3); listing users through /user/search and group members");
            self.listing.store(LISTING_SEARCH, Ordering::Relaxed);
        }
        Ok((self.user_search().await?, false))
    }

    /// Every group name: Jira DC has no group listing other than the picker.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-groups/#api-api-2-groups-picker-get
    pub(super) async fn groups(&self, query: &str) -> Result<Vec<String>, TargetError> {
        let what = "list groups";
        let mut max = GROUP_PICKER_MAX;
        let mut shown = (0, 0);
        for _ in 0..2 {
            let call = self
                .api
                .get("rest/api/2/groups/picker", &[])
                .query("query", query)
                .query("maxResults", max);
            let picker: GroupPicker = self.api.fetch(call, what).await?;
            let total = picker.total.unwrap_or(picker.groups.len());
            if picker.groups.len() >= total {
                return Ok(picker.groups.into_iter().map(|g| g.name).collect());
            }
            shown = (picker.groups.len(), total);
            max = total;
        }
        // Planning against part of the groups could remove memberships wrongly: fail instead.
        Err(self.api.malformed(
            what,
            &format!(
                "the group picker (Jira's only group listing) shows {} of {} groups even when asked for all of them",
                shown.0, shown.1
            ),
        ))
    }

    pub(super) async fn group_exists(&self, group: &str) -> Result<bool, TargetError> {
        Ok(self
            .groups(group)
            .await?
            .iter()
            .any(|g| same_name(g, group)))
    }

    /// Members of a group and of its nested subgroups, inactive users included.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-member-get
    pub(super) async fn members(&self, group: &str) -> Result<Vec<JiraUser>, TargetError> {
        let what = format!("list the members of group '{group}'");
        // The page carries `total`, so after the first page the rest are read at once.
        offset_pages(self.api.concurrency, |start| {
            let what = &what;
            async move {
                let call = self
                    .api
                    .get("rest/api/2/group/member", &[])
                    .query("groupname", group)
                    .query("includeInactiveUsers", true)
                    .query("startAt", start)
                    .query("maxResults", MEMBER_PAGE);
                let page: MemberPage = self.api.fetch(call, what).await?;
                let count = page.values.len();
                // `isLast` decides; failing that `total`; failing both, a page shorter than
                // the size the server says it used (servers cap `maxResults` below ours).
                let more = match (page.is_last, page.total) {
                    (Some(last), _) => !last,
                    (None, Some(total)) => start + count < total,
                    (None, None) => count >= page.max_results.unwrap_or(MEMBER_PAGE),
                };
                Ok(OffsetPage {
                    items: page.values,
                    total: page.total,
                    more,
                })
            }
        })
        .await
    }

    /// One user property as text; `None` when the user has none of that name.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-propertykey-get
    pub(super) async fn property(
        &self,
        user_key: &str,
        name: &str,
    ) -> Result<Option<String>, TargetError> {
        let call = self
            .api
            .get("rest/api/2/user/properties/{}", &[name])
            .query("userKey", user_key);
        let what = format!("read property '{name}' of user {user_key}");
        let body: Option<Value> = self.api.fetch_found(call, &what).await?;
        Ok(body.and_then(|b| b.get("value").and_then(attribute_text)))
    }

    pub(super) async fn properties(
        &self,
        user_key: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, TargetError> {
        let mut found = BTreeMap::new();
        for name in names {
            if let Some(value) = self.property(user_key, name).await? {
                found.insert(name.clone(), value);
            }
        }
        Ok(found)
    }

    /// Project leads (`GET /project?expand=lead`) and component leads (per project).
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-get
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-components-get
    pub(super) async fn leads(&self) -> Result<Vec<Lead>, TargetError> {
        let call = self
            .api
            .get("rest/api/2/project", &[])
            .query("expand", "lead");
        let projects: Vec<Project> = self.api.fetch(call, "list projects").await?;
        let mut leads: Vec<Lead> = projects
            .iter()
            .filter_map(|p| {
                Some(Lead {
                    kind: LeadKind::Project,
                    id: p.key.clone(),
                    name: p.name.clone(),
                    lead: p.lead.as_ref()?.name.clone(),
                })
            })
            .collect();
        let keys: Vec<String> = projects.iter().map(|p| p.key.clone()).collect();
        let per_project = fan_out(keys, self.api.concurrency, |key| async move {
            let call = self.api.get("rest/api/2/project/{}/components", &[&key]);
            let what = format!("list the components of project {key}");
            self.api.fetch::<Vec<Component>>(call, &what).await
        })
        .await?;
        for component in per_project.into_iter().flatten() {
            let lead = component
                .lead
                .map(|l| l.name)
                .or(component.lead_user_name)
                .filter(|l| !l.is_empty());
            if let Some(lead) = lead {
                leads.push(Lead {
                    kind: LeadKind::Component,
                    id: component.id,
                    name: component.name,
                    lead,
                });
            }
        }
        Ok(leads)
    }

    /// `GET /user?username=&expand=groups`; `None` when there is no such user.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-get
    pub(super) async fn user(
        &self,
        param: &str,
        value: &str,
    ) -> Result<Option<JiraUser>, TargetError> {
        let call = self
            .api
            .get("rest/api/2/user", &[])
            .query(param, value)
            .query("expand", "groups");
        self.api
            .fetch_found(call, &format!("read user '{value}'"))
            .await
    }
}
