//! `confluence-dc`: Confluence Data Center REST (`{base_url}/rest/api`).
//!
//! Reference: https://developer.atlassian.com/server/confluence/rest/v1000/ (admin-user,
//! admin-group, group, user and longtask resources); wire details and version notes in
//! api-contracts.md D. Creating users needs Confluence 8.4+, user-group membership 9.0+.
//!
//! What Confluence's REST API cannot do, and the target therefore declares:
//! - no rename (no resource changes a username), no custom attributes;
//! - it never returns e-mail addresses (the Person object has none, and no documented
//!   resource of the DC REST API gives one), so users are reported with `email: None`; e-mail
//!   is set at creation and by updates, and the runner remembers what it sent.
//!
//! Lists are paged with `start`/`limit` and followed through `_links.next` until it is
//! absent (or a page comes back shorter than its `limit`). Deleting a user is asynchronous:
//! the long task it starts is polled until it finishes, for a bounded time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, AdminRights, Applied, Capabilities, Deprovisioning, Operation, ProbeStep,
    ProductInfo, Seats, Target, TargetError, TargetErrorKind, TargetProbe, TargetUser, UserChanges,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::api::{Api, Call};
use crate::probe;
use crate::util::{
    VersionedCapabilities, fan_out, members_of_all, membership_keys, random_password, same_name,
    target_basics, unsupported,
};

/// Items per page asked for; 200 is Confluence's documented default and usual maximum.
const PAGE: usize = 200;
/// Long-task polling: first wait and longest wait between polls. How long in all before the
/// deletion is reported as still running is the target's `long_task_wait_seconds`.
const POLL_FIRST: Duration = Duration::from_millis(200);
const POLL_MAX: Duration = Duration::from_secs(5);

/// A Confluence Data Center instance.
pub struct ConfluenceDc {
    api: Api,
    capabilities: VersionedCapabilities,
    /// How long a deletion's long task is waited for.
    task_wait: Duration,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    size: Option<usize>,
    /// Not documented for every resource and version; used only when present.
    #[serde(default, rename = "totalCount")]
    total_count: Option<usize>,
    #[serde(default, rename = "_links")]
    links: Option<Links>,
}

#[derive(Debug, Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<String>,
}

/// Person (`type: known`), with `status` when asked for with `expand=status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Person {
    user_key: String,
    username: String,
    #[serde(default)]
    display_name: Option<String>,
    /// Not in Confluence's Person; read in case a server or proxy adds it.
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
}

/// LongTaskSubmission.
#[derive(Debug, Deserialize)]
struct Submission {
    id: String,
    #[serde(default)]
    links: Option<SubmissionLinks>,
}

#[derive(Debug, Deserialize)]
struct SubmissionLinks {
    #[serde(default)]
    status: Option<String>,
}

/// LongTaskStatus. In Confluence Data Center `successful` is true from the moment the task
/// starts and turns false only if it fails, and there is no `finished`: a task is done when
/// `percentageComplete` reaches 100 (api-contracts.md D, from Confluence's own task classes).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskStatus {
    #[serde(default)]
    percentage_complete: Option<u32>,
    #[serde(default)]
    successful: Option<bool>,
    /// Not in Confluence DC; honoured when a server sends it.
    #[serde(default)]
    finished: Option<bool>,
    #[serde(default)]
    messages: Vec<Value>,
}

impl Person {
    fn into_target(self) -> TargetUser {
        TargetUser {
            key: self.user_key,
            username: self.username,
            email: self.email.filter(|e| !e.is_empty()),
            display_name: self.display_name.filter(|d| !d.is_empty()),
            // Listed without `expand=status` (should not happen) a user counts as active.
            active: self
                .status
                .is_none_or(|s| !s.eq_ignore_ascii_case("deactivated")),
            attributes: BTreeMap::new(),
            external_id: None,
        }
    }
}

impl ConfluenceDc {
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(ConfluenceDc {
            api: Api::new(config)?,
            task_wait: Duration::from_secs(config.long_task_wait_seconds.max(1)),
            capabilities: VersionedCapabilities::new(Capabilities {
                rename_user: false,
                update_email: true,
                reads_email: false,
                update_display_name: true,
                deprovisioning: Deprovisioning::Deactivate,
                delete_user: true,
                custom_attributes: false,
                delete_group: true,
                bulk_membership: false,
                leads: false,
                unavailable: Default::default(),
                requires_email: false,
            }),
        })
    }

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

    async fn list<T: DeserializeOwned>(
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
    async fn users(&self) -> Result<Option<Vec<Person>>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/user/list", &[])
                .query("expand", "status")
        };
        self.pages("rest/api/user/list", call, "list users").await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-group/#api-rest-api-group-get
    async fn groups(&self) -> Result<Vec<String>, TargetError> {
        let call = || self.api.get("rest/api/group", &[]);
        let groups: Vec<Group> = self.list("rest/api/group", call, "list groups").await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    /// Reads the version (`quick`: for a probe) and settles the capabilities.
    async fn discover_version(&self, quick: bool) -> Result<ProductInfo, TargetError> {
        let info = crate::versions::confluence(&self.api, quick).await?;
        self.capabilities
            .found(crate::versions::confluence_unavailable(info.version));
        Ok(info)
    }

    /// The username of the account the credentials belong to. Confluence answers this for
    /// anyone, as the anonymous user (`type: anonymous`, no username) when it did not take the
    /// credentials: that is a refusal too.
    /// https://developer.atlassian.com/server/confluence/rest/v910/api-group-user/
    async fn current_user(&self) -> Result<String, TargetError> {
        #[derive(Deserialize)]
        struct Current {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            username: Option<String>,
        }
        let me: Current = self
            .api
            .fetch(
                self.api.get("rest/api/user/current", &[]),
                "read the signed-in user",
            )
            .await?;
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
    async fn members(&self, group: &str) -> Result<Vec<Person>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/group/{}/member", &[group])
                .query("expand", "status")
        };
        let what = format!("list the members of group '{group}'");
        self.list("rest/api/group/{}/member", call, &what).await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-get
    async fn user(&self, username: &str) -> Result<Option<Person>, TargetError> {
        let call = self
            .api
            .get("rest/api/user", &[])
            .query("username", username)
            .query("expand", "status");
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("read user '{username}'");
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        Ok(Some(self.api.parse(&reply, &what)?))
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-memberof-get
    async fn groups_of(&self, username: &str) -> Result<BTreeSet<String>, TargetError> {
        let call = || {
            self.api
                .get("rest/api/user/memberof", &[])
                .query("username", username)
        };
        let what = format!("list the groups of user '{username}'");
        let groups: Vec<Group> = self.list("rest/api/user/memberof", call, &what).await?;
        Ok(groups.into_iter().map(|g| g.name).collect())
    }

    async fn group_exists(&self, group: &str) -> Result<bool, TargetError> {
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

    // -- writes --------------------------------------------------------------------------------

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-post
    async fn create_user(
        &self,
        user: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let what = format!("create user '{user}'");
        let Some(email) = email.filter(|e| !e.is_empty()) else {
            return Err(self.api.err(
                TargetErrorKind::Rejected,
                format!("cannot {what}: Confluence requires an e-mail address and the source has none for this user; map `email` to an attribute every user has"),
                None,
            ));
        };
        // A password is required unless Confluence e-mails the user; users sign in through
        // SSO or a directory, so a random one nobody knows is set.
        let body = json!({
            "userName": user,
            "fullName": display_name.unwrap_or(user),
            "email": email,
            "password": random_password(),
        });
        let call = self
            .api
            .call(Method::POST, "rest/api/admin/user", &[])
            .json(body);
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::CONFLICT {
            return match self.user(user).await? {
                Some(existing) if same_name(&existing.username, user) => {
                    Ok(Applied::Adopted(existing.user_key))
                }
                _ => Err(self.api.error(&reply, &what)),
            };
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        let created: Value = self.api.parse(&reply, &what)?;
        match created.get("userKey").and_then(Value::as_str) {
            Some(key) => Ok(Applied::UserKey(key.to_owned())),
            None => match self.user(user).await? {
                Some(person) => Ok(Applied::UserKey(person.user_key)),
                None => Err(self
                    .api
                    .malformed(&what, "the user was created but cannot be read back")),
            },
        }
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-put
    async fn update_user(&self, user: &str, changes: &UserChanges) -> Result<Applied, TargetError> {
        if changes.is_empty() {
            return Ok(Applied::AlreadyDone);
        }
        let mut body = Map::new();
        if let Some(email) = &changes.email {
            body.insert("email".into(), json!(email));
        }
        if let Some(display_name) = &changes.display_name {
            body.insert("fullName".into(), json!(display_name));
        }
        let call = self
            .api
            .call(Method::PUT, "rest/api/admin/user/{}", &[user])
            .json(Value::Object(body));
        self.api
            .send_ok(call, &format!("update user '{user}'"))
            .await?;
        Ok(Applied::Done)
    }

    /// Both are idempotent in Confluence.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-disable-put
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-enable-put
    async fn set_enabled(&self, user: &str, enable: bool) -> Result<Applied, TargetError> {
        let (template, verb) = if enable {
            ("rest/api/admin/user/{}/enable", "reactivate")
        } else {
            ("rest/api/admin/user/{}/disable", "deactivate")
        };
        let call = self.api.call(Method::PUT, template, &[user]);
        self.api
            .send_ok(call, &format!("{verb} user '{user}'"))
            .await?;
        Ok(Applied::Done)
    }

    /// Deletion runs as a long task: submitted (202), then polled until it finishes.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-delete
    async fn delete_user(&self, user: &str) -> Result<Applied, TargetError> {
        let what = format!("delete user '{user}'");
        let call = self
            .api
            .call(Method::DELETE, "rest/api/admin/user/{}", &[user]);
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            // Gone already, or a Confluence without this resource (before 8.2): only the
            // first is "already done".
            return match self.user(user).await? {
                None => Ok(Applied::AlreadyDone),
                Some(_) => Err(self.missing_resource(&what)),
            };
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        if reply.status != StatusCode::ACCEPTED {
            // Done synchronously (a server that does not run it as a task).
            return Ok(Applied::Done);
        }
        let submission: Submission = self.api.parse(&reply, &what)?;
        self.wait_for(&submission, &what).await
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-longtask/#api-rest-api-longtask-id-get
    async fn wait_for(&self, task: &Submission, what: &str) -> Result<Applied, TargetError> {
        let started = tokio::time::Instant::now();
        let mut wait = POLL_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            let call = match task.links.as_ref().and_then(|l| l.status.as_deref()) {
                Some(link) => self.api.follow("rest/api/longtask/{}", link)?,
                None => self.api.get("rest/api/longtask/{}", &[&task.id]),
            };
            let status: TaskStatus = self.api.fetch(call, what).await?;
            // A failure shows at any point, whatever the percentage.
            if status.successful == Some(false) {
                return Err(self.api.err(
                    TargetErrorKind::Rejected,
                    format!(
                        "cannot {what}: Confluence's deletion task {} failed at {}%: {}",
                        task.id,
                        status.percentage_complete.unwrap_or(0),
                        Value::Array(status.messages)
                    ),
                    None,
                ));
            }
            if status.finished == Some(true) || status.percentage_complete.is_some_and(|p| p >= 100)
            {
                return Ok(Applied::Done);
            }
            if started.elapsed() >= self.task_wait {
                // Not done as far as idsync knows: reported as an outage (the state is in
                // doubt), so that the next run reads the target in full.
                return Err(self.api.err(
                    TargetErrorKind::Unavailable,
                    format!(
                        "{what}: Confluence's deletion task {} is still running after {} s ({}% done); the next sync reads Confluence in full to see how it ended (long_task_wait_seconds sets how long to wait)",
                        task.id,
                        self.task_wait.as_secs(),
                        status.percentage_complete.unwrap_or(0)
                    ),
                    None,
                ));
            }
            wait = (wait * 2).min(POLL_MAX);
        }
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-group/#api-rest-api-admin-group-post
    async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::POST, "rest/api/admin/group", &[])
            .json(json!({"name": group, "type": "group"}));
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        if reply.status == StatusCode::CONFLICT && self.group_exists(group).await? {
            return Ok(Applied::AlreadyDone);
        }
        Err(self.api.error(&reply, &format!("create group '{group}'")))
    }

    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-group/#api-rest-api-admin-group-groupname-delete
    async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::DELETE, "rest/api/admin/group/{}", &[group]);
        let reply = self.api.send(call).await?;
        let what = format!("delete group '{group}'");
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            StatusCode::NOT_FOUND if !self.group_exists(group).await? => Ok(Applied::AlreadyDone),
            StatusCode::NOT_FOUND => Err(self.missing_resource(&what)),
            _ => Err(self.api.error(&reply, &what)),
        }
    }

    /// A 404 for something that exists: the server has no such resource (an older version,
    /// or a proxy in the way), which must not pass for "already done".
    fn missing_resource(&self, what: &str) -> TargetError {
        self.api.err(
            TargetErrorKind::Unsupported,
            format!(
                "cannot {what}: Confluence answered 404 although it exists; this Confluence does not have the resource (see the version requirements in docs/config.md) or base_url is not Confluence's"
            ),
            Some(404),
        )
    }

    /// Idempotent PUT/DELETE: 204 whether or not the membership existed.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-username-group-groupname-put
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/#api-rest-api-user-username-group-groupname-delete
    async fn membership(&self, group: &str, user: &str, add: bool) -> Result<Applied, TargetError> {
        let (method, what) = if add {
            (Method::PUT, format!("add user '{user}' to group '{group}'"))
        } else {
            (
                Method::DELETE,
                format!("remove user '{user}' from group '{group}'"),
            )
        };
        let call = self
            .api
            .call(method, "rest/api/user/{}/group/{}", &[user, group]);
        let reply = self.api.send(call).await?;
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            // The user or the group is gone, so the membership is too; if both are there,
            // the resource itself is missing (Confluence before 9.0).
            StatusCode::NOT_FOUND if !add => {
                if self.user(user).await?.is_none() || !self.group_exists(group).await? {
                    Ok(Applied::AlreadyDone)
                } else {
                    Err(self.missing_resource(&what))
                }
            }
            _ => Err(self.api.error(&reply, &what)),
        }
    }
}

#[async_trait]
impl Target for ConfluenceDc {
    target_basics!();

    async fn discover(&self) -> Result<idsync_model::ProductInfo, TargetError> {
        self.discover_version(false).await
    }

    /// Version (`server-information` or the applinks manifest), credentials (`user/current`),
    /// then administrator rights: the member list of a group, which Confluence shows to
    /// administrators only (CONFSERVER-98582) and which every sync reads. Confluence exposes
    /// no licence seats through a documented REST resource.
    async fn probe(&self) -> TargetProbe {
        let mut probe = match self.discover_version(true).await {
            Ok(info) => probe::found(info, self.capabilities()),
            Err(e) => {
                return probe::stop(TargetProbe::default(), &self.api, ProbeStep::Reachable, e);
            }
        };
        probe.seats = Seats::NotExposed;
        match self.current_user().await {
            Ok(name) => probe.account = Some(name),
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::Credentials, e),
        }
        // Any user may list the groups; the members of one, only an administrator.
        let call = self.api.get("rest/api/group", &[]).query("limit", 1);
        let first: Page<Group> = match self.api.fetch(call, "list groups").await {
            Ok(page) => page,
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::AdminRights, e),
        };
        let Some(group) = first.results.into_iter().next() else {
            probe.admin = Some(AdminRights::NotVerified(
                "Confluence has no group whose members could be listed".to_owned(),
            ));
            return probe;
        };
        const MEMBERS: &str = "GET /rest/api/group/{groupName}/member";
        let call = self
            .api
            .get("rest/api/group/{}/member", &[&group.name])
            .query("limit", 1);
        let reply = match self.api.send_unchecked(call).await {
            Ok(reply) => reply,
            Err(e) => return probe::stop(probe, &self.api, ProbeStep::AdminRights, e),
        };
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return probe::not_admin(probe, &self.api, MEMBERS, &reply);
        }
        let what = format!("list the members of group '{}'", group.name);
        if let Err(e) = self.api.success(&reply, &what) {
            return probe::stop(probe, &self.api, ProbeStep::AdminRights, e);
        }
        probe.admin = Some(probe::admin_confirmed(
            MEMBERS,
            "Confluence administrator rights",
        ));
        probe
    }

    async fn read_state(&self, _attributes: &[String]) -> Result<ActualState, TargetError> {
        // The user listing runs beside the group and member reads (the API's request gate
        // keeps the whole within `concurrency`); any failure fails the read.
        let group_members = async {
            let groups = self.groups().await?;
            let members = members_of_all(&groups, self.api.concurrency, |g| async move {
                self.members(&g).await
            })
            .await?;
            Ok::<_, TargetError>((groups, members))
        };
        let (listed, (groups, members)) = tokio::try_join!(self.users(), group_members)?;
        let memberships = membership_keys(&members, |p| p.user_key.clone());
        // Before Confluence 8.4 there is no user listing: every user who holds a group is
        // found through the member lists (users in no group cannot use Confluence anyway).
        let users: BTreeMap<String, Person> = listed
            .unwrap_or_default()
            .into_iter()
            .chain(members.into_iter().flat_map(|(_, list)| list))
            .map(|p| (p.user_key.clone(), p))
            .collect();
        Ok(ActualState {
            users: users.into_values().map(Person::into_target).collect(),
            groups: groups.into_iter().collect(),
            memberships,
            leads: Vec::new(),
        })
    }

    async fn read_user(
        &self,
        username: &str,
        _attributes: &[String],
    ) -> Result<Option<(TargetUser, BTreeSet<String>)>, TargetError> {
        let Some(person) = self.user(username).await? else {
            return Ok(None);
        };
        let groups = self.groups_of(&person.username).await?;
        Ok(Some((person.into_target(), groups)))
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
                ..
            } => {
                if !attributes.is_empty() {
                    return Err(unsupported(&self.api, op));
                }
                self.create_user(user, email.as_deref(), display_name.as_deref())
                    .await
            }
            Operation::RenameUser { .. } => Err(unsupported(&self.api, op)),
            Operation::UpdateUser { user, changes, .. } => self.update_user(user, changes).await,
            Operation::SetAttribute { .. } | Operation::HandOverLead { .. } => {
                Err(unsupported(&self.api, op))
            }
            Operation::ReactivateUser { user, .. } => self.set_enabled(user, true).await,
            Operation::DeactivateUser { user, .. } => self.set_enabled(user, false).await,
            Operation::AddMembership { group, user, .. } => {
                self.membership(group, user, true).await
            }
            Operation::RemoveMembership { group, user, .. } => {
                self.membership(group, user, false).await
            }
            Operation::DeleteUser { user, .. } => self.delete_user(user).await,
        }
    }
}
