//! SCIM writes: users, their attributes, groups and memberships, as PATCH operations where the
//! API has them.

use idsync_model::name::name_key;
use std::collections::BTreeMap;

use idsync_model::{Applied, TargetError, TargetErrorKind, UserChanges};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{
    AtlassianCloud, CORE_ATTRIBUTES, ENTERPRISE, ENTERPRISE_ATTRIBUTES, GROUP_SCHEMA, ScimGroup,
    ScimUser, USER_SCHEMA,
};
use crate::api::Reply;

const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

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

fn patch(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// `emails` as Atlassian requires it on create and modify: one value, marked primary.
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
fn work_email(email: &str) -> Value {
    json!([{"value": email, "type": "work", "primary": true}])
}

impl AtlassianCloud {
    fn unsupported_attribute(&self, user: &str, name: &str) -> TargetError {
        self.api.unsupported(format!(
            "cannot set attribute '{name}' of user '{user}': Atlassian's SCIM directory has no such attribute; use one of {} or {}",
            ENTERPRISE_ATTRIBUTES.join(", "),
            CORE_ATTRIBUTES.join(", ")
        ))
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
    pub(super) async fn create_user(
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
    pub(super) async fn patch_user(
        &self,
        key: &str,
        operations: Vec<Value>,
        what: &str,
    ) -> Result<Applied, TargetError> {
        let call = self.scim(Method::PATCH, "Users/{}", &[key], patch(operations));
        self.api.send_done(call, what).await
    }

    pub(super) async fn update_user(
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

    pub(super) async fn set_attribute(
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
    pub(super) async fn delete_user(&self, key: &str, user: &str) -> Result<Applied, TargetError> {
        let reply = self
            .api
            .send(self.api.call(Method::DELETE, "Users/{}", &[key]))
            .await?;
        self.api.deleted(&reply, &format!("delete user '{user}'"))
    }

    /// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-groups/#api-scim-directory-directoryid-groups-post
    pub(super) async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
        let Some(id) = self.group_id(group).await? else {
            return Ok(Applied::AlreadyDone);
        };
        let reply = self
            .api
            .send(self.api.call(Method::DELETE, "Groups/{}", &[&id]))
            .await?;
        self.forget_group(group);
        self.api.deleted(&reply, &format!("delete group '{group}'"))
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

    pub(super) async fn add_member(
        &self,
        group: &str,
        key: &str,
        user: &str,
    ) -> Result<Applied, TargetError> {
        self.add_members_at_once(group, &[(key.to_owned(), user.to_owned())])
            .await
    }

    /// One PATCH adds every listed member (RFC 7644 §3.5.2.1: `add` with a multi-valued
    /// `members` value).
    pub(super) async fn add_members_at_once(
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

    pub(super) async fn remove_member(
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
