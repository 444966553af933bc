//! The target side: what an Atlassian product holds, what it can do, and the `Target` trait.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::operation::Operation;

/// Which product and edition a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// Jira Data Center, through its REST API v2.
    JiraDc,
    /// Confluence Data Center.
    ConfluenceDc,
    /// Bitbucket Data Center.
    BitbucketDc,
    /// An Atlassian Cloud organisation, through user provisioning (a SCIM directory).
    AtlassianCloud,
}

impl TargetKind {
    /// As in configuration (`kind = "jira-dc"`) and output.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::JiraDc => "jira-dc",
            TargetKind::ConfluenceDc => "confluence-dc",
            TargetKind::BitbucketDc => "bitbucket-dc",
            TargetKind::AtlassianCloud => "atlassian-cloud",
        }
    }
}

/// The custom attributes Atlassian Cloud's SCIM directory keeps, in the enterprise extension
/// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`): Atlassian's user model
/// documents `organization` and `department` there and nothing else (other enterprise
/// attributes such as `employeeNumber` or `costCenter` would not be kept, and would be set
/// again on every run).
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
pub const CLOUD_ENTERPRISE_ATTRIBUTES: [&str; 2] = ["department", "organization"];

/// The custom attributes Atlassian Cloud's SCIM directory keeps as simple core User attributes
/// (the same documented model; `department` and `organization` go to the extension above).
pub const CLOUD_CORE_ATTRIBUTES: [&str; 4] = ["title", "nickName", "preferredLanguage", "timezone"];

/// Which custom attribute names a kind of target keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeNames {
    /// Any name (Jira user properties).
    Any,
    /// These names only (Atlassian Cloud's SCIM attributes).
    Only(&'static [&'static str]),
    /// None: the product has no custom user attributes, and they are not sent.
    Unsupported,
}

impl AttributeNames {
    /// Whether an attribute of that name is kept.
    pub fn accepts(self, name: &str) -> bool {
        match self {
            AttributeNames::Any => true,
            AttributeNames::Only(names) => names.contains(&name),
            AttributeNames::Unsupported => false,
        }
    }
}

impl TargetKind {
    /// The custom attribute names this kind of target keeps.
    pub fn custom_attribute_names(self) -> AttributeNames {
        const CLOUD: [&str; 6] = [
            CLOUD_ENTERPRISE_ATTRIBUTES[0],
            CLOUD_ENTERPRISE_ATTRIBUTES[1],
            CLOUD_CORE_ATTRIBUTES[0],
            CLOUD_CORE_ATTRIBUTES[1],
            CLOUD_CORE_ATTRIBUTES[2],
            CLOUD_CORE_ATTRIBUTES[3],
        ];
        match self {
            TargetKind::JiraDc => AttributeNames::Any,
            TargetKind::AtlassianCloud => AttributeNames::Only(&CLOUD),
            TargetKind::ConfluenceDc | TargetKind::BitbucketDc => AttributeNames::Unsupported,
        }
    }
}

impl TargetKind {
    /// Whether this kind of target takes only lower-case usernames: idsync then lower-cases
    /// the usernames it creates there, whatever `users.username.lowercase` says. Confluence
    /// DC's `POST /rest/api/admin/user` refuses a `userName` with upper-case characters
    /// (https://developer.atlassian.com/server/confluence/rest/v940/api-group-admin-user/).
    pub fn lowercase_usernames(self) -> bool {
        self == TargetKind::ConfluenceDc
    }

    /// Why this kind of target would refuse `username` for a new account, if it would (checked
    /// after any lower-casing): Confluence DC refuses whitespace, any of `\ , + < > ' "` and
    /// "anonymous" (same page as [`TargetKind::lowercase_usernames`]).
    pub fn username_refusal(self, username: &str) -> Option<String> {
        if self != TargetKind::ConfluenceDc {
            return None;
        }
        if username.chars().any(char::is_whitespace) {
            return Some(
                "holds whitespace, which Confluence does not allow in usernames".to_owned(),
            );
        }
        if let Some(c) = username.chars().find(|c| "\\,+<>'\"".contains(*c)) {
            return Some(format!(
                "holds the character `{c}`, which Confluence does not allow in usernames (nor any \
                 of \\ , + < > ' \")"
            ));
        }
        if username.eq_ignore_ascii_case("anonymous") {
            return Some("is \"anonymous\", which Confluence keeps for itself".to_owned());
        }
        if username.chars().any(char::is_uppercase) {
            return Some("holds upper-case letters, which Confluence does not allow".to_owned());
        }
        None
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a target takes access away from a user, since not every product can deactivate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Deprovisioning {
    /// The product has a real deactivate/reactivate (Jira, Confluence, SCIM `active`).
    Deactivate,
    /// Bitbucket has no deactivation: a user is "inactive" when they hold none of the groups
    /// that grant a licence; deactivating removes those, reactivating adds `reactivate_group`.
    RemoveLicensedGroups {
        /// The groups whose membership grants a licence.
        groups: BTreeSet<String>,
        /// The group a reactivated user is added to.
        reactivate_group: String,
    },
    /// Deprovisioning deletes the account.
    Delete,
}

/// What a target can and cannot do, so that the planner can plan around what a product lacks
/// and say so in the plan instead of failing at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Usernames can be changed; without it, a renamed source user's account keeps its name.
    pub rename_user: bool,
    /// E-mail addresses can be changed.
    pub update_email: bool,
    /// The product's API reports users' e-mail addresses (Confluence's does not).
    pub reads_email: bool,
    /// Display names can be changed.
    pub update_display_name: bool,
    /// How access is taken away.
    pub deprovisioning: Deprovisioning,
    /// Accounts can be deleted.
    pub delete_user: bool,
    /// Users have custom attributes idsync can set (see [`TargetKind::custom_attribute_names`]).
    pub custom_attributes: bool,
    /// Groups can be deleted.
    pub delete_group: bool,
    /// Adding many users to one group takes one request.
    pub bulk_membership: bool,
    /// Projects and components have leads that block deactivation (Jira).
    pub leads: bool,
    /// Operations this product, at the version it runs, has no REST resource for, each with
    /// why (naming the version it needs): planned as a warning, never sent. Filled once the
    /// target's version is known (see [`Target::discover`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable: BTreeMap<crate::operation::OperationKind, String>,
    /// An account cannot be created without an e-mail address (Atlassian Cloud's SCIM
    /// directory requires a primary one), so the planner leaves out, with a warning naming
    /// the user, a creation whose source user has none. Absent in older stored plans: false.
    #[serde(default)]
    pub requires_email: bool,
}

impl Capabilities {
    /// A target that can do all idsync asks of one and demands nothing more: renames, changes
    /// and reports e-mail addresses and display names, deactivates, deletes accounts and groups,
    /// has custom attributes, adds many members at once and has leads; nothing is unavailable
    /// and no e-mail address is required. Targets and tests state only where they differ:
    /// `Capabilities { leads: false, ..Capabilities::FULL }`.
    pub const FULL: Capabilities = Capabilities {
        rename_user: true,
        update_email: true,
        reads_email: true,
        update_display_name: true,
        deprovisioning: Deprovisioning::Deactivate,
        delete_user: true,
        custom_attributes: true,
        delete_group: true,
        bulk_membership: true,
        leads: true,
        unavailable: BTreeMap::new(),
        requires_email: false,
    };
}

/// A product version, as `major.minor.patch` (missing parts are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Reads the leading numbers of a version text: `"9.12.3"`, `"8.5"`, `"10.0.0-m12"`.
    /// `None` when it does not start with a number.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version(major, minor, patch))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a target says about itself: which product, and at which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// `Jira`, `Confluence`, `Bitbucket`, `Atlassian Cloud`.
    pub product: String,
    /// `None` where the product has no version to report (the cloud) or did not say.
    pub version: Option<Version>,
}

impl std::fmt::Display for ProductInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{} {v}", self.product),
            None => write!(f, "{}", self.product),
        }
    }
}

/// A step of [`Target::probe`], in the order they run: each runs only once those before it
/// passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStep {
    /// The product answers at `base_url` (network, TLS, the right product and context path).
    Reachable,
    /// It accepts the configured credentials.
    Credentials,
    /// The account behind them has the administrator rights idsync needs there.
    AdminRights,
}

impl ProbeStep {
    /// Every step, in the order they run.
    pub const ALL: [ProbeStep; 3] = [
        ProbeStep::Reachable,
        ProbeStep::Credentials,
        ProbeStep::AdminRights,
    ];

    /// `reachable`, `credentials`, `admin_rights`, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStep::Reachable => "reachable",
            ProbeStep::Credentials => "credentials",
            ProbeStep::AdminRights => "admin_rights",
        }
    }
}

/// Why a probe stopped, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailure {
    /// The step that failed.
    pub step: ProbeStep,
    /// What the target answered.
    pub error: TargetError,
    /// The fix, in a sentence an administrator can act on.
    pub hint: String,
}

/// How a probe settled the administrator rights, once the credentials were accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum AdminRights {
    /// Confirmed: how (the request that needs them and was answered).
    Confirmed(String),
    /// Could not be told from outside, and why; not a failure.
    NotVerified(String),
}

/// The seats of one licence: a Jira application role, Bitbucket's licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceSeats {
    /// The licence's name, e.g. `Jira Software`.
    pub licence: String,
    /// Seats in all; `None` when unlimited.
    pub total: Option<u64>,
    /// Seats taken, where the product says.
    pub used: Option<u64>,
    /// Seats left; `None` when unlimited or not said.
    pub remaining: Option<u64>,
}

/// What a target says about its licence seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "licences", rename_all = "snake_case")]
pub enum Seats {
    /// Not read: the probe stopped before.
    NotRead,
    /// The product has no documented REST resource that says.
    NotExposed,
    /// Per licence the product holds (none: no licence is installed).
    Licences(Vec<LicenceSeats>),
}

/// What [`Target::probe`] found out about a target without changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetProbe {
    /// Product and version, once read ([`Target::discover`]).
    pub product: Option<ProductInfo>,
    /// The account the credentials belong to, where the product says.
    pub account: Option<String>,
    /// Set once the credentials were accepted and the rights looked at.
    pub admin: Option<AdminRights>,
    /// The licence seats, where they could be read.
    pub seats: Seats,
    /// What idsync will not do on this target at the version found (the capabilities'
    /// `unavailable`), each with why. Not a failure.
    pub not_synced: Vec<String>,
    /// The step that failed; `None` when every step passed.
    pub failure: Option<ProbeFailure>,
}

impl Default for TargetProbe {
    fn default() -> Self {
        TargetProbe {
            product: None,
            account: None,
            admin: None,
            seats: Seats::NotRead,
            not_synced: Vec::new(),
            failure: None,
        }
    }
}

impl TargetProbe {
    /// Whether every step passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// Whether `step` passed (`Some(true)`), failed (`Some(false)`), or was not reached.
    pub fn passed(&self, step: ProbeStep) -> Option<bool> {
        match &self.failure {
            Some(f) if f.step == step => Some(false),
            Some(f) if f.step < step => None,
            _ if step == ProbeStep::AdminRights && self.admin.is_none() => None,
            _ => Some(true),
        }
    }

    /// Stops the probe at `step`.
    pub fn failed(mut self, step: ProbeStep, error: TargetError, hint: impl Into<String>) -> Self {
        self.failure = Some(ProbeFailure {
            step,
            error,
            hint: hint.into(),
        });
        self
    }
}

/// One account as a target holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    /// The stable account key: Jira user key, Confluence userKey, Bitbucket user id, SCIM id.
    pub key: String,
    /// The name it signs in with, and the one operations address it by.
    pub username: String,
    /// E-mail address, where the product reports it.
    pub email: Option<String>,
    /// Display name, where the product has one.
    pub display_name: Option<String>,
    /// `false` when deactivated (or, in Bitbucket, in none of the licensed groups).
    pub active: bool,
    /// Custom attributes (Jira user properties, SCIM enterprise attributes), only those the
    /// target was asked to manage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// SCIM `externalId`, where the target keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// What a Jira [`Lead`] leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadKind {
    /// A project, named by its key.
    Project,
    /// A component, named by its id.
    Component,
}

/// A Jira project or component and who leads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    /// Project or component.
    pub kind: LeadKind,
    /// Project key or component id.
    pub id: String,
    /// The project's or component's name, for messages.
    pub name: String,
    /// Username of the lead.
    pub lead: String,
}

/// Everything the planner needs to know about a target, read through its API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualState {
    /// Every account, active or not.
    pub users: Vec<TargetUser>,
    /// Every group, by name.
    pub groups: BTreeSet<String>,
    /// Group name → account keys of its direct members.
    pub memberships: BTreeMap<String, BTreeSet<String>>,
    /// Projects and components with a lead (Jira only; empty elsewhere).
    pub leads: Vec<Lead>,
}

/// Changes to a user's details; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChanges {
    /// The new e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The new display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl UserChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.display_name.is_none()
    }
}

/// What applying one operation produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Applied as asked.
    Done,
    /// A user was created (or an existing one adopted): its account key.
    UserKey(String),
    /// Asked to create a user, the target already had an account by that name, which was
    /// adopted: its key.
    Adopted(String),
    /// A user was created, but the product's answer does not say its key (Bitbucket's create
    /// call answers 204), and what remains of the creation is done for all such users at once,
    /// through [`Target::complete_creations`], instead of a few requests each.
    CreatedWithoutKey,
    /// Nothing had to change: the target already was as asked (e.g. already a member).
    AlreadyDone,
}

/// Why a target operation failed, in words an admin can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetErrorKind {
    /// Wrong token or password.
    Unauthorized,
    /// The account lacks a permission.
    Forbidden,
    /// No licence seat left.
    LicenceLimit,
    /// Users or groups come from a read-only directory.
    ReadOnlyDirectory,
    /// The user or group is not there.
    NotFound,
    /// The user, group or membership already exists (or conflicts with one that does).
    Conflict,
    /// The target refused the request as invalid.
    Rejected,
    /// Rate limited, and retries ran out.
    RateLimited,
    /// A network error, timeout or 5xx that retries did not cure.
    Unavailable,
    /// The response could not be understood.
    MalformedResponse,
    /// The operation is not something this product can do.
    Unsupported,
}

/// An operation or a read that failed on one target: which, why, and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{target}: {message}")]
pub struct TargetError {
    /// What kind of failure, which decides whether it is retried and how it is shown.
    pub kind: TargetErrorKind,
    /// The target's configured name.
    pub target: String,
    /// What failed and what to do about it.
    pub message: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
}

impl TargetError {
    /// Errors that a later retry may cure (the executor retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            TargetErrorKind::RateLimited | TargetErrorKind::Unavailable
        )
    }
}

/// One Atlassian instance as the sync engine drives it.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// The configured name (e.g. `jira`), used in plans and history.
    fn name(&self) -> &str;

    /// Which product and edition, fixed by configuration.
    fn kind(&self) -> TargetKind;

    /// What this target can do; after [`Target::discover`], at the version found.
    fn capabilities(&self) -> &Capabilities;

    /// Reads every user, group, membership (and, where the product has them, lead) in full,
    /// following the product's paging to the end. `attributes` names the custom attributes to
    /// read for each user. Any failure fails the whole read: a partial state must never be
    /// planned against.
    async fn read_state(&self, attributes: &[String]) -> Result<ActualState, TargetError>;

    /// Reads the product and version once per run, and from then on reports the
    /// [`Capabilities`] of that version (what an older version has no resource for is listed
    /// in `unavailable`). Before it is called, the capabilities are those of the newest
    /// version.
    async fn discover(&self) -> Result<ProductInfo, TargetError>;

    /// Finds out, reading only, whether idsync can work with this target: whether it answers,
    /// accepts the credentials and lets their account administer users and groups; which
    /// product and version it runs (as [`Target::discover`], whose capabilities it leaves in
    /// place) and what that version cannot do; and the licence seats left, where the product
    /// says. A failure is part of the answer, at its step, so that what was learned before it
    /// is still shown.
    ///
    /// This default reads the version only; the products' own probes go further.
    async fn probe(&self) -> TargetProbe {
        let probe = TargetProbe {
            seats: Seats::NotExposed,
            ..TargetProbe::default()
        };
        match self.discover().await {
            Ok(info) => TargetProbe {
                product: Some(info),
                admin: Some(AdminRights::NotVerified(
                    "this target has no check of its own".to_owned(),
                )),
                not_synced: self.capabilities().unavailable.values().cloned().collect(),
                ..probe
            },
            Err(error) => {
                let step = match error.kind {
                    TargetErrorKind::Unauthorized => ProbeStep::Credentials,
                    TargetErrorKind::Forbidden => ProbeStep::AdminRights,
                    _ => ProbeStep::Reachable,
                };
                probe.failed(step, error, "see the error")
            }
        }
    }

    /// Reads the project and component leads alone (products with `leads`), so that a run
    /// planning from a known state can check who leads what before deprovisioning anyone:
    /// projects are made by hand all the time and Jira refuses to deactivate their leads.
    async fn read_leads(&self) -> Result<Vec<Lead>, TargetError> {
        Ok(Vec::new())
    }

    /// Reads one user and their direct groups, for login-time sync. `Ok(None)` if absent.
    async fn read_user(
        &self,
        username: &str,
        attributes: &[String],
    ) -> Result<Option<(TargetUser, BTreeSet<String>)>, TargetError>;

    /// Applies one operation. "Already exists" and "already a member" are checked and
    /// reported as [`Applied::AlreadyDone`], not as errors.
    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError>;

    /// Adds several accounts, each `(key, username)`, to one group in one request, on products
    /// whose capabilities say `bulk_membership`. All or nothing: on an error the caller falls
    /// back to one [`Operation::AddMembership`] at a time to learn which one failed.
    async fn add_members(
        &self,
        group: &str,
        members: &[(String, String)],
    ) -> Result<Applied, TargetError> {
        let _ = members;
        Err(TargetError {
            kind: TargetErrorKind::Unsupported,
            target: self.name().to_owned(),
            message: format!(
                "cannot add several users to group '{group}' at once: {} has no such call",
                self.kind()
            ),
            status: None,
        })
    }

    /// Completes the creation of accounts that gave [`Applied::CreatedWithoutKey`], all at once
    /// (Bitbucket: grants their licence group in batches and learns their ids). Per lower-case
    /// username: the account key, or why its creation could not be completed. `Err` when
    /// nothing could be learned at all.
    async fn complete_creations(
        &self,
        usernames: &[String],
    ) -> Result<std::collections::HashMap<String, Result<String, TargetError>>, TargetError> {
        let _ = usernames;
        Ok(std::collections::HashMap::new())
    }

    /// Requests sent so far, by kind (for tests and benchmarks).
    fn request_counts(&self) -> BTreeMap<String, u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reports_each_step_up_to_the_one_that_failed() {
        let error = TargetError {
            kind: TargetErrorKind::Unauthorized,
            target: "jira".into(),
            message: "refused".into(),
            status: Some(401),
        };
        let passed = |probe: &TargetProbe| ProbeStep::ALL.map(|s| probe.passed(s));
        let settled = TargetProbe {
            admin: Some(AdminRights::NotVerified("no group".into())),
            ..TargetProbe::default()
        };
        assert!(settled.ok());
        assert_eq!(passed(&settled), [Some(true); 3]);
        // Nothing said about the rights yet: not a pass.
        assert_eq!(
            passed(&TargetProbe::default()),
            [Some(true), Some(true), None]
        );
        let refused = TargetProbe::default().failed(ProbeStep::Credentials, error.clone(), "fix");
        assert!(!refused.ok());
        assert_eq!(passed(&refused), [Some(true), Some(false), None]);
        let unreachable = TargetProbe::default().failed(ProbeStep::Reachable, error.clone(), "");
        assert_eq!(passed(&unreachable), [Some(false), None, None]);
        let not_admin = TargetProbe::default().failed(ProbeStep::AdminRights, error, "");
        assert_eq!(passed(&not_admin), [Some(true), Some(true), Some(false)]);
    }

    #[test]
    fn confluence_usernames_follow_its_create_user_rules() {
        let c = TargetKind::ConfluenceDc;
        assert!(c.lowercase_usernames());
        assert!(!TargetKind::JiraDc.lowercase_usernames());
        for ok in ["ada", "ada.lovelace@x.example", "a-b_c", "ünïcode"] {
            assert_eq!(c.username_refusal(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a,b", "`,`"),
            ("a+b", "`+`"),
            ("a<b", "`<`"),
            ("a>b", "`>`"),
            ("o'b", "`'`"),
            ("a\"b", "`\"`"),
            ("a\\b", "`\\`"),
            ("anonymous", "anonymous"),
            ("Ada", "upper-case"),
        ] {
            let why = c.username_refusal(bad).unwrap_or_default();
            assert!(why.contains(says), "{bad:?}: {why}");
        }
        for other in [
            TargetKind::JiraDc,
            TargetKind::BitbucketDc,
            TargetKind::AtlassianCloud,
        ] {
            assert_eq!(other.username_refusal("A b,c"), None);
        }
    }
}
