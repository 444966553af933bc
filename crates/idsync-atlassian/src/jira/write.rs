//! Jira's writes: users (create, update, properties, delete), groups, memberships and lead
//! hand-overs. Jira answers many "already so" cases with a plain 400, so several writes look
//! the state up before they call a refusal a failure.

use std::collections::BTreeMap;

use idsync_model::{Applied, LeadKind, TargetError, TargetErrorKind};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{JiraDc, JiraUser};
use crate::util::same_name;

impl JiraDc {
    /// `PUT /user?key=` with a UserWrite subset: rename (`name`), details, `active`.
    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-put
    pub(super) async fn update(
        &self,
        key: &str,
        body: Value,
        what: &str,
    ) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::PUT, "rest/api/2/user", &[])
            .query("key", key)
            .json(body);
        self.api.send_done(call, what).await
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-post
    pub(super) async fn create_user(
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
    pub(super) async fn set_property(
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
    pub(super) async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn add_member(&self, group: &str, user: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn remove_member(
        &self,
        group: &str,
        user: &str,
    ) -> Result<Applied, TargetError> {
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
    pub(super) async fn hand_over(
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
        self.api.send_done(call, &what).await
    }

    /// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-delete
    pub(super) async fn delete_user(&self, key: &str, user: &str) -> Result<Applied, TargetError> {
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
