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
use std::ops::ControlFlow;
use std::time::Duration;

use async_trait::async_trait;
use idsync_config::TargetConfig;
use idsync_model::{
    ActualState, AdminRights, Applied, Capabilities, Operation, ProbeStep, Seats, Target,
    TargetError, TargetProbe, TargetUser,
};
use serde::Deserialize;

use crate::api::Api;
use crate::probe;
use crate::util::{
    VersionedCapabilities, groups_and_members, membership_keys, target_basics, unsupported,
};

mod read;
mod write;

/// A Confluence Data Center instance.
pub struct ConfluenceDc {
    api: Api,
    capabilities: VersionedCapabilities,
    /// How long a deletion's long task is waited for.
    task_wait: Duration,
}

/// Person (`type: known`). `status` ("Active" or "Deactivated") comes only with
/// `expand=status`, an expansion Atlassian's own Confluence Data Center REST reference uses in
/// its request examples for the user listings (9.4 and 10.x, "Admin Users":
/// `/rest/api/admin/users/list/active?start=0&limit=100&expand=status`,
/// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-users/), and
/// that Person lists under `_expandable`. No other documented resource says whether an account
/// is deactivated: the active-users listing leaves out unlicensed users as well.
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

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
}

impl Person {
    fn into_target(self) -> TargetUser {
        TargetUser {
            key: self.user_key,
            username: self.username,
            email: self.email.filter(|e| !e.is_empty()),
            display_name: self.display_name.filter(|d| !d.is_empty()),
            // Without a status (a server that ignored the expansion) an account counts as
            // active: the reading that never leaves access behind (a leaver is still
            // deactivated; the cost is that a returning user is not reactivated, which
            // `read_state` warns about).
            active: self
                .status
                .is_none_or(|s| !s.eq_ignore_ascii_case("deactivated")),
            attributes: BTreeMap::new(),
            external_id: None,
        }
    }
}

impl ConfluenceDc {
    /// The target a `confluence-dc` entry describes, as the concrete type
    /// ([`crate::build_target`] gives it as a `dyn Target`). Fails only on unusable settings;
    /// nothing is sent.
    pub fn new(config: &TargetConfig) -> Result<Self, TargetError> {
        Ok(ConfluenceDc {
            api: Api::new(config)?,
            task_wait: Duration::from_secs(config.long_task_wait_seconds.max(1)),
            capabilities: VersionedCapabilities::new(Capabilities {
                rename_user: false,
                reads_email: false,
                custom_attributes: false,
                bulk_membership: false,
                leads: false,
                ..Capabilities::FULL
            }),
        })
    }

    /// After the version (`server-information` or the applinks manifest): credentials
    /// (`user/current`), then administrator rights: the member list of a group, which
    /// Confluence shows to administrators only (CONFSERVER-98582) and which every sync reads.
    /// Confluence exposes no licence seats through a documented REST resource.
    async fn check_access(&self, probe: &mut TargetProbe) -> ControlFlow<()> {
        probe.seats = Seats::NotExposed;
        let account = probe::step(
            probe,
            &self.api,
            ProbeStep::Credentials,
            self.current_user().await,
        )?;
        probe.account = Some(account);
        // Any user may list the groups; the members of one, only an administrator.
        let call = self.api.get("rest/api/group", &[]).query("limit", 1);
        let listed = self.api.fetch::<Page<Group>>(call, "list groups").await;
        let first = probe::step(probe, &self.api, ProbeStep::AdminRights, listed)?;
        let Some(group) = first.results.into_iter().next() else {
            probe.admin = Some(AdminRights::NotVerified(
                "Confluence has no group whose members could be listed".to_owned(),
            ));
            return ControlFlow::Continue(());
        };
        const MEMBERS: &str = "GET /rest/api/group/{groupName}/member";
        let call = self
            .api
            .get("rest/api/group/{}/member", &[&group.name])
            .query("limit", 1);
        let reply = probe::admin_reply(probe, &self.api, MEMBERS, call).await?;
        let what = format!("list the members of group '{}'", group.name);
        probe::step(
            probe,
            &self.api,
            ProbeStep::AdminRights,
            self.api.success(&reply, &what),
        )?;
        probe.admin = Some(probe::admin_confirmed(
            MEMBERS,
            "Confluence administrator rights",
        ));
        ControlFlow::Continue(())
    }
}

#[async_trait]
impl Target for ConfluenceDc {
    target_basics!(data_center);

    async fn read_state(&self, _attributes: &[String]) -> Result<ActualState, TargetError> {
        // The user listing runs beside the group and member reads (the API's request gate
        // keeps the whole within `concurrency`); any failure fails the read.
        let (listed, (groups, members)) = tokio::try_join!(
            self.users(),
            groups_and_members(self.groups(), self.api.concurrency, |g| async move {
                self.members(&g).await
            }),
        )?;
        let memberships = membership_keys(&members, |p| p.user_key.clone());
        // Before Confluence 8.4 there is no user listing: every user who holds a group is
        // found through the member lists (users in no group cannot use Confluence anyway).
        let users: BTreeMap<String, Person> = listed
            .unwrap_or_default()
            .into_iter()
            .chain(members.into_iter().flat_map(|(_, list)| list))
            .map(|p| (p.user_key.clone(), p))
            .collect();
        let without_status = users.values().filter(|p| p.status.is_none()).count();
        if without_status > 0 {
            tracing::warn!(
                target_url = %self.api.shown(),
                accounts = without_status,
                "Confluence sent {without_status} account(s) without the status asked for with expand=status: they are taken as active, so a deactivated account of a user back in scope is not reactivated until Confluence reports its status"
            );
        }
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
        let found = crate::util::account_and_groups(
            username,
            self.user(username),
            |name| async move { self.groups_of(&name).await },
            |person: &Person| person.username.as_str(),
        )
        .await?;
        Ok(found.map(|(person, groups)| (person.into_target(), groups)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn person(status: Option<&str>) -> Person {
        Person {
            user_key: "k1".into(),
            username: "jdoe".into(),
            display_name: Some("J Doe".into()),
            email: None,
            status: status.map(str::to_owned),
        }
    }

    #[test]
    fn the_status_expansion_decides_whether_an_account_is_active() {
        assert!(person(Some("Active")).into_target().active);
        assert!(!person(Some("Deactivated")).into_target().active);
        assert!(!person(Some("deactivated")).into_target().active);
        // No status at all: active, the reading that never leaves access behind.
        assert!(person(None).into_target().active);
    }
}
