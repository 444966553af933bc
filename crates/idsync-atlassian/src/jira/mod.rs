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
use std::ops::ControlFlow;
use std::sync::atomic::AtomicU8;

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, Applied, Capabilities, Lead, LicenceSeats, Operation, ProbeStep, ProductInfo,
    Seats, Target, TargetError, TargetProbe, TargetUser,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Api;
use crate::probe;
use crate::util::{
    VersionedCapabilities, fan_out, groups_and_members, membership_keys, target_basics,
    user_changes,
};

mod read;
mod write;

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
    /// The target a `jira-dc` entry describes, as the concrete type ([`crate::build_target`]
    /// gives it as a `dyn Target`). Fails only on unusable settings; nothing is sent.
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(JiraDc {
            api: Api::new(config)?,
            capabilities: VersionedCapabilities::new(Capabilities {
                bulk_membership: false,
                ..Capabilities::FULL
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
        let me: Myself = self.api.signed_in("rest/api/2/myself").await?;
        Ok(me.name)
    }

    /// After the version (`serverInfo`): credentials (`myself`), then administrator rights and
    /// seats (`applicationrole`, which needs the Administer Jira permission idsync's user and
    /// group management needs too).
    async fn check_access(&self, probe: &mut TargetProbe) -> ControlFlow<()> {
        let account = probe::step(
            probe,
            &self.api,
            ProbeStep::Credentials,
            self.myself().await,
        )?;
        probe.account = Some(account);
        const ROLES: &str = "GET /rest/api/2/applicationrole";
        let call = self.api.get("rest/api/2/applicationrole", &[]);
        let reply = probe::admin_reply(probe, &self.api, ROLES, call).await?;
        let what = "read the application roles";
        let roles: Vec<ApplicationRole> = probe::step(
            probe,
            &self.api,
            ProbeStep::AdminRights,
            self.api
                .success(&reply, what)
                .and_then(|r| self.api.parse(r, what)),
        )?;
        probe.admin = Some(probe::admin_confirmed(
            ROLES,
            "the Administer Jira global permission",
        ));
        probe.seats = Seats::Licences(roles.into_iter().map(ApplicationRole::seats).collect());
        ControlFlow::Continue(())
    }
}

#[async_trait]
impl Target for JiraDc {
    target_basics!(data_center);

    async fn read_state(&self, attributes: &[String]) -> Result<ActualState, TargetError> {
        // The user listing is cursor-paged (one page after another), so it runs beside the
        // group and member reads and the leads instead of before them; the API's request gate
        // keeps the whole within `concurrency`. Any failure fails the read.
        let ((listed, complete), (groups, members), leads) = tokio::try_join!(
            self.users(),
            groups_and_members(self.groups(""), self.api.concurrency, |g| async move {
                self.members(&g).await
            }),
            self.leads(),
        )?;
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
                let Some(body) = user_changes(changes, "emailAddress", "displayName") else {
                    return Ok(Applied::AlreadyDone);
                };
                let what = format!("update user '{user}'");
                self.update(key, Value::Object(body), &what).await
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
