//! SCIM reads: the 1-based resource lists of users and groups, lookups by `eq` filter and the
//! group ids the directory assigns (cached, since every group write needs one).

use idsync_model::name::name_key;

use idsync_model::TargetError;
use serde::de::DeserializeOwned;

use super::{AtlassianCloud, ListResponse, Member, ScimGroup, ScimUser};
use crate::util::{OffsetPage, offset_pages, same_name};

/// Resources per page: Atlassian serves at most 100.
const PAGE: usize = 100;

/// `attr eq "value"`, quoted as a JSON string (SCIM filter strings use JSON escapes).
fn eq_filter(attribute: &str, value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""));
    format!("{attribute} eq {quoted}")
}

impl AtlassianCloud {
    /// Every page of a resource list, 1-based, until `totalResults` are read. The first page
    /// gives the total, so the rest are read `concurrency` at a time.
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-get
    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-get
    pub(super) async fn pages<T: DeserializeOwned>(
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

    /// The resources of the list `template` whose `attribute` equals `value` (the directory
    /// may compare case-insensitively: callers pick the match they need); `kind` names the
    /// resource in errors.
    async fn look_up<T: DeserializeOwned>(
        &self,
        template: &'static str,
        attribute: &str,
        value: &str,
        kind: &str,
    ) -> Result<Vec<T>, TargetError> {
        let what = format!("look up {kind} '{value}'");
        self.pages(template, Some(eq_filter(attribute, value)), &what)
            .await
    }

    pub(super) async fn find_user(&self, username: &str) -> Result<Option<ScimUser>, TargetError> {
        let users: Vec<ScimUser> = self.look_up("Users", "userName", username, "user").await?;
        Ok(users
            .into_iter()
            .find(|u| same_name(&u.user_name, username)))
    }

    /// The SCIM id of a group, from memory or looked up by `displayName`.
    pub(super) async fn group_id(&self, group: &str) -> Result<Option<String>, TargetError> {
        if let Some(id) = self.ids().get(&name_key(group)) {
            return Ok(Some(id.clone()));
        }
        let groups: Vec<ScimGroup> = self
            .look_up("Groups", "displayName", group, "group")
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

    pub(super) fn forget_group(&self, group: &str) {
        self.ids().remove(&name_key(group));
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-id-get
    pub(super) async fn members(&self, id: &str, name: &str) -> Result<Vec<Member>, TargetError> {
        let call = self.api.get("Groups/{}", &[id]);
        let group: ScimGroup = self
            .api
            .fetch(call, &format!("read group '{name}'"))
            .await?;
        Ok(group.members.unwrap_or_default())
    }
}
