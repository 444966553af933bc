//! `atlassian-sim`: an HTTP simulator of the Atlassian user-management APIs idsync writes to.
//!
//! One server, one port, four products under their own context paths, as several Atlassian
//! products behind one reverse proxy often are:
//! - Jira Data Center REST v2 under `/jira` (`/jira/rest/api/2/...`);
//! - Confluence Data Center REST under `/confluence` (`/confluence/rest/api/...`);
//! - Bitbucket Data Center REST 1.0 (8.14 OpenAPI) under `/bitbucket`
//!   (`/bitbucket/rest/api/1.0/...` and the identical `/bitbucket/rest/api/latest/...`);
//! - Atlassian Cloud user provisioning (SCIM 2.0) under `/scim/directory/{directoryId}`.
//!
//! Each product keeps its own users and groups in memory and follows the documented shapes,
//! status codes and paging (see `/work/shared/api-contracts.md` C–H; choices where the docs are
//! silent are marked `[U]` beside the code). The shared knobs (scripted faults, latency, request
//! counters) come from [`sim_kit`]; the product knobs (licence seats, read-only directories,
//! token-bucket rate limits) and seeding are on [`AtlassianSim`] and, for simulators run as a
//! separate process, under `/_sim/{jira|confluence|bitbucket|scim}/...` (see `control.rs`).
//!
//! Besides the administrator's credentials, [`SimConfig`] holds those of an account that is no
//! administrator (a Jira and a Confluence personal access token, a Bitbucket password): the
//! products accept them, and refuse them on the resources that need administrator rights.

#![warn(missing_docs)]
// Handlers and their helpers return `Result<_, Response>`: the error IS the product's HTTP
// error response, built once per failed request, so its size (128 bytes) is irrelevant and
// boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod bitbucket;
mod common;
mod confluence;
mod control;
mod jira;
mod ratelimit;
mod scim;
mod state;
pub mod versions;

pub use ratelimit::RateLimit;
pub use sim_kit::{ChaosConfig, FaultKind, FaultRule, SimKit};
pub use state::RecordedRequest;

use state::{Component, Project, State, UserRec, lower, now_rfc3339};

/// The four simulated products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Jira Data Center, under `/jira`.
    Jira,
    /// Confluence Data Center, under `/confluence`.
    Confluence,
    /// Bitbucket Data Center, under `/bitbucket`.
    Bitbucket,
    /// Atlassian Cloud user provisioning (SCIM), under `/scim/directory/{id}`.
    Scim,
}

impl Product {
    /// Every product, in a fixed order.
    pub const ALL: [Product; 4] = [
        Product::Jira,
        Product::Confluence,
        Product::Bitbucket,
        Product::Scim,
    ];

    /// The path segment used under `/_sim/`.
    pub fn slug(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
            Product::Bitbucket => "bitbucket",
            Product::Scim => "scim",
        }
    }

    /// The product a `/_sim/` path segment names (the binary's options use the same words).
    pub fn from_slug(slug: &str) -> Option<Self> {
        Product::ALL.into_iter().find(|p| p.slug() == slug)
    }
}

/// Credentials and fixed settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// Personal access tokens, sent as `Authorization: Bearer ...`.
    pub jira_token: String,
    /// Confluence's, sent the same way.
    pub confluence_token: String,
    /// A Bitbucket HTTP access token: accepted on the non-admin resources only, since
    /// Bitbucket refuses tokens on `/rest/api/1.0/admin/...` (401).
    pub bitbucket_token: String,
    /// The SCIM directory API key (bearer only; Basic is refused, as by Atlassian).
    pub scim_token: String,
    /// The id in the SCIM base URL (`/scim/directory/{id}`).
    pub scim_directory_id: String,
    /// Basic-auth administrator accepted by Jira, Confluence and Bitbucket.
    pub admin_user: String,
    /// Password of `admin_user`.
    pub admin_password: String,
    /// A Bitbucket account that authenticates (Basic) but has no ADMIN permission: the admin
    /// resources answer it with 401, as they answer a token.
    pub bitbucket_plain_user: String,
    /// Password of `bitbucket_plain_user`.
    pub bitbucket_plain_password: String,
    /// Personal access tokens of a licensed Jira / Confluence account that is no
    /// administrator (named like `bitbucket_plain_user`): accepted, but refused on the
    /// resources that need administrator rights, as the products refuse such an account.
    pub jira_plain_token: String,
    /// Confluence's token of that account (see `jira_plain_token`).
    pub confluence_plain_token: String,
    /// Bitbucket groups that grant a licence seat (the default group grants one too).
    pub bitbucket_licence_groups: Vec<String>,
    /// The group `POST /admin/users?addToDefaultGroup=true` adds new users to.
    pub bitbucket_default_group: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            jira_token: "jira-pat-0001".to_owned(),
            confluence_token: "confluence-pat-0001".to_owned(),
            bitbucket_token: "bitbucket-pat-0001".to_owned(),
            scim_token: "scim-directory-key-0001".to_owned(),
            scim_directory_id: "2fb21891-5c6e-4f3a-9d1b-6a0f7c3e8b42".to_owned(),
            admin_user: "admin".to_owned(),
            admin_password: "admin".to_owned(),
            bitbucket_plain_user: "developer".to_owned(),
            bitbucket_plain_password: "developer".to_owned(),
            jira_plain_token: "jira-pat-developer-0001".to_owned(),
            confluence_plain_token: "confluence-pat-developer-0001".to_owned(),
            bitbucket_licence_groups: vec!["stash-users".to_owned()],
            bitbucket_default_group: "stash-users".to_owned(),
        }
    }
}

/// A user as the tests see it, whatever the product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimUser {
    /// Jira key (`JIRAUSER10100`), Confluence userKey, Bitbucket numeric id as a string, SCIM id.
    /// Left empty when seeding, the simulator assigns one.
    pub key: String,
    /// Username (SCIM: `userName`).
    pub name: String,
    /// E-mail address (SCIM: the primary one of `emails`).
    pub email: String,
    /// Display name (SCIM: `displayName`).
    pub display_name: String,
    /// `false` once deactivated.
    pub active: bool,
    /// SCIM `externalId`; unused by the other products.
    pub external_id: Option<String>,
    /// SCIM: every other attribute of the resource (`name`, `emails`, `title`, the enterprise
    /// extension under its URN, ...). Unused by the other products.
    pub attributes: BTreeMap<String, Value>,
}

impl SimUser {
    /// An active user with `name@example.com` and a display name derived from the username.
    pub fn new(name: &str) -> Self {
        SimUser {
            key: String::new(),
            name: name.to_owned(),
            email: format!("{name}@example.com"),
            display_name: name.replace(['.', '_'], " "),
            active: true,
            external_id: None,
            attributes: BTreeMap::new(),
        }
    }

    fn from_rec(rec: &UserRec) -> Self {
        SimUser {
            key: rec.key.clone(),
            name: rec.name.clone(),
            email: rec.email.clone(),
            display_name: rec.display_name.clone(),
            active: rec.active,
            external_id: rec.external_id.clone(),
            attributes: rec.attributes.clone(),
        }
    }
}

pub(crate) struct Inner {
    pub config: SimConfig,
    pub state: Mutex<State>,
    pub kit: Arc<SimKit>,
    base_url: Mutex<String>,
}

impl Inner {
    /// `http://127.0.0.1:PORT` once started; used for `self` links.
    pub fn base(&self) -> String {
        lock(&self.base_url).clone()
    }
}

pub(crate) use sim_kit::lock;

/// Handle on a simulator; cheap to clone.
#[derive(Clone)]
pub struct AtlassianSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AtlassianSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtlassianSim")
            .field("base_url", &self.inner.base())
            .finish_non_exhaustive()
    }
}

impl Default for AtlassianSim {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl AtlassianSim {
    /// A simulator with these credentials and settings, holding no users yet (Bitbucket's
    /// default group exists). Nothing is served until [`AtlassianSim::start`].
    pub fn new(config: SimConfig) -> Self {
        let kit = SimKit::with_path_error_body(Arc::new(|path: &str, status: StatusCode| {
            common::error_body(
                common::product_for_path(path),
                status,
                status.canonical_reason().unwrap_or("Simulated failure"),
            )
        }));
        let mut state = State::new();
        // Bitbucket ships with its default group; creating users with addToDefaultGroup=true
        // needs it.
        let default_group = config.bitbucket_default_group.clone();
        state
            .bitbucket
            .insert_group(&default_group, uuid::Uuid::new_v4().to_string());
        AtlassianSim {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                kit,
                base_url: Mutex::new("http://localhost".to_owned()),
            }),
        }
    }

    /// The credentials and settings it was made with, for tests to configure targets from.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Faults, latency and request counters (keys like
    /// `"POST /bitbucket/rest/api/1.0/admin/groups/add-users"`). Target one product with
    /// `FaultRule::on_path("/jira/")` etc.
    pub fn kit(&self) -> Arc<SimKit> {
        self.inner.kit.clone()
    }

    /// The axum router, for embedding; [`AtlassianSim::start`] serves it.
    pub fn router(&self) -> Router {
        use axum::middleware::from_fn_with_state;
        let inner = self.inner.clone();
        let gate = |product| {
            from_fn_with_state(
                common::Gate {
                    sim: inner.clone(),
                    product,
                },
                common::gate,
            )
        };
        let mut products = Router::new();
        for (product, routes) in [
            (Product::Jira, jira::routes()),
            (Product::Confluence, confluence::routes()),
            (Product::Bitbucket, bitbucket::routes()),
            (Product::Scim, scim::routes()),
        ] {
            // route_layer: authentication and rate limiting apply to matched product routes
            // only; unmatched paths get the product-shaped 404 of the fallback.
            if routes.has_routes() {
                products = products.merge(routes.route_layer(gate(product)));
            }
        }
        let products = products
            .fallback(common::fallback)
            .with_state(inner.clone())
            .layer(from_fn_with_state(
                self.inner.kit.clone(),
                sim_kit::middleware,
            ));
        products
            .merge(sim_kit::control_router(self.inner.kit.clone()))
            .merge(control::router(inner))
    }

    /// Serves on `127.0.0.1:0` (a free port).
    pub async fn start(self) -> std::io::Result<RunningAtlassianSim> {
        self.start_on(sim_kit::loopback_any_port()).await
    }

    /// Serves on `addr`: the binary's `--port`.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<RunningAtlassianSim> {
        let served = sim_kit::serve(self.router(), addr).await?;
        let base_url = served.base_url();
        *lock(&self.inner.base_url) = base_url.clone();
        Ok(RunningAtlassianSim {
            base_url,
            sim: self,
            served,
        })
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.inner.state))
    }

    /// Adds (or replaces, by username) a user; returns its key. An empty `key` gets a fresh
    /// one in the product's format. Seeding bypasses licence and read-only checks.
    pub fn seed_user(&self, p: Product, user: SimUser) -> String {
        self.with_state(|s| {
            let existing = s.dir(p).user(&user.name).map(|u| u.key.clone());
            let key = if !user.key.is_empty() {
                user.key.clone()
            } else if let Some(key) = existing {
                key
            } else {
                s.new_key(p)
            };
            let now = now_rfc3339();
            let email = user.email.clone();
            let mut attributes = user.attributes.clone();
            if p == Product::Scim && !attributes.contains_key("emails") && !email.is_empty() {
                attributes.insert(
                    "emails".to_owned(),
                    serde_json::json!([{"value": email, "type": "work", "primary": true}]),
                );
            }
            s.dir_mut(p).insert_user(UserRec {
                key: key.clone(),
                name: user.name,
                email,
                display_name: user.display_name,
                active: user.active,
                external_id: user.external_id,
                attributes,
                properties: BTreeMap::new(),
                created: now.clone(),
                modified: now,
            });
            key
        })
    }

    /// Creates a group if it does not exist.
    pub fn seed_group(&self, p: Product, name: &str) {
        self.with_state(|s| {
            let dir = s.dir_mut(p);
            if dir.group(name).is_none() {
                dir.insert_group(name, uuid::Uuid::new_v4().to_string());
            }
        });
    }

    /// Adds a direct membership (creating the group if needed); `false` when the user is unknown.
    pub fn seed_membership(&self, p: Product, group: &str, username: &str) -> bool {
        self.with_state(|s| {
            let dir = s.dir_mut(p);
            let Some(key) = dir.user(username).map(|u| u.key.clone()) else {
                return false;
            };
            if dir.group(group).is_none() {
                dir.insert_group(group, uuid::Uuid::new_v4().to_string());
            }
            if let Some(g) = dir.group_mut(group) {
                g.members.insert(key);
            }
            true
        })
    }

    /// Makes `child` a nested subgroup of `parent` (creating both if needed). Only Jira lists
    /// nested members; other products keep the link but ignore it.
    pub fn nest_group(&self, p: Product, parent: &str, child: &str) {
        self.with_state(|s| {
            let dir = s.dir_mut(p);
            for name in [parent, child] {
                if dir.group(name).is_none() {
                    dir.insert_group(name, uuid::Uuid::new_v4().to_string());
                }
            }
            if let Some(g) = dir.group_mut(parent) {
                g.children.insert(lower(child));
            }
        });
    }

    /// All users, sorted by username.
    pub fn users(&self, p: Product) -> Vec<SimUser> {
        self.with_state(|s| s.dir(p).users.values().map(SimUser::from_rec).collect())
    }

    /// One user by username (case-insensitive; SCIM: `userName`).
    pub fn user(&self, p: Product, username: &str) -> Option<SimUser> {
        self.with_state(|s| s.dir(p).user(username).map(SimUser::from_rec))
    }

    /// One user by key / id.
    pub fn user_by_key(&self, p: Product, key: &str) -> Option<SimUser> {
        self.with_state(|s| s.dir(p).user_by_key(key).map(SimUser::from_rec))
    }

    /// Group names, sorted case-insensitively.
    pub fn groups(&self, p: Product) -> Vec<String> {
        self.with_state(|s| s.dir(p).groups.values().map(|g| g.name.clone()).collect())
    }

    /// The SCIM id of a group (other products: an internal id).
    pub fn group_id(&self, p: Product, name: &str) -> Option<String> {
        self.with_state(|s| s.dir(p).group(name).map(|g| g.id.clone()))
    }

    /// Direct members' usernames, sorted.
    pub fn members(&self, p: Product, group: &str) -> Vec<String> {
        self.with_state(|s| {
            let dir = s.dir(p);
            dir.group(group)
                .map(|g| {
                    dir.direct_members(g)
                        .into_iter()
                        .map(|u| u.name.clone())
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Jira user properties of a user.
    pub fn user_properties(&self, username: &str) -> BTreeMap<String, Value> {
        self.with_state(|s| {
            s.jira
                .user(username)
                .map(|u| u.properties.clone())
                .unwrap_or_default()
        })
    }

    /// Licence seats: `None` is unlimited (the default). Jira and Confluence count active
    /// users; Bitbucket counts users in a licence-granting group. SCIM has no licence limit.
    pub fn set_licence_seats(&self, p: Product, seats: Option<usize>) {
        self.with_state(|s| s.dir_mut(p).seats = seats);
    }

    /// A read-only user directory (LDAP/Crowd): user and group writes fail.
    pub fn set_read_only(&self, p: Product, read_only: bool) {
        self.with_state(|s| s.dir_mut(p).read_only = read_only);
    }

    /// Turns the product's token bucket on (full) or off.
    pub fn set_rate_limit(&self, p: Product, limit: Option<RateLimit>) {
        self.with_state(|s| match limit {
            Some(limit) => {
                s.buckets.insert(p, ratelimit::Bucket::new(limit));
            }
            None => {
                s.buckets.remove(&p);
            }
        });
    }

    /// Adds a Jira project led by `lead` (a username; stored by user key when the user exists).
    pub fn add_project(&self, key: &str, name: &str, lead: &str) {
        self.with_state(|s| {
            let lead_key = s
                .jira
                .user(lead)
                .map(|u| u.key.clone())
                .unwrap_or_else(|| lead.to_owned());
            s.next_project_id += 1;
            let id = s.next_project_id;
            s.projects.insert(
                key.to_uppercase(),
                Project {
                    id,
                    key: key.to_uppercase(),
                    name: name.to_owned(),
                    lead: lead_key,
                },
            );
        });
    }

    /// Adds a component to a Jira project; returns its id.
    pub fn add_component(&self, project_key: &str, name: &str, lead: Option<&str>) -> u64 {
        self.with_state(|s| {
            let lead = lead.map(|l| {
                s.jira
                    .user(l)
                    .map(|u| u.key.clone())
                    .unwrap_or_else(|| l.to_owned())
            });
            s.next_component_id += 1;
            let id = s.next_component_id;
            s.components.insert(
                id,
                Component {
                    id,
                    project: project_key.to_uppercase(),
                    name: name.to_owned(),
                    lead,
                },
            );
            id
        })
    }

    /// The username of a project's lead (empty when the project does not exist).
    pub fn project_lead(&self, key: &str) -> String {
        self.with_state(|s| {
            s.projects
                .get(&key.to_uppercase())
                .map(|p| {
                    s.jira
                        .user_by_key(&p.lead)
                        .map(|u| u.name.clone())
                        .unwrap_or_else(|| p.lead.clone())
                })
                .unwrap_or_default()
        })
    }

    /// The username of a component's lead, `None` when it has none (or does not exist).
    pub fn component_lead(&self, id: u64) -> Option<String> {
        self.with_state(|s| {
            let lead = s.components.get(&id)?.lead.clone()?;
            Some(
                s.jira
                    .user_by_key(&lead)
                    .map(|u| u.name.clone())
                    .unwrap_or(lead),
            )
        })
    }

    /// Every request that reached the Bitbucket product, in order.
    pub fn bitbucket_requests(&self) -> Vec<RecordedRequest> {
        self.with_state(|s| s.requests.clone())
    }

    /// Forgets the recorded Bitbucket requests (the `/_sim/` control API does it).
    pub(crate) fn clear_bitbucket_requests(&self) {
        self.with_state(|s| s.requests.clear());
    }

    /// How many `GET /longtask/{id}` polls a Confluence user deletion takes to finish
    /// (default 2: the first poll sees it running, the second sees it done). Minimum 1.
    pub fn set_long_task_polls(&self, polls: u32) {
        self.with_state(|s| s.task_polls_to_complete = polls.max(1));
    }

    /// Runs `p` as version `version` (`"8.3.0"`): it reports that version and serves only
    /// the resources that version has. Panics on a version that does not parse (tests only).
    pub fn set_version(&self, p: Product, version: &str) {
        let parsed = versions::parse(version)
            .unwrap_or_else(|| panic!("{version:?} is not a version such as 8.3.0"));
        self.with_state(|s| s.versions.insert(p, parsed));
    }

    /// Makes the Confluence user deletions started from now on fail half way (`successful`
    /// turns false, the user stays), or stops doing so.
    pub fn set_long_tasks_fail(&self, fail: bool) {
        self.with_state(|s| s.long_tasks_fail = fail);
    }

    /// Finishes every pending Confluence long task now (the users are deleted).
    pub fn complete_long_tasks(&self) {
        self.with_state(|s| {
            let ids: Vec<String> = s.tasks.keys().cloned().collect();
            for id in ids {
                confluence::finish_task(s, &id);
            }
        });
    }

    /// Confluence long tasks not finished yet (nor failed).
    pub fn pending_long_tasks(&self) -> usize {
        self.with_state(|s| s.tasks.values().filter(|t| !t.done && !t.failed).count())
    }
}

/// A started simulator; dropping it stops the server.
#[derive(Debug)]
pub struct RunningAtlassianSim {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// The simulator served, to seed and inspect (also reached through `Deref`).
    pub sim: AtlassianSim,
    served: sim_kit::Served,
}

impl RunningAtlassianSim {
    /// The loopback address and port it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    /// `{base_url}/jira`: Jira's base URL (REST under `/rest/api/2`).
    pub fn jira_url(&self) -> String {
        format!("{}/jira", self.base_url)
    }

    /// `{base_url}/confluence`: Confluence's base URL (REST under `/rest/api`).
    pub fn confluence_url(&self) -> String {
        format!("{}/confluence", self.base_url)
    }

    /// `{base_url}/bitbucket`: Bitbucket's base URL (REST under `/rest/api/1.0`).
    pub fn bitbucket_url(&self) -> String {
        format!("{}/bitbucket", self.base_url)
    }

    /// `{base_url}/scim/directory/{id}`: the SCIM base URL.
    pub fn scim_url(&self) -> String {
        format!(
            "{}/scim/directory/{}",
            self.base_url, self.sim.inner.config.scim_directory_id
        )
    }

    /// The simulator served (the same as the `sim` field and `Deref`).
    pub fn sim(&self) -> &AtlassianSim {
        &self.sim
    }

    /// Stops the server and waits until it has.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

impl std::ops::Deref for RunningAtlassianSim {
    type Target = AtlassianSim;

    fn deref(&self) -> &AtlassianSim {
        &self.sim
    }
}
