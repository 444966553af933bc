//! Checks of one `[[apps]]` entry: Entra credentials and URLs, scope, overrides, guard.

use std::collections::{BTreeMap, BTreeSet};

use idsync_model::redact::redact_url;

use super::{Checker, app_field};
use crate::env::{app_env_var, env_name};
use crate::locate::Seg;
use crate::schema::{AppConfig, Scope};
use crate::validate::{attribute_hint, is_attribute_name, is_dns_name, is_guid, unknown_target};

/// The longest a sign-in sync may wait for its app's lock (`login_sync_wait_seconds`).
pub const MAX_LOGIN_SYNC_WAIT_SECONDS: u64 = 60;

impl Checker<'_> {
    pub(super) fn check_app(&mut self, i: usize, app: &AppConfig, targets: &BTreeSet<&str>) {
        let at = |rest: &[&str]| app_field(i, rest);
        if !is_guid(&app.tenant_id) && !is_dns_name(&app.tenant_id) {
            self.report(
                &at(&["tenant_id"]),
                format!(
                    "'{}' is neither a GUID nor a domain name; use the Directory (tenant) ID from the \
                     app registration's Overview page (e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47) \
                     or a verified domain (contoso.onmicrosoft.com)",
                    app.tenant_id
                ),
            );
        }
        if !is_guid(&app.client_id) {
            self.report(
                &at(&["client_id"]),
                format!(
                    "'{}' is not a GUID; use the Application (client) ID from the app registration's \
                     Overview page",
                    app.client_id
                ),
            );
        }
        if app.client_secret.expose().is_empty() {
            self.report(
                &at(&["client_secret"]),
                format!(
                    "is empty; give the client secret's Value (inline, env:VAR, file:PATH or via {})",
                    app_env_var(&app.name, "client_secret")
                ),
            );
        }
        for (field, url) in [
            ("authority_url", &app.authority_url),
            ("graph_url", &app.graph_url),
        ] {
            let shown = redact_url(url.as_str());
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                self.report(&at(&[field]), format!("'{shown}' is not an http(s) URL"));
                continue;
            }
            let instead = format!(
                "give the app's secret as `client_secret` (or {})",
                app_env_var(&app.name, "client_secret")
            );
            if !self.refuse_credentials_in(&at(&[field]), url, &instead) {
                continue;
            }
            if url.query().is_some() || !url.path().trim_end_matches('/').is_empty() {
                self.report(
                    &at(&[field]),
                    format!(
                        "'{shown}' has a path or query; give the root only, e.g. {}",
                        if field == "graph_url" {
                            "https://graph.microsoft.com (or https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)"
                        } else {
                            "https://login.microsoftonline.com (or https://login.microsoftonline.us, https://login.chinacloudapi.cn)"
                        }
                    ),
                );
            } else {
                self.warn_plain_http(&at(&[field]), url);
            }
        }
        self.check_scope(i, app);
        // Someone is waiting to sign in while a sign-in sync waits for the app's lock: a wait
        // of minutes would hang their sign-in behind a whole run instead of failing fast.
        if app.login_sync_wait_seconds > MAX_LOGIN_SYNC_WAIT_SECONDS {
            self.report(
                &at(&["login_sync_wait_seconds"]),
                format!(
                    "{} is too long to keep a sign-in waiting; give at most {MAX_LOGIN_SYNC_WAIT_SECONDS} \
                     (0 gives up at once when a run holds the app)",
                    app.login_sync_wait_seconds
                ),
            );
        }
        for (j, name) in app.read_attributes.iter().enumerate() {
            if !is_attribute_name(name) {
                let mut p = at(&["read_attributes"]);
                p.push(Seg::Index(j));
                self.report(&p, attribute_hint(name));
            }
        }
        for (j, name) in app.targets.iter().enumerate() {
            if !targets.contains(name.as_str()) {
                let mut p = at(&["targets"]);
                p.push(Seg::Index(j));
                self.report(&p, unknown_target(name, targets));
            }
        }
        self.check_overrides(i, app, targets);
        self.check_user_rules(&at(&["users"]), &app.users);
        self.check_group_rules(&at(&["groups"]), &app.groups);
        self.check_guard(i, app);
    }

    /// The scope names what it needs in a usable form (the tenant's answer comes later).
    pub(super) fn check_scope(&mut self, i: usize, app: &AppConfig) {
        let at = |rest: &[&str]| app_field(i, rest);
        match &app.scope {
            Scope::Directory => {}
            Scope::EnterpriseApp { app_id, .. } => {
                if !is_guid(app_id) {
                    self.report(
                        &at(&["scope", "app_id"]),
                        format!(
                            "'{app_id}' is not a GUID; use the enterprise application's Application ID \
                             (Enterprise applications → the app → Properties)"
                        ),
                    );
                }
            }
            Scope::Groups { groups } => {
                if groups.is_empty() {
                    self.report(
                        &at(&["scope", "groups"]),
                        "names no group; list group display names or object ids, e.g. \
                         groups = [\"Jira Users\"], or use kind = \"directory\"",
                    );
                }
                for (j, g) in groups.iter().enumerate() {
                    if g.trim().is_empty() {
                        let mut p = at(&["scope", "groups"]);
                        p.push(Seg::Index(j));
                        self.report(&p, "is empty; give a group display name or object id");
                    }
                }
            }
        }
    }

    /// Overrides name targets this app feeds; their rules are checked as the app's are.
    pub(super) fn check_overrides(&mut self, i: usize, app: &AppConfig, targets: &BTreeSet<&str>) {
        let at = |rest: &[&str]| app_field(i, rest);
        let fed: BTreeSet<&str> = if app.targets.is_empty() {
            targets.clone()
        } else {
            app.targets.iter().map(String::as_str).collect()
        };
        for (key, o) in &app.overrides {
            let p = at(&["overrides", key]);
            if !targets.contains(key.as_str()) {
                self.report(&p, unknown_target(key, targets));
            } else if !fed.contains(key.as_str()) {
                self.report(
                    &p,
                    format!(
                        "target '{key}' is not among this app's `targets` ({}); an override for it \
                         would never apply",
                        app.targets.join(", ")
                    ),
                );
            }
            if let Some(users) = &o.users {
                let mut up = p.clone();
                up.push(Seg::key("users"));
                self.check_user_rules(&up, users);
            }
            if let Some(groups) = &o.groups {
                let mut gp = p.clone();
                gp.push(Seg::key("groups"));
                self.check_group_rules(&gp, groups);
            }
        }
    }

    /// The guard's limits are percentages and its approvals expire within a month.
    pub(super) fn check_guard(&mut self, i: usize, app: &AppConfig) {
        let at = |rest: &[&str]| app_field(i, rest);
        let guard = &app.guard;
        if !(guard.max_deprovision_percent.is_finite()
            && (0.0..=100.0).contains(&guard.max_deprovision_percent))
        {
            self.report(
                &at(&["guard", "max_deprovision_percent"]),
                format!(
                    "{} is not a percentage; give a number from 0 to 100 (default 5)",
                    guard.max_deprovision_percent
                ),
            );
        }
        if !(guard.max_membership_removal_percent.is_finite()
            && (0.0..=100.0).contains(&guard.max_membership_removal_percent))
        {
            self.report(
                &at(&["guard", "max_membership_removal_percent"]),
                format!(
                    "{} is not a percentage; give a number from 0 to 100 (default 10)",
                    guard.max_membership_removal_percent
                ),
            );
        }
        // A held run must stay approvable for a while, and an approval must not outlive the
        // situation it was given for by weeks.
        const MAX_APPROVAL_MINUTES: u64 = 30 * 24 * 60;
        if !(1..=MAX_APPROVAL_MINUTES).contains(&guard.approval_expires_minutes) {
            self.report(
                &at(&["guard", "approval_expires_minutes"]),
                format!(
                    "{} is out of range; give a number of minutes from 1 to {MAX_APPROVAL_MINUTES} (30 days; default 1440, a day)",
                    guard.approval_expires_minutes
                ),
            );
        }
    }

    pub(super) fn check_unique_names(&mut self, list: &str, names: Vec<&str>) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut env_seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let path = [Seg::key(list), Seg::Index(i), Seg::key("name")];
            if name.trim().is_empty() {
                self.report(&path, "must not be empty");
                continue;
            }
            if let Some(first) = seen.get(name) {
                self.report(
                    &path,
                    format!(
                        "'{name}' is already the name of {list}[{first}]; names must be unique"
                    ),
                );
                continue;
            }
            seen.insert(name, i);
            let env = env_name(name);
            if let Some(first) = env_seen.get(&env) {
                self.report(
                    &path,
                    format!(
                        "'{name}' and the name of {list}[{first}] both become {env} in environment \
                         variable names; rename one of them"
                    ),
                );
            }
            env_seen.insert(env, i);
        }
    }
}
