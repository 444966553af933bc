//! The configuration schema: one TOML file with `[[apps]]` (identity-provider connections) and
//! `[[targets]]` (Atlassian instances). Every field is documented in `docs/config.md`.
//!
//! These structs are what the file says after defaults are filled in; `crate::load` also
//! checks what serde cannot (names unique, targets known, regexes compile, required fields per
//! kind) and reports every problem with the file and line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use idsync_model::TargetKind;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::schedule::Schedule;
use crate::secret::Secret;

/// A whole config file: what `idsync` and `idsync serve` run from (see `docs/config.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the state store and other files live. Relative paths are taken from the config
    /// file's folder.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the state store is.
    #[serde(default)]
    pub store: StoreConfig,
    /// The identity-provider connections (`[[apps]]`).
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// The Atlassian instances (`[[targets]]`).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Things the loader found worth a warning but not worth refusing the file for (plain
    /// `http://` to a host other than this one), each as `FILE:LINE: field: message`. Not part
    /// of the file; commands print them.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// The `[store]` table: where idsync keeps its state.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (default: `sqlite://{data_dir}/idsync.db`).
    #[serde(default)]
    pub url: Option<String>,
}

/// Which identity provider an app reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// Microsoft Entra ID, read over Microsoft Graph with an app's client credentials.
    Entra,
}

/// One identity-provider connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Unique name, used on the command line (`--app`) and in history.
    pub name: String,
    /// Which identity provider it reads.
    pub kind: AppKind,
    /// Directory (tenant) ID: a GUID or a domain such as `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Application (client) ID of the app registration.
    pub client_id: String,
    /// The client secret's *value* (not its ID): inline, `env:VAR` or `file:PATH`.
    pub client_secret: Secret,
    /// Where tokens come from; another root for national clouds (and for graph-sim in tests).
    #[serde(default = "default_authority_url")]
    pub authority_url: Url,
    /// Microsoft Graph's root; another root for national clouds (and for graph-sim in tests).
    #[serde(default = "default_graph_url")]
    pub graph_url: Url,
    /// Which users take part.
    #[serde(default)]
    pub scope: Scope,
    /// Expand groups nested in scoped or mapped groups.
    #[serde(default = "yes")]
    pub nested_groups: bool,
    /// Extra source attributes to read beyond those the rules name (which are read anyway).
    #[serde(default)]
    pub read_attributes: Vec<String>,
    /// Names of the `[[targets]]` this app feeds; empty means all of them.
    #[serde(default)]
    pub targets: Vec<String>,
    /// How source users become target accounts.
    #[serde(default)]
    pub users: UserRules,
    /// How source groups become target group memberships.
    #[serde(default)]
    pub groups: GroupRules,
    /// When a plan is held for approval instead of applied.
    #[serde(default)]
    pub guard: GuardConfig,
    /// Per-target replacements of the `users` or `groups` rules, keyed by target name.
    #[serde(default)]
    pub overrides: BTreeMap<String, TargetOverride>,
    /// When `idsync serve` syncs this app on its own: `"30m"` or a cron expression (UTC).
    /// No schedule: only on demand (API, CLI) and at sign-in.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Sign-in sync of one user (`POST /api/v1/apps/{app}/users/{user}/sync`, `idsync sync
    /// --user`): how long it waits for the app's lock when a run holds it, before it gives up
    /// as busy. Kept short: someone is waiting to sign in.
    #[serde(default = "default_login_sync_wait")]
    pub login_sync_wait_seconds: u64,
    /// How long the service answers a repeated sign-in sync of the same user from memory
    /// instead of syncing again (a burst of sign-ins, a reverse proxy calling on every page).
    /// `0` syncs every time.
    #[serde(default = "default_login_sync_cache")]
    pub login_sync_cache_seconds: u64,
}

fn default_login_sync_wait() -> u64 {
    5
}

fn default_login_sync_cache() -> u64 {
    60
}

/// Entra's global authority, for `authority_url` when the file gives none.
pub(crate) fn default_authority_url() -> Url {
    Url::parse("https://login.microsoftonline.com").unwrap_or_else(|_| unreachable_url())
}

/// Microsoft Graph's global root, for `graph_url` when the file gives none.
pub(crate) fn default_graph_url() -> Url {
    Url::parse("https://graph.microsoft.com").unwrap_or_else(|_| unreachable_url())
}

// The two literals above always parse; this keeps the code free of unwrap().
fn unreachable_url() -> Url {
    Url::parse("http://localhost").unwrap_or_else(|_| unreachable_url())
}

fn yes() -> bool {
    true
}

/// Which source users are synced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every user in the directory.
    #[default]
    Directory,
    /// Users assigned to an enterprise application, directly or as direct members of an
    /// assigned group (Entra's own rule: assignment does not cascade to nested groups).
    EnterpriseApp {
        /// The application (client) id of the enterprise application.
        app_id: String,
        /// Also take the members of groups nested in assigned groups, however deep: further
        /// than Entra goes (those users cannot sign in to the app through it).
        #[serde(default)]
        expand_nested_groups: bool,
    },
    /// Members of these groups (display names or object ids).
    Groups {
        /// Display names or object ids; at least one.
        groups: Vec<String>,
    },
}

/// How source users become target accounts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserRules {
    /// Where the target username comes from.
    #[serde(default)]
    pub username: UsernameRule,
    /// Source attributes tried in order for the email address; the first present one wins.
    #[serde(default = "default_email_attributes")]
    pub email: Vec<String>,
    /// Source attributes tried in order for the display name.
    #[serde(default = "default_display_name_attributes")]
    pub display_name: Vec<String>,
    /// Target custom attribute name → source attribute name.
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, String>,
    /// Create accounts for source users in scope that have none.
    #[serde(default = "yes")]
    pub create: bool,
    /// Bring e-mail, display name and custom attributes of managed accounts in line.
    #[serde(default = "yes")]
    pub update: bool,
    /// Rename managed accounts whose username changed at the source.
    #[serde(default = "yes")]
    pub rename: bool,
    /// An account adopted under another username than the rules give (matched by e-mail) is
    /// renamed to the rules' username; false keeps the username it has (until the rules give
    /// another one).
    #[serde(default = "yes")]
    pub rename_adopted: bool,
    /// Deactivate managed accounts, as `on_leave` and `on_disable` say.
    #[serde(default = "yes")]
    pub deactivate: bool,
    /// Reactivate managed accounts whose user is back in scope and enabled.
    #[serde(default = "yes")]
    pub reactivate: bool,
    /// Deleting accounts is never done unless asked for here.
    #[serde(default)]
    pub delete: bool,
    /// What happens to managed accounts whose user left the scope or was deleted at the source.
    #[serde(default)]
    pub on_leave: LeaveAction,
    /// What happens to managed accounts whose user is disabled at the source.
    #[serde(default)]
    pub on_disable: LeaveAction,
    /// Also remove the managed group memberships of users who are deprovisioned.
    #[serde(default)]
    pub strip_groups_on_deprovision: bool,
    /// Jira: who takes over projects led by a user about to be deactivated or deleted.
    #[serde(default)]
    pub default_project_lead: Option<String>,
    /// Jira: who takes over components led by a user about to be deactivated or deleted.
    #[serde(default)]
    pub default_component_lead: Option<String>,
    /// How existing accounts are matched to source users the first time (adoption).
    #[serde(default = "default_adopt")]
    pub adopt_by: Vec<AdoptBy>,
}

impl Default for UserRules {
    fn default() -> Self {
        UserRules {
            username: UsernameRule::default(),
            email: default_email_attributes(),
            display_name: default_display_name_attributes(),
            custom_attributes: BTreeMap::new(),
            create: true,
            update: true,
            rename: true,
            rename_adopted: true,
            deactivate: true,
            reactivate: true,
            delete: false,
            on_leave: LeaveAction::default(),
            on_disable: LeaveAction::default(),
            strip_groups_on_deprovision: false,
            default_project_lead: None,
            default_component_lead: None,
            adopt_by: default_adopt(),
        }
    }
}

fn default_email_attributes() -> Vec<String> {
    vec!["mail".into(), "userPrincipalName".into()]
}

fn default_display_name_attributes() -> Vec<String> {
    vec!["displayName".into()]
}

fn default_adopt() -> Vec<AdoptBy> {
    vec![AdoptBy::Username, AdoptBy::Email]
}

/// One way of matching an existing target account to a source user (adoption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptBy {
    /// An account holding the username the rules give.
    Username,
    /// An account with the source user's e-mail address.
    Email,
}

/// What happens to a managed account whose user left the scope or was disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveAction {
    /// Deactivate the account (Bitbucket: per the target's deprovisioning policy).
    #[default]
    Deactivate,
    /// Delete the account (needs `delete = true`).
    Delete,
    /// Leave the account as it is.
    Keep,
}

/// Where the target username comes from, and how it is cleaned up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsernameRule {
    /// Source attribute: `userPrincipalName`, `mail`, `mailNickname`, `employeeId`,
    /// `onPremisesSamAccountName`, `onPremisesExtensionAttributes.extensionAttributeN`,
    /// `extension_{appId}_{name}`, ...
    #[serde(default = "default_username_attribute")]
    pub attribute: String,
    /// Tried in order when `attribute` is empty for a user.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Lower-case the result (applied last).
    #[serde(default)]
    pub lowercase: bool,
    /// Drop everything from the first `@`.
    #[serde(default)]
    pub strip_domain: bool,
    /// Regex replacements applied in order, after `strip_domain` and before `lowercase`.
    #[serde(default)]
    pub replace: Vec<RegexReplace>,
}

impl Default for UsernameRule {
    fn default() -> Self {
        UsernameRule {
            attribute: default_username_attribute(),
            fallback: Vec::new(),
            lowercase: false,
            strip_domain: false,
            replace: Vec::new(),
        }
    }
}

fn default_username_attribute() -> String {
    "userPrincipalName".into()
}

/// `pattern` is a regular expression (Rust `regex` syntax); `with` may use `$1`, `${name}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegexReplace {
    /// What to find (checked when loading).
    pub pattern: String,
    /// What to put in its place.
    pub with: String,
}

/// How source groups become target group memberships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRules {
    /// Groups every account idsync creates is put in.
    #[serde(default)]
    pub default_groups_new_users: Vec<String>,
    /// Groups every managed account is kept in.
    #[serde(default)]
    pub default_groups_all_users: Vec<String>,
    /// Which source groups become target groups.
    #[serde(default)]
    pub mapping: MappingMode,
    /// `mapping = "manual"`: source group → target groups.
    #[serde(default)]
    pub manual: Vec<ManualMapping>,
    /// `mapping = "on_the_fly"`: how source group names become target group names.
    #[serde(default)]
    pub on_the_fly: OnTheFly,
    /// Create the mapped target groups even when no synced user is in them.
    #[serde(default)]
    pub import_groups: bool,
    /// What to do with memberships of managed users that idsync did not create.
    #[serde(default)]
    pub memberships: MembershipPolicy,
}

/// Which source groups become target groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingMode {
    /// No group sync beyond the default groups.
    #[default]
    None,
    /// The groups the `manual` list names, each to its target groups.
    Manual,
    /// Every source group `on_the_fly` lets through, to a target group of its (renamed) name.
    OnTheFly,
}

/// One entry of `mapping = "manual"`: a source group and the target groups it feeds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManualMapping {
    /// Source group display name or object id.
    pub source: String,
    /// Target group names.
    pub targets: Vec<String>,
}

/// For `mapping = "on_the_fly"`: which source groups are taken and what their target groups
/// are called.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnTheFly {
    /// Create a target group that does not exist yet; otherwise skip that group.
    #[serde(default = "yes")]
    pub create_missing: bool,
    /// Only source groups whose name matches one of these (all when empty).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never source groups whose name matches one of these.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Regex renames applied in order to the source name to give the target name.
    #[serde(default)]
    pub rename: Vec<RegexReplace>,
}

impl Default for OnTheFly {
    fn default() -> Self {
        OnTheFly {
            create_missing: true,
            include: Vec::new(),
            exclude: Vec::new(),
            rename: Vec::new(),
        }
    }
}

/// Which memberships of managed accounts idsync may remove (see `docs/config.md`, "Keep and
/// enforce").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipPolicy {
    /// Remove only memberships idsync itself added; leave the rest.
    #[default]
    Keep,
    /// In groups idsync maps, a managed user is a member exactly when the source says so.
    Enforce,
}

/// When a plan is held for approval instead of applied.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Hold a plan that deactivates or deletes more than this percentage of managed accounts.
    #[serde(default = "default_max_percent")]
    pub max_deprovision_percent: f64,
    /// Hold a plan that deactivates or deletes more than this many accounts.
    #[serde(default = "default_max_count")]
    pub max_deprovision_count: u64,
    /// Hold a plan that removes more than this percentage of the memberships idsync manages.
    #[serde(default = "default_max_membership_percent")]
    pub max_membership_removal_percent: f64,
    /// Hold a plan that removes more than this many memberships.
    #[serde(default = "default_max_membership_count")]
    pub max_membership_removal_count: u64,
    /// How long a held run may be approved, and an approval used, after the run was held.
    #[serde(default = "default_approval_expires_minutes")]
    pub approval_expires_minutes: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_deprovision_percent: default_max_percent(),
            max_deprovision_count: default_max_count(),
            max_membership_removal_percent: default_max_membership_percent(),
            max_membership_removal_count: default_max_membership_count(),
            approval_expires_minutes: default_approval_expires_minutes(),
        }
    }
}

// Memberships change more than accounts (people move between teams every day), so the
// limits are wider than for deprovisions; a source incident or a dropped default group
// still removes far more at once.
fn default_max_membership_percent() -> f64 {
    10.0
}

fn default_max_membership_count() -> u64 {
    500
}

fn default_approval_expires_minutes() -> u64 {
    24 * 60
}

fn default_max_percent() -> f64 {
    5.0
}

fn default_max_count() -> u64 {
    50
}

/// Replaces an app's `users` and/or `groups` rules for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOverride {
    /// Replaces the app's `users` rules, whole, for this target.
    #[serde(default)]
    pub users: Option<UserRules>,
    /// Replaces the app's `groups` rules, whole, for this target.
    #[serde(default)]
    pub groups: Option<GroupRules>,
}

/// One Atlassian instance.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name, used in `apps.targets`, `overrides`, environment variables and history.
    pub name: String,
    /// Which product it is, which decides the API idsync speaks to it.
    pub kind: TargetKind,
    /// Base URL including any context path: `https://jira.example.com`,
    /// `https://example.com/confluence`, `https://api.atlassian.com/scim/directory/{id}`.
    pub base_url: Url,
    /// Personal access token (Jira, Confluence) / SCIM directory API key (Bearer). Not for
    /// bitbucket-dc, which refuses HTTP access tokens on its admin endpoints.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Basic auth, instead of a token (not for atlassian-cloud; the only way for bitbucket-dc).
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password, with `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Operations in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per second at most (client side); none when absent.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Incremental runs plan from what idsync knows of the target (its last full read, kept up
    /// to date with every change idsync made since) instead of reading it all again. This is
    /// how old that knowledge may grow before a run reads the target in full, which also picks
    /// up changes made in the product by hand. 0 reads it in full on every run.
    #[serde(default = "default_full_read_every")]
    pub full_read_every_minutes: u64,
    /// Confluence: how long to wait for a user deletion (a long task on the server) to finish
    /// before it is reported as still running; the next run then reads the target in full.
    #[serde(default = "default_long_task_wait")]
    pub long_task_wait_seconds: u64,
    /// Bitbucket: how accounts are deprovisioned, since Bitbucket cannot deactivate.
    #[serde(default)]
    pub deprovision: BitbucketDeprovision,
    /// Bitbucket: the groups that grant a licence (removed on deprovisioning).
    #[serde(default = "default_licensed_groups")]
    pub licensed_groups: Vec<String>,
}

impl TargetConfig {
    /// The target `name` of `kind` at `base_url`, without credentials, and with every other
    /// setting at the default a configuration file gives it when the key is left out.
    pub fn new(name: impl Into<String>, kind: TargetKind, base_url: Url) -> Self {
        TargetConfig {
            name: name.into(),
            kind,
            base_url,
            token: None,
            username: None,
            password: None,
            concurrency: default_concurrency(),
            max_requests_per_second: None,
            timeout_seconds: default_timeout(),
            full_read_every_minutes: default_full_read_every(),
            long_task_wait_seconds: default_long_task_wait(),
            deprovision: BitbucketDeprovision::default(),
            licensed_groups: default_licensed_groups(),
        }
    }
}

fn default_concurrency() -> usize {
    4
}

/// `concurrency` may be 1 to this. Each unit is a request in flight against one server; more
/// than a few dozen only gets a product to throttle or fall over, and the bound keeps the
/// value far below what a semaphore can hold (an absurd value used to panic).
pub const MAX_CONCURRENCY: usize = 256;

/// The lowest `max_requests_per_second`: one request every 1000 s. Far lower rates make the
/// rate limiter's period overflow (a panic); no sync can run that slowly anyway.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.001;

/// The highest `max_requests_per_second`: beyond this the limiter's period rounds towards
/// zero nanoseconds, and a limit that high is no limit; leave the field out instead.
pub const MAX_REQUESTS_PER_SECOND: f64 = 10_000.0;

fn default_full_read_every() -> u64 {
    24 * 60
}

fn default_timeout() -> u64 {
    30
}

fn default_long_task_wait() -> u64 {
    300
}

fn default_licensed_groups() -> Vec<String> {
    vec!["stash-users".into()]
}

/// How a Bitbucket target deprovisions an account, since Bitbucket cannot deactivate one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BitbucketDeprovision {
    /// Remove the user from `licensed_groups`.
    #[default]
    RemoveLicensedGroups,
    /// Delete the user.
    Delete,
}

impl Config {
    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// `store.url`, or the default SQLite file in `data_dir`.
    pub fn store_url(&self) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("idsync.db").display()))
    }
}

impl AppConfig {
    /// The user rules in force for `target`: its override's `users` table when it has one,
    /// else the app's own; with where that table is, relative to the app (`users`,
    /// `overrides.jira.users`), to name its fields.
    pub fn user_rules_for(&self, target: &str) -> (&UserRules, String) {
        match self.overrides.get(target).and_then(|o| o.users.as_ref()) {
            Some(users) => (users, format!("overrides.{target}.users")),
            None => (&self.users, "users".to_owned()),
        }
    }

    /// Every source attribute this app's rules name (the app's own and every override's), plus
    /// `read_attributes`: what a source read must `$select`.
    pub fn source_attributes(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut add_rules = |rules: &UserRules| {
            out.insert(rules.username.attribute.clone());
            out.extend(rules.username.fallback.iter().cloned());
            out.extend(rules.email.iter().cloned());
            out.extend(rules.display_name.iter().cloned());
            out.extend(rules.custom_attributes.values().cloned());
        };
        add_rules(&self.users);
        for o in self.overrides.values() {
            if let Some(users) = &o.users {
                add_rules(users);
            }
        }
        out.extend(self.read_attributes.iter().cloned());
        out
    }

    /// The same attributes as [`AppConfig::source_attributes`], each with the fields of this
    /// app that name it, relative to the `[[apps]]` entry (`users.username.attribute`,
    /// `overrides.jira.users.custom_attributes.department`, `read_attributes`, ...): what an
    /// error about an attribute the source cannot read points the operator at.
    pub fn source_attribute_fields(&self) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let mut add = |attribute: &str, field: String| {
            out.entry(attribute.to_owned()).or_default().insert(field);
        };
        let mut add_rules = |base: &str, rules: &UserRules| {
            add(
                &rules.username.attribute,
                format!("{base}.username.attribute"),
            );
            for a in &rules.username.fallback {
                add(a, format!("{base}.username.fallback"));
            }
            for a in &rules.email {
                add(a, format!("{base}.email"));
            }
            for a in &rules.display_name {
                add(a, format!("{base}.display_name"));
            }
            for (name, a) in &rules.custom_attributes {
                add(a, format!("{base}.custom_attributes.{name}"));
            }
        };
        add_rules("users", &self.users);
        for (target, o) in &self.overrides {
            if let Some(users) = &o.users {
                add_rules(&format!("overrides.{target}.users"), users);
            }
        }
        for a in &self.read_attributes {
            add(a, "read_attributes".to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_target_config_has_the_defaults_of_a_file_that_leaves_them_out() {
        let read: TargetConfig = toml::from_str(
            "name = \"jira\"\nkind = \"jira-dc\"\nbase_url = \"https://jira.example.com\"",
        )
        .expect("a minimal target entry");
        let url = "https://jira.example.com".parse().expect("url");
        let new = TargetConfig::new("jira", TargetKind::JiraDc, url);
        assert_eq!(format!("{new:?}"), format!("{read:?}"));
    }
}
