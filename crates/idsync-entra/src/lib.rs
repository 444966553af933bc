#![warn(missing_docs)]
//! # idsync-entra — the Microsoft Entra ID source, read over Microsoft Graph
//!
//! [`EntraSource::read`] signs in with the app's client credentials ([`token`]), reads every
//! user and every group with its direct members, and works out which users are in the app's
//! scope. It is the product's client, used unchanged against the real service, a national
//! cloud or graph-sim: only `authority_url` and `graph_url` differ.
//!
//! ## How a read is done, and why
//! Users and groups are read with delta queries (`/users/delta`, `/groups/delta` with
//! `members@delta`), both on the first read and later ones:
//! - the initial round of a delta query returns the same objects as a plain list, and it also
//!   hands back the deltaLink the next read starts from. Its pages are smaller: Graph sends
//!   about 200 users a page whatever `Prefer: odata.maxpagesize=999` asks (a list would take
//!   `$top=999`), so 100k users take about 500 requests instead of about 100 — still far fewer
//!   than listing users and then reading groups one by one;
//! - `groups/delta` with `members` in `$select` carries every group's direct members, about 500
//!   `members@delta` entries a page (the members of many groups spread over pages), so the
//!   membership of all groups costs one request per ~500 memberships (about 1,000 for 500k)
//!   instead of one `/groups/{id}/members` call (or more) per group;
//! - later reads only fetch what changed.
//!
//! Users and groups are read concurrently. The enterprise-app scope needs one more listing,
//! `servicePrincipals(appId='…')/appRoleAssignedTo` with `$top=999`; the group scope is resolved
//! against the groups just read, at no extra cost.
//!
//! ## Safety
//! A read that fails or is cut short — a dropped connection, malformed JSON, a 5xx or 429 that
//! outlasts the retries — returns an error, never a partial [`SourceRead`]: the new state is
//! built aside and only returned whole. A rejected delta token (`syncStateNotFound`, `410 Gone`)
//! makes that resource fall back to a full read, and [`SourceRead::notes`] says so. A page token
//! that expired while a round was paged through (400 `Directory_ExpiredPageToken`, after a long
//! pause) starts that round over, at most [`PAGE_TOKEN_RESTARTS`] times, also with a note.
//!
//! Each call needs its own application permission (users: User.Read.All, groups:
//! GroupMember.Read.All, enterprise-app assignments: Application.Read.All); a 403 is
//! [`EntraError::PermissionDenied`] naming the missing one and where to grant it. The members of
//! groups with hidden membership also need Member.Read.Hidden, and Graph gives no sign that it
//! left them out: such a group whose members cannot be read is never taken as empty. It keeps the
//! members last read, is listed in [`SourceSnapshot::membership_unknown`] (the planner then
//! removes nobody from the target groups it feeds), and when the scope goes through it the
//! users outside the scope are listed in [`SourceSnapshot::maybe_in_scope`] (not deprovisioned);
//! a note names the groups and the permission, and groups are read in full until it is granted.

pub mod error;
pub mod graph;
pub mod packed;
mod read;
pub mod token;
mod user;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use idsync_config::{AppConfig, Scope};
use idsync_http::{ClientOptions, HttpClient, RequestCounter, RetryPolicy};
use idsync_model::{SourceGroup, SourceSnapshot, SourceUser};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use error::{EntraError, ScopeProblem};
pub use idsync_http::RetryPolicy as Retry;
pub use read::PAGE_TOKEN_RESTARTS;
pub use user::{InScope, OneUser};

use graph::GraphClient;
use token::TokenProvider;

/// What the store keeps between runs so that the next read can be a delta read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectoryState {
    /// The user properties `$select`ed (sorted). A read that needs others starts over.
    pub select: Vec<String>,
    /// Every directory user, disabled ones included (soft-deleted ones are removed).
    pub users: BTreeMap<String, SourceUser>,
    /// Every group with its direct user and group members.
    pub groups: BTreeMap<String, SourceGroup>,
    /// Where the next users delta round starts.
    pub users_delta_link: Option<String>,
    /// Where the next groups delta round starts.
    pub groups_delta_link: Option<String>,
    /// Members of groups that are neither users nor groups (devices, org contacts, service
    /// principals): group id → member id → type (`device`, `orgContact`, ...). Kept so that
    /// their counts stay right across delta reads.
    #[serde(default)]
    pub ignored_members: BTreeMap<String, BTreeMap<String, String>>,
    /// `graph_url` and tenant the state was read from; a different one means a full read.
    #[serde(default)]
    pub origin: String,
}

/// How one resource was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadKind {
    /// Everything, from an initial delta round.
    Full,
    /// Only the changes since the stored deltaLink.
    Delta,
}

/// Counts and costs of one read, for `idsync check`, logs and benchmarks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadStats {
    /// Full, delta, or mixed (one resource had to be read in full).
    pub mode: idsync_model::run::ReadMode,
    /// Whether users were read in full or as a delta.
    pub users_read: ReadKind,
    /// Whether groups were read in full or as a delta.
    pub groups_read: ReadKind,
    /// Users in the directory, in scope or not.
    pub directory_users: usize,
    /// Users the scope takes.
    pub users_in_scope: usize,
    /// Of the users in scope.
    pub enabled: usize,
    /// Of the users in scope, those disabled in Entra.
    pub disabled: usize,
    /// Groups in the directory.
    pub groups: usize,
    /// Direct user → group memberships, over all groups.
    pub memberships: usize,
    /// Direct group → group memberships (nesting), over all groups.
    pub nested_group_memberships: usize,
    /// Groups reached only through nesting while working out the scope.
    pub nested_groups_expanded: usize,
    /// Groups with hidden membership whose members could not be read (Member.Read.Hidden
    /// missing); see [`SourceRead::notes`].
    #[serde(default)]
    pub hidden_membership_unknown: usize,
    /// Group members that are neither users nor groups, by type (memberships counted).
    pub ignored_members: BTreeMap<String, u64>,
    /// Enterprise-app assignments to service principals (not users, so ignored).
    pub ignored_app_assignments: u64,
    /// Requests sent during this read, by kind (retries included), and their total.
    pub requests: BTreeMap<String, u64>,
    /// Requests sent to Graph, retries included.
    pub requests_total: u64,
    /// How long the read took.
    pub elapsed_ms: u64,
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct SourceRead {
    /// To store for the next read.
    pub state: DirectoryState,
    /// Users in scope (disabled ones included) and every group.
    pub snapshot: SourceSnapshot,
    /// Figures of the read.
    pub stats: ReadStats,
    /// Things worth telling the operator, e.g. "users: the delta token expired; did a full read".
    pub notes: Vec<String>,
}

/// Knobs of the client beyond the app's config.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// How throttled and failed requests are retried.
    pub retry: RetryPolicy,
    /// HTTP client settings (timeouts).
    pub http: ClientOptions,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            retry: RetryPolicy::default(),
            http: ClientOptions {
                // A page of users or of group members can take a while on a busy tenant.
                timeout: Duration::from_secs(120),
                connect_timeout: Duration::from_secs(15),
            },
        }
    }
}

/// One Entra app's source: its credentials, scope and the attributes to read.
#[derive(Debug)]
pub struct EntraSource {
    app: String,
    scope: Scope,
    nested_groups: bool,
    select: Vec<String>,
    /// Top-level property → the fields of the app's config that ask for it (e.g.
    /// `users.custom_attributes.birthday`), for errors about a property Graph will not read.
    attribute_fields: BTreeMap<String, BTreeSet<String>>,
    origin: String,
    graph: GraphClient,
    counter: RequestCounter,
}

/// Always read: the object id (the sync key), `accountEnabled` (`SourceUser::enabled`) and the
/// UPN (to name users in messages).
const ALWAYS_SELECTED: &[&str] = &["accountEnabled", "id", "userPrincipalName"];

impl EntraSource {
    /// `attributes`: source attribute names the rules need, flattened
    /// (`onPremisesExtensionAttributes.extensionAttribute3`, `extension_<appid>_costCenter`).
    pub fn new(app: &AppConfig, attributes: &BTreeSet<String>) -> Result<Self, EntraError> {
        EntraSource::with_options(app, attributes, SourceOptions::default())
    }

    /// A source with explicit client options (tests use shorter retries).
    pub fn with_options(
        app: &AppConfig,
        attributes: &BTreeSet<String>,
        options: SourceOptions,
    ) -> Result<Self, EntraError> {
        let config_error = |message: String| EntraError::Config {
            app: app.name.clone(),
            message,
        };
        let mut select: BTreeSet<String> =
            ALWAYS_SELECTED.iter().map(|s| (*s).to_owned()).collect();
        for name in attributes {
            if !idsync_config::validate::is_attribute_name(name) {
                return Err(config_error(format!(
                    "'{name}' is not a Graph user property name"
                )));
            }
            // `$select` names top-level properties; nested ones come with their parent.
            let top = name.split('.').next().unwrap_or(name);
            select.insert(top.to_owned());
        }
        let mut attribute_fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, fields) in app.source_attribute_fields() {
            let top = name.split('.').next().unwrap_or(&name).to_owned();
            attribute_fields.entry(top).or_default().extend(fields);
        }
        let client =
            idsync_http::build_client(&options.http).map_err(|e| config_error(e.to_string()))?;
        let counter = RequestCounter::labelled("graph", app.name.clone());
        let http = HttpClient::new(client, options.retry, counter.clone());
        let authority = app.authority_url.as_str().trim_end_matches('/');
        let graph_url = app.graph_url.as_str().trim_end_matches('/');
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            authority,
            &app.tenant_id,
            &app.client_id,
            SecretString::from(app.client_secret.expose().to_owned()),
            graph_url,
        ));
        Ok(EntraSource {
            app: app.name.clone(),
            scope: app.scope.clone(),
            nested_groups: app.nested_groups,
            select: select.into_iter().collect(),
            attribute_fields,
            origin: format!("{graph_url} {}", app.tenant_id.to_ascii_lowercase()),
            graph: GraphClient::new(http, tokens, &app.graph_url, &app.client_id),
            counter,
        })
    }

    /// The user properties every read `$select`s (sorted).
    pub fn select(&self) -> &[String] {
        &self.select
    }

    /// Requests sent by this source so far, by kind (`token`, `users/delta`, `groups/delta`,
    /// `servicePrincipals/appRoleAssignedTo`); retries count.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.counter.snapshot()
    }

    /// Reads the directory: in full when `previous` is `None`, was read with other attributes
    /// or from another tenant, or its delta token is refused; otherwise only the changes.
    /// On error nothing is returned but the error: the caller keeps its stored state.
    pub async fn read(&self, previous: Option<DirectoryState>) -> Result<SourceRead, EntraError> {
        read::read(self, previous).await
    }
}
