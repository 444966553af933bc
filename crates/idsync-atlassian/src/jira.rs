//! `jira-dc`: Jira Data Center REST API v2 (`{base_url}/rest/api/2`).
//!
//! Reference: https://developer.atlassian.com/server/jira/platform/rest/v10002/ (DC 10/11; the
//! endpoints used here exist since Jira 8 except `/user/list`, see below). Wire details and
//! version notes: api-contracts.md C.
//!
//! Choices where Jira leaves room:
//! - **Listing users.** `GET /user/list` (cursor paging over every user, Jira DC 10.3+/11) is
//!   used when the server has it. Older servers answer 404; the target then falls back for
//!   good to `GET /user/search?username=.` (which Jira caps at the first 100 matches) and adds
//!   every user found in group member lists, so every user who holds any group is seen. A user
//!   in no group on such an old server may be missed; creating them again is then answered
//!   "already exists" and the account is adopted, so nothing breaks.
//! - **Nested groups.** `GET /group/member` lists the members of a group *and of its nested
//!   subgroups*, and no REST resource a personal access token may call tells the two apart. The
//!   memberships reported are therefore the effective ones Jira lists. A user who holds a group
//!   only through a subgroup counts as a member (adding them directly is not planned); asking
//!   to remove such a membership fails with an error that says so, instead of pretending.
//!   (Whether a user holds a group is checked with `GET /user?expand=groups`.)
//! - **Stable id.** The user `key` (e.g. `JIRAUSER10100`) survives renames; every write that
//!   Jira lets address a user by key does so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, Applied, Capabilities, Deprovisioning, Lead, LeadKind, LicenceSeats, Operation,
    ProbeStep, ProductInfo, Seats, Target, TargetError, TargetErrorKind, TargetProbe, TargetUser,
    UserChanges,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{Api, Reply};
use crate::probe;
use crate::util::{
    OffsetPage, VersionedCapabilities, attribute_text, fan_out, members_of_all, membership_keys,
    offset_pages, same_name, target_basics,
};

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

const LISTING_UNKNOWN: u8 = 0;
const LISTING_USER_LIST: u8 = 1;
const LISTING_SEARCH: u8 = 2;

/// A Jira Data Center instance.
pub struct JiraDc {
    api: Api,
    capabilities: VersionedCapabilities,
    /// Whether `/user/list` exists here (probed once).
    listing: AtomicU8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JiraUser {
    key: String,
    name: String,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default = "active_default")]
    active: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    groups: Option<Items<Named>>,
}

fn active_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
struct Items<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
struct Named {
    name: String,
}

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

impl JiraUser {
    fn into_target(self, attributes: BTreeMap<String, String>) -> TargetUser {
        TargetUser {
            key: self.key,
            username: self.name,
            email: self.email_address.filter(|e| !e.is_empty()),
            display_name: self.display_name.filter(|d| !d.is_empty()),
            active: self.active,
            attributes,
            external_id: None,
        }
    }
}

/// An application role with its licence seats: `GET /rest/api/2/applicationrole`.
/// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-applicationrole/#api-api-2-applicationrole-get
/// (fields as in the DC 11.3 OpenAPI generated into jira.js, `ApplicationRole`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationRole {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    number_of_seats: Option<i64>,
    #[serde(default)]
    remaining_seats: Option<i64>,
    #[serde(default)]
    user_count: Option<i64>,
    #[serde(default)]
    has_unlimited_seats: bool,
}

impl ApplicationRole {
    fn seats(self) -> LicenceSeats {
        // An unlimited licence may still carry (negative) numbers; they mean nothing then.
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        let limited = |n| {
            if self.has_unlimited_seats {
                None
            } else {
                count(n)
            }
        };
        LicenceSeats {
            licence: self
                .name
                .or(self.key)
                .unwrap_or_else(|| "application role".to_owned()),
            total: limited(self.number_of_seats),
            used: count(self.user_count),
            remaining: limited(self.remaining_seats),
        }
    }
}

impl JiraDc {
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(JiraDc {
            api: Api::new(config)?,
            capabilities: VersionedCapabilities::new(Capabilities {
                rename_user: true,
                update_email: true,
                reads_email: true,
                update_display_name: true,
                deprovisioning: Deprovisioning::Deactivate,
                delete_user: true,
                custom_attributes: true,
                delete_group: true,
                bulk_membership: false,
                leads: true,
                unavailable: Default::default(),
                requires_email: false,
            }),
            listing: AtomicU8::new(LISTING_UNKNOWN),
        })
    }

    /// Reads the version (`quick`: for a probe) and settles the capabilities.
    async fn discover_version(&self, quick: bool) -> Result<ProductInfo, TargetError> {
        let info = crate::versions::jira(&self.api, quick).await?;
        // Jira 9–11 have every resource idsync uses (`user/list` arrived in 10.3, and older
        // versions are read through the group member lists instead).
        self.capabilities.found(Default::default());
        Ok(info)
    }

    /// The username of the account the credentials belong to.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-myself/#api-api-2-myself-get
    async fn myself(&self) -> Result<String, TargetError> {
        #[derive(Deserialize)]
        struct Myself {
            name: String,
        }
        let me: Myself = self
            .api
            .fetch(
                self.api.get("rest/api/2/myself", &[]),
                "read the signed-in user",
            )
            .await?;
        Ok(me.name)
    }

    // -- reads ---------------------------------------------------------------------------------

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
            let page: UserListPage = self.ok_json(&reply, what)?;
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

    async fn users(&self) -> Result<(Vec<JiraUser>, bool), TargetError> {
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
    async fn groups(&self, query: &str) -> Result<Vec<String>, TargetError> {
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

    async fn group_exists(&self, group: &str) -> Result<bool, TargetError> {
        Ok(self
            .groups(group)
            .await?
            .iter()
            .any(|g| same_name(g, group)))
    }

    /// Members of a group and of its nested subgroups, inactive users included.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-member-get
    async fn members(&self, group: &str) -> Result<Vec<JiraUser>, TargetError> {
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
    async fn property(&self, user_key: &str, name: &str) -> Result<Option<String>, TargetError> {
        let call = self
            .api
            .get("rest/api/2/user/properties/{}", &[name])
            .query("userKey", user_key);
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("read property '{name}' of user {user_key}");
        let body: Value = self.ok_json(&reply, &what)?;
        Ok(body.get("value").and_then(attribute_text))
    }

    async fn properties(
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
    async fn leads(&self) -> Result<Vec<Lead>, TargetError> {
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
    async fn user(&self, param: &str, value: &str) -> Result<Option<JiraUser>, TargetError> {
        let call = self
            .api
            .get("rest/api/2/user", &[])
            .query(param, value)
            .query("expand", "groups");
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let user: JiraUser = self.ok_json(&reply, &format!("read user '{value}'"))?;
        Ok(Some(user))
    }

    fn ok_json<T: serde::de::DeserializeOwned>(
        &self,
        reply: &Reply,
        what: &str,
    ) -> Result<T, TargetError> {
        if !reply.is_success() {
            return Err(self.api.error(reply, what));
        }
        self.api.parse(reply, what)
    }

    // -- writes --------------------------------------------------------------------------------

    /// `PUT /user?key=` with a UserWrite subset: rename (`name`), details, `active`.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-put
    async fn update(&self, key: &str, body: Value, what: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::PUT, "rest/api/2/user", &[])
            .query("key", key)
            .json(body);
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        Err(self.api.error(&reply, what))
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-post
    async fn create_user(
        &self,
        user: &str,
        email: Option<&str>,
        display_name: Option<&str>,
        attributes: &BTreeMap<String, String>,
    ) -> Result<Applied, TargetError> {
        let what = format!("create user '{user}'");
        let mut body = Map::new();
        body.insert("name".into(), json!(user));
        if let Some(email) = email {
            body.insert("emailAddress".into(), json!(email));
        }
        // Jira insists on a display name; the username stands in when the source has none.
        body.insert("displayName".into(), json!(display_name.unwrap_or(user)));
        let call = self
            .api
            .call(Method::POST, "rest/api/2/user", &[])
            .json(Value::Object(body));
        let reply = self.api.send(call).await?;
        let (key, adopted) = if reply.is_success() {
            let created: Option<JiraUser> = serde_json::from_slice(&reply.body).ok();
            match created {
                Some(created) => (created.key, false),
                None => (self.existing_key(user, &what).await?, false),
            }
        } else if reply.status == StatusCode::BAD_REQUEST {
            // Jira answers an existing username with a plain 400: adopt the account if it is
            // really there under that name, otherwise report the refusal as it was.
            match self.user("username", user).await? {
                Some(existing) if same_name(&existing.name, user) => (existing.key, true),
                _ => return Err(self.api.error(&reply, &what)),
            }
        } else {
            return Err(self.api.error(&reply, &what));
        };
        for (name, value) in attributes {
            self.set_property(&key, user, name, Some(value)).await?;
        }
        Ok(if adopted {
            Applied::Adopted(key)
        } else {
            Applied::UserKey(key)
        })
    }

    async fn existing_key(&self, user: &str, what: &str) -> Result<String, TargetError> {
        match self.user("username", user).await? {
            Some(u) => Ok(u.key),
            None => Err(self
                .api
                .malformed(what, "the user was created but cannot be read back")),
        }
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-propertykey-put
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-propertykey-delete
    async fn set_property(
        &self,
        key: &str,
        user: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let (call, what) = match value {
            Some(value) => (
                self.api
                    .call(Method::PUT, "rest/api/2/user/properties/{}", &[name])
                    .query("userKey", key)
                    .json(json!(value)),
                format!("set property '{name}' of user '{user}'"),
            ),
            None => (
                self.api
                    .call(Method::DELETE, "rest/api/2/user/properties/{}", &[name])
                    .query("userKey", key),
                format!("remove property '{name}' of user '{user}'"),
            ),
        };
        let reply = self.api.send(call).await?;
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            StatusCode::NOT_FOUND if value.is_none() => {
                // The property or the user is gone: either way there is nothing to remove.
                Ok(Applied::AlreadyDone)
            }
            _ => Err(self.api.error(&reply, &what)),
        }
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-post
    async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
        let what = format!("create group '{group}'");
        let call = self
            .api
            .call(Method::POST, "rest/api/2/group", &[])
            .json(json!({"name": group}));
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        // An existing group is a 400 in Jira, like every other refusal: check.
        if reply.status == StatusCode::BAD_REQUEST && self.group_exists(group).await? {
            return Ok(Applied::AlreadyDone);
        }
        Err(self.api.error(&reply, &what))
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-delete
    async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
        let what = format!("delete group '{group}'");
        let call = self
            .api
            .call(Method::DELETE, "rest/api/2/group", &[])
            .query("groupname", group);
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        if matches!(reply.status.as_u16(), 400 | 404) && !self.group_exists(group).await? {
            return Ok(Applied::AlreadyDone);
        }
        Err(self.api.error(&reply, &what))
    }

    /// Whether Jira lists `group` among the user's groups (`None`: no such user).
    async fn holds_group(&self, user: &str, group: &str) -> Result<Option<bool>, TargetError> {
        Ok(self.user("username", user).await?.map(|u| {
            u.groups
                .map(|g| g.items.iter().any(|i| same_name(&i.name, group)))
                .unwrap_or(false)
        }))
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-user-post
    async fn add_member(&self, group: &str, user: &str) -> Result<Applied, TargetError> {
        let what = format!("add user '{user}' to group '{group}'");
        let call = self
            .api
            .call(Method::POST, "rest/api/2/group/user", &[])
            .query("groupname", group)
            .json(json!({"name": user}));
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        // "Already a member" is a 400 too.
        if reply.status == StatusCode::BAD_REQUEST
            && self.holds_group(user, group).await? == Some(true)
        {
            return Ok(Applied::AlreadyDone);
        }
        Err(self.api.error(&reply, &what))
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-group/#api-api-2-group-user-delete
    async fn remove_member(&self, group: &str, user: &str) -> Result<Applied, TargetError> {
        let what = format!("remove user '{user}' from group '{group}'");
        let call = self
            .api
            .call(Method::DELETE, "rest/api/2/group/user", &[])
            .query("groupname", group)
            .query("username", user);
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        if !matches!(reply.status.as_u16(), 400 | 404) {
            return Err(self.api.error(&reply, &what));
        }
        match self.holds_group(user, group).await? {
            None | Some(false) => Ok(Applied::AlreadyDone),
            Some(true) if reply.status == StatusCode::BAD_REQUEST => Err(self.api.err(
                TargetErrorKind::Rejected,
                format!(
                    "cannot {what}: Jira says the user is not a direct member ({}), yet still lists them in the group, so they hold it through a nested subgroup. Remove them from that subgroup, or un-nest it.",
                    reply.server_message()
                ),
                Some(400),
            )),
            Some(true) => Err(self.api.error(&reply, &what)),
        }
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-put
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-component/#api-api-2-component-id-put
    async fn hand_over(
        &self,
        kind: LeadKind,
        id: &str,
        user: &str,
        new_lead: &str,
    ) -> Result<Applied, TargetError> {
        let (call, what) = match kind {
            LeadKind::Project => (
                self.api
                    .call(Method::PUT, "rest/api/2/project/{}", &[id])
                    .json(json!({"lead": new_lead})),
                format!("hand project {id} over from '{user}' to '{new_lead}'"),
            ),
            LeadKind::Component => (
                self.api
                    .call(Method::PUT, "rest/api/2/component/{}", &[id])
                    .json(json!({"leadUserName": new_lead})),
                format!("hand component {id} over from '{user}' to '{new_lead}'"),
            ),
        };
        self.api.send_ok(call, &what).await?;
        Ok(Applied::Done)
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-delete
    async fn delete_user(&self, key: &str, user: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::DELETE, "rest/api/2/user", &[])
            .query("key", key);
        let reply = self.api.send(call).await?;
        let what = format!("delete user '{user}'");
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            // Gone already: confirmed by looking the account up, so that a 404 from anything
            // else (a proxy, a missing resource) never passes for "already done".
            StatusCode::NOT_FOUND => match self.user("key", key).await? {
                None => Ok(Applied::AlreadyDone),
                Some(_) => Err(self.api.err(
                    TargetErrorKind::Unsupported,
                    format!("cannot {what}: Jira answered 404 although the account exists; is base_url Jira's?"),
                    Some(404),
                )),
            },
            _ => Err(self.api.error(&reply, &what)),
        }
    }
}

fn user_changes(changes: &UserChanges) -> Value {
    let mut body = Map::new();
    if let Some(email) = &changes.email {
        body.insert("emailAddress".into(), json!(email));
    }
    if let Some(display_name) = &changes.display_name {
        body.insert("displayName".into(), json!(display_name));
    }
    Value::Object(body)
}

#[async_trait]
impl Target for JiraDc {
    target_basics!();

    async fn discover(&self) -> Result<idsync_model::ProductInfo, TargetError> {
        self.discover_version(false).await
    }

    /// Version (`serverInfo`), credentials (`myself`), then administrator rights and seats
    /// (`applicationrole`, which needs the Administer Jira permission idsync's user and group
    /// management needs too).
    async fn probe(&self) -> TargetProbe {
        let mut probe = match self.discover_version(true).await {
            Ok(info) => probe::found(info, self.capabilities()),
            Err(e) => {
                return probe::stop(TargetProbe::default(), &self.api, ProbeStep::Reachable, e);
            }
        };
        match self.myself().await {
            Ok(name) => probe.account = Some(name),
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::Credentials, e),
        }
        const ROLES: &str = "GET /rest/api/2/applicationrole";
        let reply = match self
            .api
            .send_unchecked(self.api.get("rest/api/2/applicationrole", &[]))
            .await
        {
            Ok(reply) => reply,
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::AdminRights, e),
        };
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return probe::not_admin(probe, &self.api, ROLES, &reply);
        }
        let what = "read the application roles";
        let roles: Vec<ApplicationRole> = match self
            .api
            .success(&reply, what)
            .and_then(|r| self.api.parse(r, what))
        {
            Ok(roles) => roles,
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::AdminRights, e),
        };
        probe.admin = Some(probe::admin_confirmed(
            ROLES,
            "the Administer Jira global permission",
        ));
        probe.seats = Seats::Licences(roles.into_iter().map(ApplicationRole::seats).collect());
        probe
    }

    async fn read_state(&self, attributes: &[String]) -> Result<ActualState, TargetError> {
        // The user listing is cursor-paged (one page after another), so it runs beside the
        // group and member reads and the leads instead of before them; the API's request gate
        // keeps the whole within `concurrency`. Any failure fails the read.
        let group_members = async {
            let groups = self.groups("").await?;
            let members = members_of_all(&groups, self.api.concurrency, |g| async move {
                self.members(&g).await
            })
            .await?;
            Ok::<_, TargetError>((groups, members))
        };
        let ((listed, complete), (groups, members), leads) =
            tokio::try_join!(self.users(), group_members, self.leads())?;
        let memberships = membership_keys(&members, |u| u.key.clone());
        let mut users: BTreeMap<String, JiraUser> = listed
            .into_iter()
            .filter(|u| !u.deleted)
            .map(|u| (u.key.clone(), u))
            .collect();
        if !complete {
            for user in members.into_iter().flat_map(|(_, list)| list) {
                users.entry(user.key.clone()).or_insert(user);
            }
        }
        let users: Vec<JiraUser> = users.into_values().collect();
        let attribute_values = if attributes.is_empty() {
            vec![BTreeMap::new(); users.len()]
        } else {
            let keys: Vec<String> = users.iter().map(|u| u.key.clone()).collect();
            fan_out(keys, self.api.concurrency, |key| async move {
                self.properties(&key, attributes).await
            })
            .await?
        };
        Ok(ActualState {
            users: users
                .into_iter()
                .zip(attribute_values)
                .map(|(u, a)| u.into_target(a))
                .collect(),
            groups: groups.into_iter().collect(),
            memberships,
            leads,
        })
    }

    async fn read_leads(&self) -> Result<Vec<Lead>, TargetError> {
        self.leads().await
    }

    async fn read_user(
        &self,
        username: &str,
        attributes: &[String],
    ) -> Result<Option<(TargetUser, BTreeSet<String>)>, TargetError> {
        let Some(mut user) = self.user("username", username).await? else {
            return Ok(None);
        };
        let groups = user
            .groups
            .take()
            .map(|g| g.items.into_iter().map(|i| i.name).collect())
            .unwrap_or_default();
        let attributes = self.properties(&user.key, attributes).await?;
        Ok(Some((user.into_target(attributes), groups)))
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        match op {
            Operation::CreateGroup { group } => self.create_group(group).await,
            Operation::DeleteGroup { group } => self.delete_group(group).await,
            Operation::CreateUser {
                user,
                email,
                display_name,
                attributes,
                external_id: _,
            } => {
                self.create_user(user, email.as_deref(), display_name.as_deref(), attributes)
                    .await
            }
            Operation::RenameUser {
                key,
                user,
                new_username,
            } => {
                let what = format!("rename user '{user}' to '{new_username}'");
                self.update(key, json!({"name": new_username}), &what).await
            }
            Operation::UpdateUser { key, user, changes } => {
                if changes.is_empty() {
                    return Ok(Applied::AlreadyDone);
                }
                let what = format!("update user '{user}'");
                self.update(key, user_changes(changes), &what).await
            }
            Operation::SetAttribute {
                key,
                user,
                name,
                value,
            } => self.set_property(key, user, name, value.as_deref()).await,
            Operation::ReactivateUser { key, user } => {
                let what = format!("reactivate user '{user}'");
                self.update(key, json!({"active": true}), &what).await
            }
            Operation::DeactivateUser { key, user } => {
                let what = format!("deactivate user '{user}'");
                self.update(key, json!({"active": false}), &what).await
            }
            Operation::AddMembership { group, user, .. } => self.add_member(group, user).await,
            Operation::RemoveMembership { group, user, .. } => {
                self.remove_member(group, user).await
            }
            Operation::HandOverLead {
                kind,
                id,
                user,
                new_lead,
            } => self.hand_over(*kind, id, user, new_lead).await,
            Operation::DeleteUser { key, user } => self.delete_user(key, user).await,
        }
    }
}
