//! `bitbucket-dc`: Bitbucket Data Center REST 1.0 (`{base_url}/rest/api/1.0`), exactly the
//! operations of the official 8.14 OpenAPI document
//! (https://developer.atlassian.com/server/bitbucket/rest/v814/; api-contracts.md E). The
//! integration tests check every request this module sends against that document.
//!
//! Bitbucket has no deactivation, so deprovisioning follows the target's configured policy:
//! - `remove_licensed_groups` (default): a user counts as active when they are in at least one
//!   of `licensed_groups`; deactivating removes them from all of those, reactivating adds them
//!   to the first one. New accounts are created outside the default group and then put in
//!   that first licensed group, so that the configured groups alone decide who holds a seat.
//!   An existing account adopted at creation (409) is left as it is; the next sync plans
//!   its reactivation if it holds no licensed group.
//! - `delete`: deactivating deletes the account; `active` is Bitbucket's own flag.
//!
//! The stable account key is Bitbucket's numeric user id.

use idsync_model::name::name_key;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use async_trait::async_trait;
use idsync_config::{BitbucketDeprovision, TargetConfig};
use idsync_model::{
    ActualState, Applied, Capabilities, Deprovisioning, LicenceSeats, Operation, ProbeStep,
    ProductInfo, Seats, Target, TargetError, TargetErrorKind, TargetProbe, TargetUser,
};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;
use crate::probe;
use crate::util::{
    VersionedCapabilities, members_of_all, membership_keys, same_name, target_basics, unsupported,
};

mod read;
mod write;

/// A Bitbucket Data Center instance.
pub struct BitbucketDc {
    api: Api,
    capabilities: VersionedCapabilities,
}

/// RestDetailedUser, the fields idsync uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BbUser {
    name: String,
    id: Value,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// RestDetailedGroup.
#[derive(Debug, Clone, Deserialize)]
struct BbGroup {
    name: String,
}

/// RestBitbucketLicense (8.14 OpenAPI), the parts about users.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct License {
    #[serde(default)]
    maximum_number_of_users: Option<i64>,
    #[serde(default)]
    unlimited_number_of_users: bool,
    #[serde(default)]
    status: Option<LicenseStatus>,
}

/// RestBitbucketLicense_status: "the current number of users applied toward the license
/// limit".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseStatus {
    #[serde(default)]
    current_number_of_users: Option<i64>,
}

impl License {
    fn seats(self) -> LicenceSeats {
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        let total = if self.unlimited_number_of_users {
            None
        } else {
            count(self.maximum_number_of_users)
        };
        let used = count(self.status.and_then(|s| s.current_number_of_users));
        LicenceSeats {
            licence: "Bitbucket".to_owned(),
            total,
            used,
            remaining: total.zip(used).map(|(t, u)| t.saturating_sub(u)),
        }
    }
}

impl BbUser {
    fn key(&self) -> String {
        match &self.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl BitbucketDc {
    /// The target a `bitbucket-dc` entry describes, as the concrete type ([`crate::build_target`]
    /// gives it as a `dyn Target`; the Bitbucket tests use this). Fails only on unusable
    /// settings (also `remove_licensed_groups` without `licensed_groups`); nothing is sent.
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        let api = Api::new(config)?;
        let deprovisioning = match config.deprovision {
            BitbucketDeprovision::Delete => Deprovisioning::Delete,
            BitbucketDeprovision::RemoveLicensedGroups => {
                let Some(first) = config.licensed_groups.first() else {
                    return Err(api.err(
                        TargetErrorKind::Rejected,
                        format!(
                            "target '{}': deprovision = \"remove_licensed_groups\" needs at least one group in `licensed_groups`",
                            config.name
                        ),
                        None,
                    ));
                };
                Deprovisioning::RemoveLicensedGroups {
                    groups: config.licensed_groups.iter().cloned().collect(),
                    reactivate_group: first.clone(),
                }
            }
        };
        Ok(BitbucketDc {
            api,
            capabilities: VersionedCapabilities::new(Capabilities {
                deprovisioning,
                custom_attributes: false,
                leads: false,
                ..Capabilities::FULL
            }),
        })
    }

    /// Reads the version (`quick`: for a probe) and settles the capabilities.
    async fn discover_version(&self, quick: bool) -> Result<ProductInfo, TargetError> {
        let info = crate::versions::bitbucket(&self.api, quick).await?;
        // Bitbucket 8–9 have every admin resource idsync uses.
        self.capabilities.found(Default::default());
        Ok(info)
    }

    /// The licensed groups and the group reactivation adds, under the licensed-groups policy.
    fn licensed(&self) -> Option<(&BTreeSet<String>, &str)> {
        match &self.capabilities.get().deprovisioning {
            Deprovisioning::RemoveLicensedGroups {
                groups,
                reactivate_group,
            } => Some((groups, reactivate_group)),
            _ => None,
        }
    }

    fn is_licensed_group(&self, group: &str) -> bool {
        self.licensed()
            .is_some_and(|(groups, _)| groups.iter().any(|g| same_name(g, group)))
    }

    /// After the version (`application-properties`): credentials (`users`, which any licensed
    /// account may read), then administrator rights and seats (`admin/license`, which needs
    /// the ADMIN permission user and group management needs too).
    async fn check_access(&self, probe: &mut TargetProbe) -> ControlFlow<()> {
        // Bitbucket has no resource naming the signed-in user; the account shown is the
        // configured one (Bitbucket takes Basic authentication only here). A request that
        // needs a signed-in user proves the password: getUsers_2 (8.14 OpenAPI), "The
        // authenticated user must have LICENSED_USER permission".
        let account = self.api.basic_username().unwrap_or_default().to_owned();
        // Only `filter` narrows it: the document lists no paging parameters for it.
        let call = self
            .api
            .get("rest/api/1.0/users", &[])
            .query("filter", &account);
        let sent = self
            .api
            .send_ok(call, "look up the configured account")
            .await;
        probe::step(probe, &self.api, ProbeStep::Credentials, sent)?;
        probe.account = Some(account);
        // get_2, "Get license details" (8.14 OpenAPI, System Maintenance): "The authenticated
        // user must have ADMIN permission"; 401 to anyone else, 404 when no licence is
        // installed.
        const LICENCE: &str = "GET /rest/api/1.0/admin/license";
        let call = self.api.get("rest/api/1.0/admin/license", &[]);
        let reply = probe::admin_reply(probe, &self.api, LICENCE, call).await?;
        let seats = if reply.status == StatusCode::NOT_FOUND {
            Vec::new()
        } else {
            let what = "read the licence";
            let licence = self
                .api
                .success(&reply, what)
                .and_then(|r| self.api.parse::<License>(r, what));
            vec![probe::step(probe, &self.api, ProbeStep::AdminRights, licence)?.seats()]
        };
        probe.admin = Some(probe::admin_confirmed(
            LICENCE,
            "the Admin global permission",
        ));
        probe.seats = Seats::Licences(seats);
        ControlFlow::Continue(())
    }
}

#[async_trait]
impl Target for BitbucketDc {
    target_basics!(data_center);

    /// New accounts get their licence group in batches (one at a time for a refused batch, to
    /// tell who could not have one), then their ids: a few looked up one by one (a filtered
    /// list each), many at once by reading the whole user list, a thousand per page.
    async fn complete_creations(
        &self,
        usernames: &[String],
    ) -> Result<HashMap<String, Result<String, TargetError>>, TargetError> {
        const LOOKUPS_AT_MOST: usize = 10;
        const LICENCE_BATCH: usize = 500;
        let mut refused: HashMap<String, TargetError> = HashMap::new();
        if let Some((_, group)) = self.licensed() {
            for batch in usernames.chunks(LICENCE_BATCH) {
                if self.add_members(group, batch).await.is_ok() {
                    continue;
                }
                for user in batch {
                    if let Err(e) = self.add_members(group, std::slice::from_ref(user)).await {
                        let message = format!(
                            "user '{user}' was created but holds no licence yet: {}",
                            e.message
                        );
                        refused.insert(name_key(user), TargetError { message, ..e });
                    }
                }
            }
        }
        let mut keys: HashMap<String, String> = HashMap::new();
        if usernames.len() <= LOOKUPS_AT_MOST {
            for name in usernames {
                if let Some(user) = self.find_user(name).await? {
                    keys.insert(name_key(name), user.key());
                }
            }
        } else {
            let wanted: HashSet<String> = usernames.iter().map(|n| name_key(n)).collect();
            for user in self.users(None).await? {
                let name = name_key(&user.name);
                if wanted.contains(&name) {
                    keys.insert(name, user.key());
                }
            }
        }
        Ok(usernames
            .iter()
            .map(|name| {
                let name = name_key(name);
                let outcome = match (refused.remove(&name), keys.remove(&name)) {
                    (Some(e), _) => Err(e),
                    (None, Some(key)) => Ok(key),
                    (None, None) => Err(self.api.malformed(
                        &format!("create user '{name}'"),
                        "the user was created but cannot be found",
                    )),
                };
                (name, outcome)
            })
            .collect())
    }

    async fn add_members(
        &self,
        group: &str,
        members: &[(String, String)],
    ) -> Result<Applied, TargetError> {
        let users: Vec<String> = members.iter().map(|(_, user)| user.clone()).collect();
        BitbucketDc::add_members(self, group, &users).await
    }

    async fn read_state(&self, _attributes: &[String]) -> Result<ActualState, TargetError> {
        // Bitbucket's pages carry no total, so each listing is read page by page; the two
        // run side by side.
        let (users, groups) = tokio::try_join!(self.users(None), self.groups(None))?;
        // Direct memberships can be read per group (`groups/more-members`) or per user
        // (`users/more-members`): one request per entry either way (pages hold up to 1000),
        // so the shorter list costs fewer requests. Both give the same memberships.
        let memberships = if users.len() < groups.len() {
            self.memberships_by_user(&users, &groups).await?
        } else {
            let members = members_of_all(&groups, self.api.concurrency, |g| async move {
                self.members(&g).await
            })
            .await?;
            membership_keys(&members, BbUser::key)
        };
        let mut groups_by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, keys) in &memberships {
            for key in keys {
                groups_by_user
                    .entry(key.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        let none = BTreeSet::new();
        let users = users
            .into_iter()
            .map(|u| {
                let groups = groups_by_user.get(&u.key()).unwrap_or(&none);
                self.target_user(u, Some(groups))
            })
            .collect();
        Ok(ActualState {
            users,
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
        let found = crate::util::account_and_groups(
            username,
            self.find_user(username),
            |name| async move { self.groups_of(&name).await },
            |user: &BbUser| user.name.as_str(),
        )
        .await?;
        let Some((user, groups)) = found else {
            return Ok(None);
        };
        let groups: BTreeSet<String> = groups.into_iter().collect();
        Ok(Some((self.target_user(user, Some(&groups)), groups)))
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
                if !attributes.is_empty() {
                    return Err(unsupported(&self.api, op));
                }
                self.create_user(user, email.as_deref(), display_name.as_deref())
                    .await
            }
            Operation::RenameUser {
                key,
                user,
                new_username,
            } => self.rename_user(key, user, new_username).await,
            Operation::UpdateUser { user, changes, .. } => self.update_user(user, changes).await,
            Operation::SetAttribute { .. } | Operation::HandOverLead { .. } => {
                Err(unsupported(&self.api, op))
            }
            Operation::ReactivateUser { user, .. } => self.reactivate(user).await,
            Operation::DeactivateUser { user, .. } => self.deactivate(user).await,
            Operation::AddMembership { group, user, .. } => self.add_member(group, user).await,
            Operation::RemoveMembership { group, user, .. } => {
                self.remove_member(group, user).await
            }
            Operation::DeleteUser { user, .. } => self.delete_user(user).await,
        }
    }
}
