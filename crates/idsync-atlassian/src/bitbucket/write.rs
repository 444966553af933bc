//! Bitbucket's writes: users, groups and memberships, and deprovisioning by the configured
//! policy (licensed groups removed, or the account deleted), since Bitbucket cannot deactivate.

use idsync_model::{Applied, TargetError, UserChanges};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::BitbucketDc;
use crate::util::{random_password, same_name, user_changes};

impl BitbucketDc {
    /// Adds many users to one group in one request (`bulk_membership`). Users already in the
    /// group are fine: Bitbucket adds whoever is missing.
    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-add-users-post
    pub async fn add_members(&self, group: &str, users: &[String]) -> Result<Applied, TargetError> {
        if users.is_empty() {
            return Ok(Applied::AlreadyDone);
        }
        let what = if let [one] = users {
            format!("add user '{one}' to group '{group}'")
        } else {
            format!("add {} users to group '{group}'", users.len())
        };
        let call = self
            .api
            .call(Method::POST, "rest/api/1.0/admin/groups/add-users", &[])
            .json(json!({"group": group, "users": users}));
        self.api.send_done(call, &what).await
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-remove-user-post
    pub(super) async fn remove_member(
        &self,
        group: &str,
        user: &str,
    ) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::POST, "rest/api/1.0/admin/groups/remove-user", &[])
            .json(json!({"context": group, "itemName": user}));
        let reply = self.api.send(call).await?;
        // A 404: the user or the group is gone, so the membership is too.
        self.api.deleted(
            &reply,
            &format!("remove user '{user}' from group '{group}'"),
        )
    }

    pub(super) async fn add_member(&self, group: &str, user: &str) -> Result<Applied, TargetError> {
        match self.add_members(group, &[user.to_owned()]).await {
            Ok(applied) => Ok(applied),
            Err(e) if e.status.is_some_and(|s| (400..500).contains(&s)) => {
                let already = self
                    .groups_of(user)
                    .await
                    .map(|groups| groups.iter().any(|g| same_name(g, group)))
                    .unwrap_or(false);
                if already {
                    Ok(Applied::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// createUser takes query parameters only and answers 204.
    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-post
    pub(super) async fn create_user(
        &self,
        user: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let what = format!("create user '{user}'");
        let email = self.api.required_email(email, &what, "Bitbucket")?;
        let licensed = self.licensed();
        let call = self
            .api
            .call(Method::POST, "rest/api/1.0/admin/users", &[])
            .query("name", user)
            .query("displayName", display_name.unwrap_or(user))
            .query("emailAddress", email)
            // Bitbucket insists on a password unless it e-mails the user a link; users sign
            // in through SSO or a directory, so a random one nobody knows is set instead.
            .query("password", random_password())
            .query("addToDefaultGroup", licensed.is_none())
            .query("notify", false);
        let reply = self.api.send(call).await?;
        if reply.status == StatusCode::CONFLICT {
            return match self.find_user(user).await? {
                Some(existing) => Ok(Applied::Adopted(existing.key())),
                None => Err(self.api.error(&reply, &what)),
            };
        }
        if !reply.is_success() {
            return Err(self.api.error(&reply, &what));
        }
        // The licence group (when not Bitbucket's default one) and the id come with
        // `complete_creations`, for every new account at once.
        Ok(Applied::CreatedWithoutKey)
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-put
    pub(super) async fn update_user(
        &self,
        user: &str,
        changes: &UserChanges,
    ) -> Result<Applied, TargetError> {
        let Some(mut body) = user_changes(changes, "email", "displayName") else {
            return Ok(Applied::AlreadyDone);
        };
        body.insert("name".into(), json!(user));
        let call = self
            .api
            .call(Method::PUT, "rest/api/1.0/admin/users", &[])
            .json(Value::Object(body));
        self.api
            .send_done(call, &format!("update user '{user}'"))
            .await
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-rename-post
    pub(super) async fn rename_user(
        &self,
        key: &str,
        user: &str,
        new: &str,
    ) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::POST, "rest/api/1.0/admin/users/rename", &[])
            .json(json!({"name": user, "newName": new}));
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        // A retried rename that went through the first time: the account already has the new
        // name.
        if matches!(reply.status.as_u16(), 400 | 404)
            && self.find_user(new).await?.is_some_and(|u| u.key() == key)
        {
            return Ok(Applied::AlreadyDone);
        }
        Err(self
            .api
            .error(&reply, &format!("rename user '{user}' to '{new}'")))
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-users-delete
    pub(super) async fn delete_user(&self, user: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::DELETE, "rest/api/1.0/admin/users", &[])
            .query("name", user);
        let reply = self.api.send(call).await?;
        self.api.deleted(&reply, &format!("delete user '{user}'"))
    }

    pub(super) async fn deactivate(&self, user: &str) -> Result<Applied, TargetError> {
        let Some((licensed, _)) = self.licensed() else {
            return self.delete_user(user).await;
        };
        if let [only] = licensed.iter().collect::<Vec<_>>()[..] {
            // One licence group (the usual case): removing the user from it is one request,
            // where finding out first which groups they hold would be two.
            return self.remove_member(only, user).await;
        }
        let held: Vec<String> = self
            .groups_of(user)
            .await?
            .into_iter()
            .filter(|g| self.is_licensed_group(g))
            .collect();
        if held.is_empty() {
            return Ok(Applied::AlreadyDone);
        }
        for group in &held {
            self.remove_member(group, user).await?;
        }
        Ok(Applied::Done)
    }

    pub(super) async fn reactivate(&self, user: &str) -> Result<Applied, TargetError> {
        let Some((_, group)) = self.licensed() else {
            return Err(self.api.unsupported(format!(
                "cannot reactivate user '{user}': Bitbucket has no deactivation and this target deletes accounts to deprovision them"
            )));
        };
        if self
            .groups_of(user)
            .await?
            .iter()
            .any(|g| self.is_licensed_group(g))
        {
            return Ok(Applied::AlreadyDone);
        }
        self.add_members(group, &[user.to_owned()]).await
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-post
    pub(super) async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::POST, "rest/api/1.0/admin/groups", &[])
            .query("name", group);
        let reply = self.api.send(call).await?;
        if reply.is_success() {
            return Ok(Applied::Done);
        }
        if reply.status == StatusCode::CONFLICT
            && self
                .groups(Some(group))
                .await?
                .iter()
                .any(|g| same_name(g, group))
        {
            return Ok(Applied::AlreadyDone);
        }
        Err(self.api.error(&reply, &format!("create group '{group}'")))
    }

    /// https://developer.atlassian.com/server/bitbucket/rest/v814/api-group-permission-management/#api-api-latest-admin-groups-delete
    pub(super) async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
        let call = self
            .api
            .call(Method::DELETE, "rest/api/1.0/admin/groups", &[])
            .query("name", group);
        let reply = self.api.send(call).await?;
        self.api.deleted(&reply, &format!("delete group '{group}'"))
    }
}
