//! `atlassian-cloud`: Atlassian Cloud user provisioning, SCIM 2.0
//! (`{base_url}` = `https://api.atlassian.com/scim/directory/{directoryId}`).
//!
//! Reference: https://developer.atlassian.com/cloud/admin/user-provisioning/rest/intro/ and
//! the Users and Groups operations beside it; RFC 7643/7644 where Atlassian is silent; wire
//! details in api-contracts.md F.
//!
//! - Usernames are SCIM `userName`s; account keys and membership keys are SCIM user `id`s;
//!   `externalId` carries the source object id of `Operation::CreateUser`.
//! - Lists are paged with a 1-based `startIndex` and `count=100` (Atlassian's maximum);
//!   filters are a single `eq`, the only kind Atlassian supports.
//! - Every account is sent with `emails` holding one value marked `primary: true`: Atlassian
//!   requires it on create and modify. A creation without an e-mail is never sent (the planner
//!   leaves it out with a warning, `Capabilities::requires_email`).
//! - Custom attributes are the SCIM attributes Atlassian documents: the enterprise extension's
//!   `department` and `organization`, and the core `title`, `nickName`, `preferredLanguage`
//!   and `timezone`. Any other name is refused as unsupported (the config check refuses it
//!   first).
//! - Members leave a group by `remove` on `members` with the value list, and a user is renamed
//!   by `replace` on path `userName`: the forms Microsoft's provisioning service sends to
//!   Atlassian Cloud (Atlassian documents no PATCH form for either).
//! - Groups cannot be renamed through SCIM (and idsync never asks to). Group ids are looked up
//!   by `displayName` and remembered.
//! - There are no licence seats in the SCIM directory: product access is granted in Atlassian
//!   administration, so no licence error can come from here.

use idsync_model::name::name_key;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, AdminRights, Applied, Capabilities, Deprovisioning, Operation, ProbeStep, Seats,
    Target, TargetError, TargetErrorKind, TargetProbe, TargetUser, UserChanges,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::api::{Api, Call, Reply};
use crate::probe;
use crate::util::{
    OffsetPage, VersionedCapabilities, attribute_text, fan_out, offset_pages, same_name,
    target_basics, unsupported,
};

const SCIM_JSON: &str = "application/scim+json";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Resources per page: Atlassian serves at most 100.
const PAGE: usize = 100;

use idsync_model::target::{
    CLOUD_CORE_ATTRIBUTES as CORE_ATTRIBUTES, CLOUD_ENTERPRISE_ATTRIBUTES as ENTERPRISE_ATTRIBUTES,
};

/// The Atlassian Cloud SCIM directory.
pub struct AtlassianCloud {
    api: Api,
    capabilities: VersionedCapabilities,
    /// Group `displayName` (lowercase) → SCIM id.
    group_ids: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    #[serde(default)]
    total_results: Option<usize>,
    #[serde(default = "Vec::new", rename = "Resources")]
    resources: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScimUser {
    id: String,
    user_name: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    emails: Vec<Email>,
    #[serde(default)]
    groups: Vec<Display>,
    #[serde(
        default,
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    )]
    enterprise: Map<String, Value>,
    /// The rest, where the core custom attributes are.
    #[serde(flatten)]
    other: Map<String, Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
struct Email {
    value: String,
    #[serde(default)]
    primary: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
struct Display {
    #[serde(default)]
    display: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScimGroup {
    id: String,
    display_name: String,
    /// `None` when the listing left members out; they are then read per group.
    #[serde(default)]
    members: Option<Vec<Member>>,
}

#[derive(Debug, Clone, Deserialize)]
struct Member {
    value: String,
}

/// Where a custom attribute lives in a User resource, as a PATCH path.
fn attribute_path(name: &str) -> Option<String> {
    if ENTERPRISE_ATTRIBUTES.contains(&name) {
        Some(format!("{ENTERPRISE}:{name}"))
    } else if CORE_ATTRIBUTES.contains(&name) {
        Some(name.to_owned())
    } else {
        None
    }
}

/// `attr eq "value"`, quoted as a JSON string (SCIM filter strings use JSON escapes).
fn eq_filter(attribute: &str, value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""));
    format!("{attribute} eq {quoted}")
}

fn patch(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// `emails` as Atlassian requires it on create and modify: one value, marked primary.
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
fn work_email(email: &str) -> Value {
    json!([{"value": email, "type": "work", "primary": true}])
}

impl ScimUser {
    fn attribute(&self, name: &str) -> Option<String> {
        let source = if ENTERPRISE_ATTRIBUTES.contains(&name) {
            &self.enterprise
        } else {
            &self.other
        };
        source.get(name).and_then(attribute_text)
    }

    fn into_target(self, attributes: &[String]) -> TargetUser {
        let attributes = attributes
            .iter()
            .filter_map(|a| Some((a.clone(), self.attribute(a)?)))
            .collect();
        let email = self
            .emails
            .iter()
            .find(|e| e.primary == Some(true))
            .or_else(|| self.emails.first())
            .map(|e| e.value.clone());
        TargetUser {
            key: self.id,
            username: self.user_name,
            email,
            display_name: self.display_name.filter(|d| !d.is_empty()),
            active: self.active,
            attributes,
            external_id: self.external_id,
        }
    }
}

impl AtlassianCloud {
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(AtlassianCloud {
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
                bulk_membership: true,
                leads: false,
                unavailable: Default::default(),
                requires_email: true,
            }),
            group_ids: Mutex::new(HashMap::new()),
        })
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.group_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn scim(&self, method: Method, template: &'static str, args: &[&str], body: Value) -> Call {
        self.api
            .call(method, template, args)
            .json(body)
            .content_type(SCIM_JSON)
    }

    /// Every page of a resource list, 1-based, until `totalResults` are read. The first page
    /// gives the total, so the rest are read `concurrency` at a time.
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-get
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-get
    async fn pages<T: DeserializeOwned>(
        &self,
        template: &'static str,
        filter: Option<String>,
        what: &str,
    ) -> Result<Vec<T>, TargetError> {
        let filter = &filter;
        offset_pages(self.api.concurrency, |offset| async move {
            let mut call = self
                .api
                .get(template, &[])
                .query("startIndex", offset + 1)
                .query("count", PAGE);
            if let Some(filter) = filter {
                call = call.query("filter", filter);
            }
            let page: ListResponse<T> = self.api.fetch(call, what).await?;
            let count = page.resources.len();
            // Without a total there is no telling whether more follow: stop, as RFC 7644
            // makes `totalResults` required.
            let more = page
                .total_results
                .is_some_and(|total| offset + count < total);
            Ok(OffsetPage {
                items: page.resources,
                total: page.total_results,
                more,
            })
        })
        .await
    }

    async fn find_user(&self, username: &str) -> Result<Option<ScimUser>, TargetError> {
        let users: Vec<ScimUser> = self
            .pages(
                "Users",
                Some(eq_filter("userName", username)),
                &format!("look up user '{username}'"),
            )
            .await?;
        Ok(users
            .into_iter()
            .find(|u| same_name(&u.user_name, username)))
    }

    /// The SCIM id of a group, from memory or looked up by `displayName`.
    async fn group_id(&self, group: &str) -> Result<Option<String>, TargetError> {
        if let Some(id) = self.ids().get(&name_key(group)) {
            return Ok(Some(id.clone()));
        }
        let groups: Vec<ScimGroup> = self
            .pages(
                "Groups",
                Some(eq_filter("displayName", group)),
                &format!("look up group '{group}'"),
            )
            .await?;
        let found = groups
            .into_iter()
            .find(|g| same_name(&g.display_name, group))
            .map(|g| g.id);
        if let Some(id) = &found {
            self.ids().insert(name_key(group), id.clone());
        }
        Ok(found)
    }

    fn forget_group(&self, group: &str) {
        self.ids().remove(&name_key(group));
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-id-get
    async fn members(&self, id: &str, name: &str) -> Result<Vec<Member>, TargetError> {
        let call = self.api.get("Groups/{}", &[id]);
        let group: ScimGroup = self
            .api
            .fetch(call, &format!("read group '{name}'"))
            .await?;
        Ok(group.members.unwrap_or_default())
    }

    // -- writes --------------------------------------------------------------------------------

    fn unsupported_attribute(&self, user: &str, name: &str) -> TargetError {
        self.api.unsupported(format!(
            "cannot set attribute '{name}' of user '{user}': Atlassian's SCIM directory has no such attribute; use one of {} or {}",
            ENTERPRISE_ATTRIBUTES.join(", "),
            CORE_ATTRIBUTES.join(", ")
        ))
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
    async fn create_user(
        &self,
        user: &str,
        email: Option<&str>,
        display_name: Option<&str>,
        attributes: &BTreeMap<String, String>,
        external_id: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let what = format!("create user '{user}'");
        // Atlassian refuses a user without a primary e-mail; the planner plans no such
        // creation, so one arriving here is refused before a request is spent on it.
        let Some(email) = email else {
            return Err(self.api.err(
                TargetErrorKind::Rejected,
                format!(
                    "cannot {what}: Atlassian Cloud needs an e-mail address for every account, and the source user has none (users.email)"
                ),
                None,
            ));
        };
        let mut schemas = vec![json!(USER_SCHEMA)];
        let mut body = Map::new();
        body.insert("userName".into(), json!(user));
        if let Some(display_name) = display_name {
            body.insert("displayName".into(), json!(display_name));
        }
        body.insert("emails".into(), work_email(email));
        body.insert("active".into(), json!(true));
        if let Some(external_id) = external_id {
            body.insert("externalId".into(), json!(external_id));
        }
        let mut enterprise = Map::new();
        for (name, value) in attributes {
            if ENTERPRISE_ATTRIBUTES.contains(&name.as_str()) {
                enterprise.insert(name.clone(), json!(value));
            } else if CORE_ATTRIBUTES.contains(&name.as_str()) {
                body.insert(name.clone(), json!(value));
            } else {
                // The config check refuses such names; should one come all the same, the
                // account is still created (an attribute never fails a creation) and setting
                // the attribute fails on its own in a later run, naming it.
                tracing::warn!(user, attribute = %name,
                    "not a custom attribute Atlassian Cloud keeps; the account is created without it");
            }
        }
        if !enterprise.is_empty() {
            schemas.push(json!(ENTERPRISE));
            body.insert(ENTERPRISE.into(), Value::Object(enterprise));
        }
        body.insert("schemas".into(), Value::Array(schemas));
        let reply = self
            .api
            .send(self.scim(Method::POST, "Users", &[], Value::Object(body)))
            .await?;
        if reply.status == StatusCode::CONFLICT {
            // The directory has this userName already: adopt that account.
            return match self.find_user(user).await? {
                Some(existing) => Ok(Applied::Adopted(existing.id)),
                None => Err(self.api.error(&reply, &what)),
            };
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        let created: ScimUser = self.api.parse(&reply, &what)?;
        Ok(Applied::UserKey(created.id))
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-userid-patch
    async fn patch_user(
        &self,
        key: &str,
        operations: Vec<Value>,
        what: &str,
    ) -> Result<Applied, TargetError> {
        let call = self.scim(Method::PATCH, "Users/{}", &[key], patch(operations));
        self.api.send_ok(call, what).await?;
        Ok(Applied::Done)
    }

    async fn update_user(
        &self,
        key: &str,
        user: &str,
        changes: &UserChanges,
    ) -> Result<Applied, TargetError> {
        let mut operations = Vec::new();
        if let Some(display_name) = &changes.display_name {
            operations.push(json!({"op": "replace", "path": "displayName", "value": display_name}));
        }
        if let Some(email) = &changes.email {
            operations.push(json!({"op": "replace", "path": "emails", "value": work_email(email)}));
        }
        if operations.is_empty() {
            return Ok(Applied::AlreadyDone);
        }
        self.patch_user(key, operations, &format!("update user '{user}'"))
            .await
    }

    async fn set_attribute(
        &self,
        key: &str,
        user: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let path = attribute_path(name).ok_or_else(|| self.unsupported_attribute(user, name))?;
        let operation = match value {
            Some(value) => json!({"op": "replace", "path": path, "value": value}),
            None => json!({"op": "remove", "path": path}),
        };
        self.patch_user(
            key,
            vec![operation],
            &format!("set attribute '{name}' of user '{user}'"),
        )
        .await
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-userid-delete
    async fn delete_user(&self, key: &str, user: &str) -> Result<Applied, TargetError> {
        let reply = self
            .api
            .send(self.api.call(Method::DELETE, "Users/{}", &[key]))
            .await?;
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            StatusCode::NOT_FOUND => Ok(Applied::AlreadyDone),
            _ => Err(self.api.error(&reply, &format!("delete user '{user}'"))),
        }
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-post
    async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
        let what = format!("create group '{group}'");
        let body = json!({"schemas": [GROUP_SCHEMA], "displayName": group});
        let reply = self
            .api
            .send(self.scim(Method::POST, "Groups", &[], body))
            .await?;
        if reply.status == StatusCode::CONFLICT {
            self.forget_group(group);
            return match self.group_id(group).await? {
                Some(_) => Ok(Applied::AlreadyDone),
                None => Err(self.api.error(&reply, &what)),
            };
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        let created: ScimGroup = self.api.parse(&reply, &what)?;
        self.ids().insert(name_key(group), created.id);
        Ok(Applied::Done)
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-id-delete
    async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
        let Some(id) = self.group_id(group).await? else {
            return Ok(Applied::AlreadyDone);
        };
        let reply = self
            .api
            .send(self.api.call(Method::DELETE, "Groups/{}", &[&id]))
            .await?;
        self.forget_group(group);
        match reply.status {
            s if s.is_success() => Ok(Applied::Done),
            StatusCode::NOT_FOUND => Ok(Applied::AlreadyDone),
            _ => Err(self.api.error(&reply, &format!("delete group '{group}'"))),
        }
    }

    /// PATCHes a group's members; a remembered id that has gone stale (404) is looked up once
    /// more. `None`: the group does not exist.
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-id-patch
    async fn patch_group(
        &self,
        group: &str,
        operation: Value,
    ) -> Result<Option<Reply>, TargetError> {
        for _ in 0..2 {
            let Some(id) = self.group_id(group).await? else {
                return Ok(None);
            };
            let body = patch(vec![operation.clone()]);
            let reply = self
                .api
                .send(self.scim(Method::PATCH, "Groups/{}", &[&id], body))
                .await?;
            if reply.status != StatusCode::NOT_FOUND {
                return Ok(Some(reply));
            }
            self.forget_group(group);
        }
        Ok(None)
    }

    async fn add_member(&self, group: &str, key: &str, user: &str) -> Result<Applied, TargetError> {
        self.add_members_at_once(group, &[(key.to_owned(), user.to_owned())])
            .await
    }

    /// One PATCH adds every listed member (RFC 7644 §3.5.2.1: `add` with a multi-valued
    /// `members` value).
    async fn add_members_at_once(
        &self,
        group: &str,
        members: &[(String, String)],
    ) -> Result<Applied, TargetError> {
        let what = match members {
            [(_, user)] => format!("add user '{user}' to group '{group}'"),
            _ => format!("add {} users to group '{group}'", members.len()),
        };
        let value: Vec<Value> = members
            .iter()
            .map(|(key, user)| json!({"value": key, "display": user}))
            .collect();
        let operation = json!({"op": "add", "path": "members", "value": value});
        match self.patch_group(group, operation).await? {
            Some(reply) if reply.is_success() => Ok(Applied::Done),
            Some(reply) => Err(self.api.error(&reply, &what)),
            None => Err(self.api.err(
                TargetErrorKind::NotFound,
                format!("cannot {what}: the group does not exist in the directory"),
                Some(404),
            )),
        }
    }

    async fn remove_member(
        &self,
        group: &str,
        key: &str,
        user: &str,
    ) -> Result<Applied, TargetError> {
        let what = format!("remove user '{user}' from group '{group}'");
        // The value-list form: Atlassian documents only `add` on members; this is the removal
        // Microsoft's provisioning service sends ("Update Group [Remove Members]",
        // https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups),
        // and so its Atlassian Cloud connector. The filter form `members[value eq "…"]` is
        // documented by neither.
        let operation = json!({"op": "remove", "path": "members", "value": [{"value": key}]});
        match self.patch_group(group, operation).await? {
            Some(reply) if reply.is_success() => Ok(Applied::Done),
            Some(reply) => Err(self.api.error(&reply, &what)),
            // No group, no membership.
            None => Ok(Applied::AlreadyDone),
        }
    }
}

#[async_trait]
impl Target for AtlassianCloud {
    target_basics!();

    async fn discover(&self) -> Result<idsync_model::ProductInfo, TargetError> {
        // The cloud has one version, today's: nothing to ask.
        Ok(idsync_model::ProductInfo {
            product: "Atlassian Cloud".into(),
            version: None,
        })
    }

    /// One user of the directory, read with the directory API key: it answers, takes the key,
    /// and the key grants every provisioning operation of its directory (there is no account
    /// or role behind it to check). Seats are granted per product in Atlassian administration,
    /// not in the SCIM directory: none to show.
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-get
    async fn probe(&self) -> TargetProbe {
        let mut probe = match self.discover().await {
            Ok(info) => TargetProbe {
                product: Some(info),
                ..TargetProbe::default()
            },
            Err(e) => {
                return probe::stop(TargetProbe::default(), &self.api, ProbeStep::Reachable, e);
            }
        };
        probe.seats = Seats::NotExposed;
        let call = self
            .api
            .get("Users", &[])
            .query("startIndex", 1)
            .query("count", 1)
            .quick();
        let what = "list users";
        let read = match self.api.send(call).await {
            Ok(reply) => self
                .api
                .success(&reply, what)
                .and_then(|r| self.api.parse::<ListResponse<Value>>(r, what))
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            return probe::stop(probe, &self.api, ProbeStep::Reachable, e);
        }
        probe.admin = Some(AdminRights::Confirmed(
            "the directory API key grants every provisioning operation of its directory (GET /Users was answered)".to_owned(),
        ));
        probe
    }

    async fn add_members(
        &self,
        group: &str,
        members: &[(String, String)],
    ) -> Result<Applied, TargetError> {
        self.add_members_at_once(group, members).await
    }

    async fn read_state(&self, attributes: &[String]) -> Result<ActualState, TargetError> {
        // Both listings at once; the API's request gate keeps the whole within `concurrency`.
        let (users, groups) = tokio::try_join!(
            self.pages::<ScimUser>("Users", None, "list users"),
            self.pages::<ScimGroup>("Groups", None, "list groups"),
        )?;
        {
            let mut ids = self.ids();
            ids.clear();
            ids.extend(
                groups
                    .iter()
                    .map(|g| (name_key(&g.display_name), g.id.clone())),
            );
        }
        let members = fan_out(groups, self.api.concurrency, |g| async move {
            let members = match g.members {
                Some(members) => members,
                None => self.members(&g.id, &g.display_name).await?,
            };
            let keys: BTreeSet<String> = members.into_iter().map(|m| m.value).collect();
            Ok((g.display_name, keys))
        })
        .await?;
        Ok(ActualState {
            users: users
                .into_iter()
                .map(|u| u.into_target(attributes))
                .collect(),
            groups: members.iter().map(|(name, _)| name.clone()).collect(),
            memberships: members.into_iter().collect(),
            leads: Vec::new(),
        })
    }

    async fn read_user(
        &self,
        username: &str,
        attributes: &[String],
    ) -> Result<Option<(TargetUser, BTreeSet<String>)>, TargetError> {
        let Some(user) = self.find_user(username).await? else {
            return Ok(None);
        };
        let groups = user
            .groups
            .iter()
            .filter_map(|g| g.display.clone())
            .collect();
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
                external_id,
            } => {
                self.create_user(
                    user,
                    email.as_deref(),
                    display_name.as_deref(),
                    attributes,
                    external_id.as_deref(),
                )
                .await
            }
            Operation::RenameUser {
                key,
                user,
                new_username,
            } => {
                // PATCH `replace` on path `userName`, as Microsoft's provisioning service renames
                // ("Update User [Single-valued properties]",
                // https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups).
                // A PUT would rename too, but it clears every attribute it does not repeat.
                let operation = json!({"op": "replace", "path": "userName", "value": new_username});
                let what = format!("rename user '{user}' to '{new_username}'");
                self.patch_user(key, vec![operation], &what).await
            }
            Operation::UpdateUser { key, user, changes } => {
                self.update_user(key, user, changes).await
            }
            Operation::SetAttribute {
                key,
                user,
                name,
                value,
            } => self.set_attribute(key, user, name, value.as_deref()).await,
            Operation::ReactivateUser { key, user } => {
                let operation = json!({"op": "replace", "path": "active", "value": true});
                let what = format!("reactivate user '{user}'");
                self.patch_user(key, vec![operation], &what).await
            }
            Operation::DeactivateUser { key, user } => {
                let operation = json!({"op": "replace", "path": "active", "value": false});
                let what = format!("deactivate user '{user}'");
                self.patch_user(key, vec![operation], &what).await
            }
            Operation::AddMembership { group, key, user } => {
                self.add_member(group, key, user).await
            }
            Operation::RemoveMembership { group, key, user } => {
                self.remove_member(group, key, user).await
            }
            Operation::HandOverLead { .. } => Err(unsupported(&self.api, op)),
            Operation::DeleteUser { key, user } => self.delete_user(key, user).await,
        }
    }
}
