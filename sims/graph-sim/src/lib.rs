//! # graph-sim — a Microsoft Graph v1.0 and identity platform simulator
//!
//! Test infrastructure for idsync: the product's real Graph client talks to it over loopback
//! HTTP exactly as it talks to the real service. One port serves both the authority
//! (`POST /{tenant}/oauth2/v2.0/token`) and Graph (`/v1.0/...`), so a client configured with
//! `authority_url = graph_url = base_url` needs no code change. Links (`@odata.nextLink`,
//! `@odata.deltaLink`, `Location`) are absolute and built from the request's `Host` header.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use graph_sim::{GraphSim, TenantSpec};
//! let sim = GraphSim::new(&TenantSpec::sized(1000, 50)).start().await?;
//! let creds = sim.credentials();
//! // point the client at sim.base_url with creds.tenant_id / client_id / client_secret
//! sim.disable_user(&sim.user_ids()[0]).expect("user exists");
//! # Ok(()) }
//! ```
//!
//! ## Graph surface
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials; AADSTS 7000215, 7000222, 700016,
//!   90002, 900023, 70011, 7000218, 900144, 70003). Accepted scopes:
//!   `https://graph.microsoft.com/.default`, `00000003-0000-0000-c000-000000000000/.default`,
//!   and `{base_url}/.default`. Tokens are opaque and expire after the token lifetime
//!   (default 3599 s, see [`GraphSim::set_token_lifetime`]).
//! - `GET /v1.0/users`, `/groups`, `/servicePrincipals`: `$select`, `$top` (1..=999, default
//!   100), `$filter` subset (`prop eq 'x'`/`eq true|false`, `prop in (...)`, `startswith(prop,'x')`,
//!   combined with `and`/`or`; `id`, `userPrincipalName`, `displayName`, `accountEnabled`, `mail`,
//!   ... — anything else is 400 `Request_UnsupportedQuery`), `$skip`/`$count`/`$search`/
//!   `$orderby` → 400. Paging by `$skiptoken` in `@odata.nextLink`, stable creation order.
//! - `GET /v1.0/users/{id|upn}`, `/groups/{id}`, `/servicePrincipals/{id}`,
//!   `/servicePrincipals(appId='..')`: 404 `Request_ResourceNotFound`.
//! - `GET /v1.0/groups/{id}/members`, `/transitiveMembers` (cycle-safe), `/users/{id}/memberOf`:
//!   directoryObjects with `@odata.type`.
//! - `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo` and
//!   `/servicePrincipals(appId='{appId}')/appRoleAssignedTo`.
//! - `GET /v1.0/users/delta`, `/groups/delta` (also as `delta()`, `microsoft.graph.delta` and
//!   `microsoft.graph.delta()`): see `delta.rs`; `$select` (a user property change tracking
//!   does not support, e.g. `skills`, `birthday`, `signInActivity`: 400 `BadRequest`), `$filter=id eq ..
//!   or ..` (≤ 50), `$deltatoken=latest`, `Prefer: return=minimal`, `Prefer:
//!   odata.maxpagesize=N` (a preference: pages hold at most 200 users, 200 groups and 500
//!   `members@delta` entries by default, see [`PagingKnobs`]). Group rounds carry `members@delta` when `members` is in
//!   `$select`, with `$expand=members`, or with no `$select`. Initial rounds list current
//!   objects (soft-deleted users appear as `@removed: changed`, which Graph may also do);
//!   later rounds list objects changed since the token, merged per object: created/restored →
//!   all selected properties; updated → all selected (or, with `return=minimal`, only the
//!   changed ones), and only when a selected property changed; soft-deleted →
//!   `@removed: changed`; hard-deleted → `@removed: deleted`. Group rounds list membership
//!   changes only (`@removed: deleted` on removed members). A change made while a round is
//!   being paged is reported again in the next round (replays are legitimate in Graph).
//! - `POST /v1.0/$batch`: at most 20 requests, unique ids, `dependsOn` (424 when a
//!   dependency failed), responses in shuffled order; each item goes through auth, counters
//!   and injected faults on its own (per-item 429 with `Retry-After` in its headers).
//! - Application permissions (`permissions.rs`): tokens carry the permissions consented when
//!   they were issued ([`DEFAULT_PERMISSIONS`] unless changed with
//!   [`GraphSim::set_permissions`]); users routes need User.Read.All, groups routes
//!   GroupMember.Read.All (or Group.Read.All), servicePrincipals routes Application.Read.All
//!   (Directory.Read.All covers all three); otherwise 403 `Authorization_RequestDenied`.
//!   Members of a group with `visibility: "HiddenMembership"` are left out (empty member list,
//!   no `members@delta`, no membership changes in later delta rounds, not in memberOf) unless
//!   the token holds [`MEMBER_READ_HIDDEN`].
//! - Errors use Graph's envelope `{"error":{"code","message","innerError":{"date",
//!   "request-id","client-request-id"}}}`; every response has `request-id` and
//!   `client-request-id` (echoed when sent).
//!
//! ## Control API over HTTP (JSON; all under `/_sim/`)
//! | route | effect |
//! |---|---|
//! | `GET /_sim/tenant` | export the tenant (format below) |
//! | `GET /_sim/credentials` | `{"tenantId","tenantDomain","clientId","clientSecret"}` |
//! | `GET /_sim/snapshot` | [`Snapshot`] |
//! | `GET /_sim/users[?upn=X]` | user ids (`{"id"}` or 404 with `upn`) |
//! | `POST /_sim/users` | body [`NewUser`] → 201 `{"id"}` |
//! | `PATCH /_sim/users/{id}` | merge properties (`null` clears; UPN rename allowed) |
//! | `POST /_sim/users/{id}/{disable,enable,soft-delete,restore}` | 204 |
//! | `DELETE /_sim/users/{id}` | hard delete |
//! | `GET /_sim/groups[?name=X]` | group ids (all groups with that name) |
//! | `POST /_sim/groups` | `{"displayName", ...}` → 201 `{"id"}` |
//! | `PATCH /_sim/groups/{id}` | rename / merge properties |
//! | `DELETE /_sim/groups/{id}` | hard delete |
//! | `POST /_sim/groups/{id}/members` | `{"id": member}` (user, group, device, contact, SP) |
//! | `DELETE /_sim/groups/{id}/members/{member}` | remove member |
//! | `POST /_sim/devices`, `/_sim/contacts`, `/_sim/service-principals` | properties → `{"id"}` |
//! | `DELETE /_sim/objects/{id}` | hard delete any object |
//! | `GET /_sim/apps` | service principals `{id, appId, displayName}` |
//! | `POST /_sim/apps/{appId or spId}/assignments` | `{"principalId", "appRoleId"?}` → `{"id"}` |
//! | `DELETE /_sim/apps/{app}/assignments/{principalId}` | unassign |
//! | `POST /_sim/delta/expire` | every outstanding delta/skip token → 400 `syncStateNotFound` |
//! | `POST /_sim/delta/resync` | next users and next groups delta request → 410 + `Location` |
//! | `POST /_sim/delta/replay` | `{"count": n}`: next incremental round of each resource repeats n objects |
//! | `GET /_sim/auth` | `{"permissions": [...]}`: the consented application permissions |
//! | `PUT /_sim/auth` | `{"secretExpired"?, "denyPermission"?, "tokenLifetimeSecs"?, "permissions"?: [...]}` (permissions apply to tokens issued afterwards) |
//! | `POST /_sim/auth/revoke` | forget every issued access token |
//! | `GET`/`PUT /_sim/paging` | [`PagingKnobs`] (PUT merges the given fields; `pageTokenMaxAgeMs` expires `$skiptoken`s by age) |
//! | `/_sim/faults`, `/_sim/latency`, `/_sim/counters` | sim-kit (faults, latency, counters) |
//!
//! ## Tenant JSON (`GraphSim::from_json`, `to_json`, `GET /_sim/tenant`)
//! ```json
//! {"tenantId": "GUID", "tenantDomain": "contoso.onmicrosoft.com",
//!  "clientId": "GUID", "clientSecret": "...", "extensionAppId": "GUID",
//!  "users": [{"id": "GUID", "userPrincipalName": "a@contoso.com", "displayName": "A", ...}],
//!  "deletedUsers": [{...soft-deleted users...}],
//!  "groups": [{"id": "GUID", "displayName": "G", "members": ["member id", ...], ...}],
//!  "devices": [{...}], "orgContacts": [{...}],
//!  "servicePrincipals": [{"id": "GUID", "appId": "GUID", "displayName": "App",
//!     "appRoleAssignedTo": [{"principalId": "GUID", "appRoleId": "GUID"}]}]}
//! ```
//! Objects are Graph-shaped property bags (any property is kept and served). Every key is
//! optional except a user's `userPrincipalName`; missing ids and credentials are generated.

#![warn(missing_docs)]

mod assignments;
mod auth;
mod batch;
mod control;
mod delta;
mod directory;
mod generate;
mod graph;
mod http;
mod permissions;
mod schema;
mod store;
mod token;
mod transitive_member_of;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim_kit::{SimKit, lock};

pub use auth::GRAPH_DEFAULT_SCOPE;
pub use generate::TenantSpec;
pub use permissions::{DEFAULT_PERMISSIONS, MEMBER_READ_HIDDEN};
pub use schema::ObjectKind;
/// Re-exported so tests can build fault rules without a direct dependency.
pub use sim_kit;
pub use store::{Credentials, NewUser, SimError, Snapshot, SnapshotGroup};

use delta::{DeltaCache, DeltaItem, Resource};
use store::Tenant;

/// Paging knobs (all also under `GET/PUT /_sim/paging`).
///
/// The delta defaults are the page sizes Graph is reported to serve. `Prefer:
/// odata.maxpagesize` is a preference, not a guarantee, and Graph does not document the delta
/// page sizes of users and groups ("The number of objects in each page can vary depending on the
/// resource type and the type of changes", https://learn.microsoft.com/graph/delta-query-overview;
/// `$top` is not supported there). Observed and stated by Microsoft support: at most 200 objects
/// such as users per delta page and 500 directory links such as group members, the same without
/// the header, larger values capped, fewer when the service runs short of time (Microsoft Q&A,
/// https://learn.microsoft.com/en-us/answers/questions/2276060, accepted answer, May 2025; users
/// delta "returning 200 or fewer records" per call:
/// https://learn.microsoft.com/en-us/answers/questions/5875141, April 2026); a group of about
/// 9,993 members came back on 20 groups-delta pages, about 500 members a page
/// (microsoftgraph/msgraph-sdk-dotnet#574).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PagingKnobs {
    /// At most this many items per page on every paged route, whatever `$top` or
    /// `odata.maxpagesize` say (Graph may return short pages). Default: none.
    pub page_cap: Option<usize>,
    /// Before every data page, send a page with an empty `value` and a nextLink. Default off.
    pub empty_pages: bool,
    /// Objects per users-delta page: the size without `Prefer: odata.maxpagesize` and the most
    /// a larger preference gets (a smaller one is honoured). Default 200.
    pub users_delta_page_size: usize,
    /// Group objects (each chunk of a split group counts) per groups-delta page, as
    /// `users_delta_page_size` is for users. Default 200.
    pub groups_delta_max_groups: usize,
    /// `members@delta` entries per groups-delta page, over all its groups; a bigger group is
    /// split across pages, and the members of many groups spread them over more pages.
    /// Default 500.
    pub groups_delta_max_member_refs: usize,
    /// A `$skiptoken` (of a list or of a delta round) used more than this many milliseconds
    /// after the page that handed it out gets 400 `Directory_ExpiredPageToken`, as Graph's page
    /// tokens expire within minutes when a client asks for the next page too late. Default:
    /// none (page tokens never expire by age).
    pub page_token_max_age_ms: Option<u64>,
}

impl Default for PagingKnobs {
    fn default() -> Self {
        PagingKnobs {
            page_cap: None,
            empty_pages: false,
            users_delta_page_size: 200,
            groups_delta_max_groups: 200,
            groups_delta_max_member_refs: 500,
            page_token_max_age_ms: None,
        }
    }
}

#[derive(Debug, Default)]
struct Knobs {
    paging: PagingKnobs,
    resync_users: bool,
    resync_groups: bool,
    replay_users: usize,
    replay_groups: usize,
}

struct Shared {
    tenant: RwLock<Tenant>,
    auth: Mutex<auth::AuthState>,
    knobs: Mutex<Knobs>,
    kit: Arc<SimKit>,
    delta_cache: Mutex<DeltaCache>,
}

/// The simulator: a cheap-clone handle to the tenant, its knobs and the sim-kit.
#[derive(Clone)]
pub struct GraphSim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.read();
        f.debug_struct("GraphSim")
            .field("tenant_id", &t.creds.tenant_id)
            .field("users", &t.users.len())
            .field("groups", &t.groups.len())
            .finish_non_exhaustive()
    }
}

impl GraphSim {
    /// A generated tenant, deterministic from `spec.seed`.
    pub fn new(spec: &TenantSpec) -> GraphSim {
        GraphSim::from_tenant(generate::generate(spec))
    }

    /// Loads a tenant in the JSON format documented at the top of this crate.
    pub fn from_json(json: &str) -> Result<GraphSim, SimError> {
        let doc: Value = serde_json::from_str(json)
            .map_err(|e| SimError::Invalid(format!("tenant JSON: {e}")))?;
        let (defaults, _) = generate::credentials(0, "contoso.onmicrosoft.com");
        Ok(GraphSim::from_tenant(Tenant::from_json(&doc, defaults)?))
    }

    fn from_tenant(tenant: Tenant) -> GraphSim {
        GraphSim {
            shared: Arc::new(Shared {
                tenant: RwLock::new(tenant),
                auth: Mutex::new(auth::AuthState::default()),
                knobs: Mutex::new(Knobs::default()),
                kit: SimKit::new(Arc::new(http::fault_body)),
                delta_cache: Mutex::new(DeltaCache::new()),
            }),
        }
    }

    /// The current tenant as JSON (loadable with [`GraphSim::from_json`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.read().to_json()).unwrap_or_default()
    }

    /// Serves on `127.0.0.1` on a free port.
    pub async fn start(self) -> std::io::Result<RunningGraphSim> {
        self.start_on(sim_kit::loopback_any_port()).await
    }

    /// Serves on a given address (the binary's `--bind`/`--port`); [`GraphSim::start`] takes
    /// any free loopback port.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<RunningGraphSim> {
        let served = sim_kit::serve(self.router(), addr).await?;
        Ok(RunningGraphSim {
            base_url: served.base_url(),
            served,
            sim: self,
        })
    }

    /// The whole HTTP surface (product routes, sim-kit and `/_sim/` control routes).
    pub fn router(&self) -> Router {
        let kit = self.kit();
        let graph = Router::new()
            .route("/v1.0/users", get(graph::list_users))
            // The delta function, as the docs write it and as SDKs send it: `delta()` (Kiota
            // SDKs) and the fully qualified `microsoft.graph.delta` ("/delta is a shortcut for
            // the fully qualified name /microsoft.graph.delta. Requests generated by Microsoft
            // Graph SDKs use the fully qualified name",
            // https://learn.microsoft.com/graph/delta-query-overview).
            .route("/v1.0/users/delta", get(delta::users_delta))
            .route("/v1.0/users/delta()", get(delta::users_delta))
            .route("/v1.0/users/microsoft.graph.delta", get(delta::users_delta))
            .route(
                "/v1.0/users/microsoft.graph.delta()",
                get(delta::users_delta),
            )
            .route("/v1.0/users/{id}", get(graph::get_user))
            .route("/v1.0/users/{id}/memberOf", get(graph::list_member_of))
            .route(
                "/v1.0/users/{id}/transitiveMemberOf",
                get(transitive_member_of::list_transitive_member_of),
            )
            .route("/v1.0/groups", get(graph::list_groups))
            .route("/v1.0/groups/delta", get(delta::groups_delta))
            .route("/v1.0/groups/delta()", get(delta::groups_delta))
            .route(
                "/v1.0/groups/microsoft.graph.delta",
                get(delta::groups_delta),
            )
            .route(
                "/v1.0/groups/microsoft.graph.delta()",
                get(delta::groups_delta),
            )
            .route("/v1.0/groups/{id}", get(graph::get_group))
            .route("/v1.0/groups/{id}/members", get(graph::list_members))
            .route(
                "/v1.0/groups/{id}/transitiveMembers",
                get(graph::list_transitive_members),
            )
            .route(
                "/v1.0/servicePrincipals",
                get(graph::list_service_principals),
            )
            .route(
                "/v1.0/servicePrincipals/{id}",
                get(graph::get_service_principal),
            )
            .route(
                "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
                get(assignments::sp_assignments_by_id),
            )
            // https://learn.microsoft.com/graph/json-batching
            .route("/v1.0/$batch", post(batch::batch))
            .route("/v1.0/{segment}", get(assignments::sp_by_segment))
            .route(
                "/v1.0/{segment}/appRoleAssignedTo",
                get(assignments::sp_assignments_by_segment),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::bearer,
            ));
        let product = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
            .merge(graph)
            .fallback(graph::unknown_segment)
            .with_state(self.clone())
            .layer(axum::middleware::from_fn_with_state(
                kit.clone(),
                sim_kit::middleware,
            ))
            .layer(axum::middleware::from_fn(http::request_ids));
        product
            .merge(sim_kit::control_router(kit))
            .merge(control::router(self.clone()))
    }

    /// The tenant and client that the authority accepts.
    pub fn credentials(&self) -> Credentials {
        self.read().creds.clone()
    }

    /// Faults, latency and request counters (keys like `"GET /v1.0/users"`).
    pub fn kit(&self) -> Arc<SimKit> {
        self.shared.kit.clone()
    }

    /// The app id that owns the tenant's directory extension properties.
    pub fn extension_app_id(&self) -> String {
        self.read().extension_app_id.clone()
    }

    /// `extension_{extensionAppIdNoHyphens}_{name}`, e.g. for `costCenter`.
    pub fn extension_property(&self, name: &str) -> String {
        self.read().extension_attr(name)
    }

    // ----- delta knobs -----

    /// Every outstanding delta and skip token now fails with 400 `syncStateNotFound`.
    pub fn expire_delta_tokens(&self) {
        self.write().epoch += 1;
    }

    /// The next users-delta request and the next groups-delta request each get `410 Gone`
    /// with a `Location` holding the query with an empty `$deltatoken`.
    pub fn force_resync(&self) {
        let mut k = lock(&self.shared.knobs);
        k.resync_users = true;
        k.resync_groups = true;
    }

    /// The next incremental round of each resource ends with the first `count` objects again
    /// (in full; groups with their full membership), as Graph's replays do.
    pub fn replay_next_delta(&self, count: usize) {
        let mut k = lock(&self.shared.knobs);
        k.replay_users = count;
        k.replay_groups = count;
    }

    // ----- auth knobs -----

    /// The client secret is expired: the token endpoint answers AADSTS7000222.
    pub fn set_secret_expired(&self, expired: bool) {
        self.auth().secret_expired = expired;
    }

    /// Directory reads answer 403 `Authorization_RequestDenied` (consent missing altogether),
    /// whatever the token holds; takes effect at once.
    pub fn deny_permission(&self, deny: bool) {
        self.auth().deny_permission = deny;
    }

    /// The application permissions consented for the app (default:
    /// [`DEFAULT_PERMISSIONS`]). Tokens carry the permissions of the moment they were issued,
    /// as the `roles` claim of a real token does: a change applies to tokens issued after it
    /// (call [`GraphSim::revoke_tokens`] to make a client fetch a new one).
    pub fn set_permissions<S: AsRef<str>>(&self, permissions: &[S]) {
        self.auth().permissions =
            std::sync::Arc::new(permissions.iter().map(|p| p.as_ref().to_owned()).collect());
    }

    /// Takes one application permission away (names compare without case), e.g.
    /// `"GroupMember.Read.All"` or [`MEMBER_READ_HIDDEN`]; see [`GraphSim::set_permissions`].
    pub fn withhold_permission(&self, permission: &str) {
        let kept: Vec<String> = self
            .permissions()
            .into_iter()
            .filter(|p| !p.eq_ignore_ascii_case(permission))
            .collect();
        self.set_permissions(&kept);
    }

    /// Consents one more application permission; see [`GraphSim::set_permissions`].
    pub fn grant_permission(&self, permission: &str) {
        let mut all = self.permissions();
        if !all.iter().any(|p| p.eq_ignore_ascii_case(permission)) {
            all.push(permission.to_owned());
        }
        self.set_permissions(&all);
    }

    /// The consented application permissions, sorted.
    pub fn permissions(&self) -> Vec<String> {
        self.auth().permissions.iter().cloned().collect()
    }

    /// Lifetime (and `expires_in`) of newly issued tokens. Zero makes tokens unusable at once.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.auth().lifetime = lifetime;
    }

    /// Every issued access token becomes invalid (401 on next use).
    pub fn revoke_tokens(&self) {
        self.auth().revoke_all();
    }

    // ----- paging knobs -----

    /// Largest page served whatever `$top` asks (`None`: Graph's own limits).
    pub fn set_page_cap(&self, cap: Option<usize>) {
        lock(&self.shared.knobs).paging.page_cap = cap;
    }

    /// Slips empty pages (a `nextLink` and no items) between pages, as Graph sometimes does.
    pub fn set_empty_pages(&self, on: bool) {
        lock(&self.shared.knobs).paging.empty_pages = on;
    }

    /// Groups-delta page budget: at most `max_groups` group entries and `max_member_refs`
    /// `members@delta` entries per page.
    pub fn set_group_delta_budget(&self, max_groups: usize, max_member_refs: usize) {
        let mut k = lock(&self.shared.knobs);
        k.paging.groups_delta_max_groups = max_groups.max(1);
        k.paging.groups_delta_max_member_refs = max_member_refs.max(1);
    }

    /// Page tokens older than `max_age` (from the page that handed them out) get 400
    /// `Directory_ExpiredPageToken`; `None` (the default) lets them live forever.
    pub fn set_page_token_max_age(&self, max_age: Option<Duration>) {
        lock(&self.shared.knobs).paging.page_token_max_age_ms =
            max_age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    /// The paging knobs in force; the control API's `GET /_sim/paging`.
    pub(crate) fn paging(&self) -> PagingKnobs {
        self.knobs_now()
    }

    /// Replaces every paging knob at once; the control API's `PUT /_sim/paging` (which merges
    /// the request into [`GraphSim::paging`] first).
    pub(crate) fn set_paging(&self, knobs: PagingKnobs) {
        lock(&self.shared.knobs).paging = knobs;
    }

    // ----- internals -----

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Tenant> {
        self.shared
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Tenant> {
        self.shared
            .tenant
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn auth(&self) -> std::sync::MutexGuard<'_, auth::AuthState> {
        lock(&self.shared.auth)
    }

    pub(crate) fn knobs_now(&self) -> PagingKnobs {
        lock(&self.shared.knobs).paging.clone()
    }

    /// Whether a page token issued at `issued_ms` (Unix milliseconds) is too old to use.
    pub(crate) fn page_token_expired(&self, issued_ms: u64) -> bool {
        self.knobs_now()
            .page_token_max_age_ms
            .is_some_and(|max| http::now_ms().saturating_sub(issued_ms) > max)
    }

    pub(crate) fn take_resync(&self, res: Resource) -> bool {
        let mut k = lock(&self.shared.knobs);
        let flag = match res {
            Resource::Users => &mut k.resync_users,
            Resource::Groups => &mut k.resync_groups,
        };
        std::mem::take(flag)
    }

    pub(crate) fn take_replay(&self, res: Resource) -> usize {
        let mut k = lock(&self.shared.knobs);
        match res {
            Resource::Users => std::mem::take(&mut k.replay_users),
            Resource::Groups => std::mem::take(&mut k.replay_groups),
        }
    }

    /// The merged changes of a log window, computed once per window and kept while clients
    /// page through it.
    pub(crate) fn delta_items(
        &self,
        tenant: &Tenant,
        res: Resource,
        from: usize,
        to: usize,
        replay: usize,
    ) -> Arc<Vec<DeltaItem>> {
        let key = (res, from, to, replay);
        if let Some(items) = lock(&self.shared.delta_cache).get(&key) {
            return items.clone();
        }
        let items = Arc::new(delta::compute_items(tenant, res, from, to, replay));
        let mut cache = lock(&self.shared.delta_cache);
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(key, items.clone());
        items
    }
}

/// A simulator serving on loopback; dropping it stops the server.
#[derive(Debug)]
pub struct RunningGraphSim {
    /// `http://127.0.0.1:PORT`: both the authority URL and the Graph URL.
    pub base_url: String,
    served: sim_kit::Served,
    sim: GraphSim,
}

impl RunningGraphSim {
    /// For a client's authority setting (the same as the base URL).
    pub fn authority_url(&self) -> &str {
        &self.base_url
    }

    /// For a client's Graph setting (the same as the base URL).
    pub fn graph_url(&self) -> &str {
        &self.base_url
    }

    /// The socket it listens on. Nothing in the workspace calls it today; `base_url` holds the
    /// same address as a URL.
    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    /// The simulator behind the server, to change the tenant (also reached through `Deref`).
    pub fn sim(&self) -> &GraphSim {
        &self.sim
    }

    /// `{base_url}/{tenant_id}/oauth2/v2.0/token`
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url,
            self.credentials().tenant_id
        )
    }

    /// Stops the server and waits until it has stopped (dropping it stops it without waiting).
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

impl std::ops::Deref for RunningGraphSim {
    type Target = GraphSim;

    fn deref(&self) -> &GraphSim {
        &self.sim
    }
}
