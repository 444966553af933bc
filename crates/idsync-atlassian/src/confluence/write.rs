//! Confluence's writes: users, groups and memberships; deleting a user is a long task that is
//! polled until it ends, so it lives here with its wait.

use std::time::Duration;

use idsync_model::{Applied, TargetError, TargetErrorKind, UserChanges};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConfluenceDc;
use crate::util::{random_password, same_name, user_changes};

/// Long-task polling: first wait and longest wait between polls. How long in all before the
/// deletion is reported as still running is the target's `long_task_wait_seconds`.
const POLL_FIRST: Duration = Duration::from_millis(200);

const POLL_MAX: Duration = Duration::from_secs(5);

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
    #[serde(default)]
    messages: Vec<Value>,
}

impl ConfluenceDc {
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-post
    pub(super) async fn create_user(
        &self,
        user: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Applied, TargetError> {
        let what = format!("create user '{user}'");
        let email = self.api.required_email(email, &what, "Confluence")?;
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
    pub(super) async fn update_user(
        &self,
        user: &str,
        changes: &UserChanges,
    ) -> Result<Applied, TargetError> {
        let Some(body) = user_changes(changes, "email", "fullName") else {
            return Ok(Applied::AlreadyDone);
        };
        let call = self
            .api
            .call(Method::PUT, "rest/api/admin/user/{}", &[user])
            .json(Value::Object(body));
        self.api
            .send_done(call, &format!("update user '{user}'"))
            .await
    }

    /// Both are idempotent in Confluence.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-disable-put
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-enable-put
    pub(super) async fn set_enabled(
        &self,
        user: &str,
        enable: bool,
    ) -> Result<Applied, TargetError> {
        let (template, verb) = if enable {
            ("rest/api/admin/user/{}/enable", "reactivate")
        } else {
            ("rest/api/admin/user/{}/disable", "deactivate")
        };
        let call = self.api.call(Method::PUT, template, &[user]);
        self.api
            .send_done(call, &format!("{verb} user '{user}'"))
            .await
    }

    /// Deletion runs as a long task: submitted (202), then polled until it finishes.
    /// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/#api-rest-api-admin-user-username-delete
    pub(super) async fn delete_user(&self, user: &str) -> Result<Applied, TargetError> {
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
            if status.percentage_complete.is_some_and(|p| p >= 100) {
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
    pub(super) async fn create_group(&self, group: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn delete_group(&self, group: &str) -> Result<Applied, TargetError> {
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
    pub(super) async fn membership(
        &self,
        group: &str,
        user: &str,
        add: bool,
    ) -> Result<Applied, TargetError> {
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
