//! Checks of one `[[targets]]` entry, and of what the apps ask of the targets they feed.

use std::collections::BTreeSet;

use idsync_model::redact::redact_url;

use super::{Checker, target_field};
use crate::env::target_env_var;
use crate::locate::Seg;
use crate::schema::{
    AppConfig, BitbucketDeprovision, Config, MAX_CONCURRENCY, MAX_REQUESTS_PER_SECOND,
    MIN_REQUESTS_PER_SECOND, TargetConfig,
};

impl Checker<'_> {
    pub(super) fn check_target(&mut self, i: usize, t: &TargetConfig) {
        let at = |field: &str| target_field(i, field);
        if !matches!(t.base_url.scheme(), "http" | "https") {
            self.report(
                &at("base_url"),
                format!(
                    "'{}' is not an http(s) URL; use e.g. https://jira.example.com",
                    redact_url(t.base_url.as_str())
                ),
            );
        } else if self.refuse_credentials_in(
            &at("base_url"),
            &t.base_url,
            &if t.kind == idsync_model::TargetKind::BitbucketDc {
                format!(
                    "set `username` + `password` in this [[targets]] entry, or {} and {}",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                )
            } else {
                format!(
                    "set `token` (or `username` + `password`) in this [[targets]] entry, or {}",
                    target_env_var(&t.name, "token")
                )
            },
        ) {
            self.warn_plain_http(&at("base_url"), &t.base_url);
        }
        self.check_target_credentials(i, t);
        self.check_target_limits(i, t);
    }

    /// Credentials present, of the kind the product takes, and not two kinds at once.
    pub(super) fn check_target_credentials(&mut self, i: usize, t: &TargetConfig) {
        let at = |field: &str| target_field(i, field);
        let has_token = t.token.as_ref().is_some_and(|s| !s.expose().is_empty());
        let has_user = t.username.as_ref().is_some_and(|s| !s.is_empty());
        let has_password = t.password.as_ref().is_some_and(|s| !s.expose().is_empty());
        let cloud = t.kind == idsync_model::TargetKind::AtlassianCloud;
        let bitbucket = t.kind == idsync_model::TargetKind::BitbucketDc;
        if cloud && (has_user || has_password) {
            self.report(
                &at(if has_user { "username" } else { "password" }),
                "atlassian-cloud authenticates with the SCIM directory API key only; set `token` \
                 and remove `username`/`password`",
            );
        } else if cloud && !has_token {
            self.report(
                &at("token"),
                format!(
                    "atlassian-cloud needs `token` (the SCIM directory API key from admin.atlassian.com), \
                     inline, env:VAR, file:PATH or via {}",
                    target_env_var(&t.name, "token")
                ),
            );
        } else if bitbucket && has_token {
            // Bitbucket DC does not accept HTTP access tokens on its administrative endpoints
            // or user management, and every call idsync makes is under /rest/api/1.0/admin/:
            // https://confluence.atlassian.com/bitbucketserverkb/how-to-use-oauth2-tokens-for-administrative-endpoints-of-bitbucket-data-center-1489469945.html
            // (BSERV-10482).
            self.report(
                &at("token"),
                format!(
                    "Bitbucket Data Center refuses HTTP access tokens on the admin REST endpoints \
                     idsync needs (user and group management answer 401); remove `token` and set \
                     `username` + `password` of an account with Admin or System admin permission \
                     (or {} and {})",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                ),
            );
        } else if has_token && (has_user || has_password) {
            self.report(
                &at(if has_user { "username" } else { "password" }),
                "give either `token` or `username` + `password`, not both",
            );
        } else if !has_token && has_user != has_password {
            let missing = if has_user { "password" } else { "username" };
            self.report(
                &at(missing),
                format!("basic auth needs both `username` and `password`; `{missing}` is missing"),
            );
        } else if bitbucket && !has_user {
            self.report(
                &at("username"),
                format!(
                    "no credentials: Bitbucket needs `username` + `password` of an account with \
                     Admin or System admin permission (HTTP access tokens are refused on its \
                     admin endpoints), or {} and {}",
                    target_env_var(&t.name, "username"),
                    target_env_var(&t.name, "password")
                ),
            );
        } else if !has_token && !has_user {
            self.report(
                &at("token"),
                format!(
                    "no credentials: set `token` (a personal access token) or `username` + `password` \
                     (or {})",
                    target_env_var(&t.name, "token")
                ),
            );
        }
    }

    /// Numbers in range, and what a product needs besides credentials.
    pub(super) fn check_target_limits(&mut self, i: usize, t: &TargetConfig) {
        let at = |field: &str| target_field(i, field);
        if !(1..=MAX_CONCURRENCY).contains(&t.concurrency) {
            self.report(
                &at("concurrency"),
                format!(
                    "{} is out of range; give 1 to {MAX_CONCURRENCY} (default 4)",
                    t.concurrency
                ),
            );
        }
        if t.timeout_seconds == 0 {
            self.report(&at("timeout_seconds"), "must be at least 1");
        }
        if t.long_task_wait_seconds == 0 {
            self.report(&at("long_task_wait_seconds"), "must be at least 1");
        }
        // `contains` is false for NaN too.
        if let Some(rps) = t.max_requests_per_second
            && !(MIN_REQUESTS_PER_SECOND..=MAX_REQUESTS_PER_SECOND).contains(&rps)
        {
            self.report(
                &at("max_requests_per_second"),
                format!(
                    "{rps} is out of range; give {MIN_REQUESTS_PER_SECOND} to \
                     {MAX_REQUESTS_PER_SECOND} requests per second, or remove it for no limit"
                ),
            );
        }
        if t.kind == idsync_model::TargetKind::BitbucketDc && t.licensed_groups.is_empty() {
            self.report(
                &at("licensed_groups"),
                "Bitbucket needs at least one licensed group (default: [\"stash-users\"])",
            );
        }
    }

    /// Every custom attribute an app's rules write must be one each target it feeds keeps:
    /// Atlassian Cloud keeps a fixed set, and a name outside it would otherwise be found only
    /// when accounts are created.
    pub(super) fn check_custom_attribute_names(
        &mut self,
        i: usize,
        app: &AppConfig,
        targets: &[TargetConfig],
    ) {
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        let fed = targets
            .iter()
            .filter(|t| app.targets.is_empty() || app.targets.contains(&t.name));
        for target in fed {
            let (base, rules) = match app
                .overrides
                .get(&target.name)
                .and_then(|o| o.users.as_ref())
            {
                Some(users) => (
                    vec![
                        Seg::key("apps"),
                        Seg::Index(i),
                        Seg::key("overrides"),
                        Seg::key(&target.name),
                        Seg::key("users"),
                    ],
                    users,
                ),
                None => (
                    vec![Seg::key("apps"), Seg::Index(i), Seg::key("users")],
                    &app.users,
                ),
            };
            let idsync_model::AttributeNames::Only(accepted) = target.kind.custom_attribute_names()
            else {
                continue;
            };
            for name in rules.custom_attributes.keys() {
                if accepted.contains(&name.as_str())
                    || !reported.insert((format!("{base:?}"), name.clone()))
                {
                    continue;
                }
                let mut path = base.clone();
                path.push(Seg::key("custom_attributes"));
                path.push(Seg::key(name));
                self.report(
                    &path,
                    format!(
                        "target '{}' ({}) keeps no custom attribute named '{name}'; it keeps {}. Rename it, or give '{}' its own rules in [apps.overrides.{}.users]",
                        target.name,
                        target.kind,
                        accepted.join(", "),
                        target.name,
                        target.name
                    ),
                );
            }
        }
    }

    /// A Bitbucket target with `deprovision = "delete"` deletes where other targets deactivate:
    /// every app feeding it must allow deleting (`users.delete = true`, or its override's for
    /// that target), since "deleting is never done unless this is true".
    pub(super) fn check_bitbucket_delete(&mut self, config: &Config) {
        for (j, t) in config.targets.iter().enumerate() {
            if t.kind != idsync_model::TargetKind::BitbucketDc
                || t.deprovision != BitbucketDeprovision::Delete
            {
                continue;
            }
            for (i, app) in config.apps.iter().enumerate() {
                if !(app.targets.is_empty() || app.targets.contains(&t.name)) {
                    continue;
                }
                let over = app.overrides.get(&t.name).and_then(|o| o.users.as_ref());
                let (users, section) = match over {
                    Some(users) => (users, format!("[apps.overrides.{}.users]", t.name)),
                    None => (&app.users, "[apps.users]".to_owned()),
                };
                if users.delete {
                    continue;
                }
                self.report(
                    &[Seg::key("targets"), Seg::Index(j), Seg::key("deprovision")],
                    format!(
                        "is \"delete\", but apps[{i}] ('{}') feeds this target with `delete` false \
                         in {section}, and deleting is never done unless it is true; set \
                         `delete = true` in {section} of that app to allow deleting accounts, or \
                         use deprovision = \"remove_licensed_groups\"",
                        app.name
                    ),
                );
            }
        }
    }
}
