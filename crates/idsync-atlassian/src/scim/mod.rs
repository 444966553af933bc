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
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, AdminRights, Applied, Capabilities, Operation, ProbeStep, Seats, Target,
    TargetError, TargetProbe, TargetUser,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{Api, Call};
use crate::probe;
use crate::util::{VersionedCapabilities, attribute_text, fan_out, target_basics, unsupported};

mod read;
mod write;

const SCIM_JSON: &str = "application/scim+json";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    #[serde(default)]
    total_results: Option<usize>,
    #[serde(default = "Vec::new", rename = "Resources")]
    resources: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
struct Member {
    value: String,
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
    /// The target an `atlassian-cloud` entry describes, as the concrete type
    /// ([`crate::build_target`] gives it as a `dyn Target`). Fails only on unusable settings;
    /// nothing is sent.
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(AtlassianCloud {
            api: Api::new(config)?,
            capabilities: VersionedCapabilities::new(Capabilities {
                leads: false,
                requires_email: true,
                ..Capabilities::FULL
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
