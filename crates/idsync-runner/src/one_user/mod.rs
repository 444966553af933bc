//! A sign-in sync: one user of one app, brought up to date on every target the app feeds while
//! they sign in, with the rules of a full run and nothing else touched.
//!
//! 1. Who: an Entra object id or UPN is looked up in Graph; a bare username through the store's
//!    links (username → source user). The user, their groups (through nesting when the app
//!    expands nested groups) and the scope's verdict come from a handful of Graph requests sent
//!    side by side (`EntraSource::read_one_user`), not a delta round.
//! 2. A user out of scope or disabled at the source is left alone, and the answer says so:
//!    taking access away stays with full runs and their mass-change guard.
//! 3. Under the app's lock (waited for [`UserSyncOptions::wait`] at most, then
//!    [`RunError::Busy`]), each target is planned by the engine's planner, as a full run plans
//!    it, from a source snapshot holding this user alone and a target state holding their
//!    account(s) alone (`Target::read_user`, the links and managed memberships of that account
//!    from the store, the target's groups from what idsync knows of it).
//! 4. The plan is then confined to this user ([`confine`]): an operation about anyone else, any
//!    deprovisioning and any group deletion is dropped with a warning. The planner never
//!    plans those for a lone in-scope user; the filter makes it impossible, whatever the
//!    planner does.
//! 5. Applied and recorded like a full run's writes (intentions before each phase, results and
//!    bookkeeping as they come), as a run with trigger `login`. What idsync knows of each target
//!    it wrote to is brought up to date with a patch of the accounts the sync touched
//!    (`idsync_engine::known_patch`), so the next incremental run still plans from it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idsync_config::validate::is_guid;
use idsync_engine::known_patch::{AccountsPatch, add_group_names, fold_patches, known_group_names};
use idsync_entra::{InScope, OneUser};
use idsync_http::RequestCounter;
use idsync_model::{ProductInfo, SourceGroup, SourceSnapshot, SourceUser, TargetUser};

// The crate root holds the imports and the types every step shares.
use super::*;

mod apply;
mod plan;

use plan::one_user_snapshot;

/// How long a target's product and version, once read, are taken as known by a long-lived
/// [`UserSyncer`]: an upgrade shows within this, and sign-ins do not each pay the request.
const PRODUCT_KNOWN_FOR: Duration = Duration::from_secs(10 * 60);

/// How a sign-in sync is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSyncOptions {
    /// How long to wait for the app's lock held by a run, before giving up as busy.
    pub wait: Duration,
    /// Plan only; apply nothing.
    pub dry_run: bool,
}

impl UserSyncOptions {
    /// As the app's config says (`login_sync_wait_seconds`).
    pub fn for_app(app: &AppConfig) -> Self {
        UserSyncOptions {
            wait: Duration::from_secs(app.login_sync_wait_seconds),
            dry_run: false,
        }
    }
}

/// How the user given was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedBy {
    /// An Entra object id, looked up in Graph.
    ObjectId,
    /// A user principal name, looked up in Graph.
    UserPrincipalName,
    /// A target username, through idsync's links to the source user.
    Username,
}

/// What a sign-in sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserOutcome {
    /// In scope and enabled: every target brought up to date (see the run).
    Synced,
    /// Not in the app's scope: nothing done (deprovisioning is left to full runs).
    OutOfScope,
    /// Disabled at the source: nothing done (deprovisioning is left to full runs).
    DisabledAtSource,
}

/// A sign-in sync's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSyncReport {
    /// The app the user was synced for.
    pub app: String,
    /// The user as given.
    pub user: String,
    /// How the user was found (object id, UPN, or a target username).
    pub resolved_by: ResolvedBy,
    /// The Entra object id.
    pub source_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The user's UPN, once found.
    pub user_principal_name: Option<String>,
    /// What was done, or why nothing was.
    pub outcome: UserOutcome,
    /// The scope's verdict, and why.
    pub scope: InScope,
    /// The run recorded in the history (trigger `login`) when the user was synced: per
    /// target, each operation with its reason and result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunReport>,
    /// Requests sent, by service and kind (`graph users/{id}`, `jira GET /rest/api/2/user`…).
    pub requests: BTreeMap<String, u64>,
    /// How long the sign-in sync took.
    pub elapsed_ms: u64,
}

/// One target as a [`UserSyncer`] keeps it between sign-ins.
struct SyncTarget {
    target: Arc<dyn Target>,
    config: TargetConfig,
    rules: Arc<TargetRules>,
    /// The product and version, and when they were read.
    product: tokio::sync::Mutex<Option<(Instant, ProductInfo)>>,
    /// The names of the groups in what idsync knows of the target, with the stamp of the
    /// state they came from: read again only when that state changes, not on every sign-in
    /// (decoding a 100k-user state for them took most of a sign-in's time).
    known_groups: tokio::sync::Mutex<Option<(KnownStamp, Arc<BTreeSet<String>>)>>,
    /// Whether the target's patches are being folded into its known state (one at a time).
    folding: Arc<AtomicBool>,
}

/// How many sign-in patches a target's known state gathers before they are folded into it.
/// Every run that plans from the state folds them in anyway (a patch is a few hundred bytes),
/// so this only bounds them where runs are rare; a fold reads, splices and writes the whole
/// state (about a second per target at 100k users), in the background but on the same cores.
const FOLD_PATCHES_AT: u64 = 256;

/// Which known state of a target: what it was read with, when, and its write epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownStamp {
    fingerprint: String,
    read_at: i64,
    epoch: i64,
}

/// One app's sign-in syncs: its Graph client (and token) and target clients, made once and
/// kept, so that a sign-in pays for the requests about that user only.
pub struct UserSyncer {
    app: AppConfig,
    source: EntraSource,
    targets: Vec<SyncTarget>,
    /// Targets whose client could not be set up, with why.
    unbuilt: Vec<(TargetConfig, String)>,
}

/// Syncs one user of `app` (see the module docs). Makes the clients for this one sync; a
/// service keeps a [`UserSyncer`] instead.
pub async fn sync_user(
    config: &Config,
    app: &str,
    user: &str,
    store: &Store,
    options: UserSyncOptions,
) -> Result<UserSyncReport, RunError> {
    UserSyncer::new(config, app)?
        .sync(store, user, options)
        .await
}

/// One target's plan for the user, with what it was planned from.
struct UserPlan<'s> {
    st: &'s SyncTarget,
    plan: TargetPlan,
    /// The user's account(s) as read, and the groups idsync knows the target has.
    actual: ActualState,
    /// What idsync knew of the target, to be brought up to date after the writes.
    known: Option<KnownStamp>,
    product: ProductInfo,
}

impl UserSyncer {
    /// The clients of `app` and its targets, and the rules in force on each.
    pub fn new(config: &Config, app_name: &str) -> Result<Self, RunError> {
        let (_, app, target_configs, rules) = app_and_rules(config, app_name)?;
        let attributes = attributes_needed(app, &rules);
        let source = EntraSource::new(app, &attributes).map_err(|e| RunError::Source {
            app: app.name.clone(),
            source: Box::new(e),
        })?;
        let mut targets = Vec::new();
        let mut unbuilt = Vec::new();
        for (tc, r) in target_configs.into_iter().zip(rules) {
            match idsync_atlassian::build_target(tc) {
                Ok(t) => targets.push(SyncTarget {
                    target: t,
                    config: tc.clone(),
                    rules: Arc::new(r),
                    product: tokio::sync::Mutex::new(None),
                    known_groups: tokio::sync::Mutex::new(None),
                    folding: Arc::new(AtomicBool::new(false)),
                }),
                Err(e) => unbuilt.push((tc.clone(), e.to_string())),
            }
        }
        Ok(UserSyncer {
            app: app.clone(),
            source,
            targets,
            unbuilt,
        })
    }

    /// Syncs one user: see the module docs.
    pub async fn sync(
        &self,
        store: &Store,
        user: &str,
        options: UserSyncOptions,
    ) -> Result<UserSyncReport, RunError> {
        let started = Instant::now();
        let graph_before = self.source.request_counts();
        let targets_before: Vec<BTreeMap<String, u64>> = self
            .targets
            .iter()
            .map(|t| t.target.request_counts())
            .collect();
        let (resolved_by, one) = self.resolve(store, user).await?;
        let mut report = UserSyncReport {
            app: self.app.name.clone(),
            user: user.to_owned(),
            resolved_by,
            source_id: one.user.id.clone(),
            user_principal_name: one.user.attr("userPrincipalName").map(str::to_owned),
            outcome: UserOutcome::Synced,
            scope: one.scope.clone(),
            run: None,
            requests: BTreeMap::new(),
            elapsed_ms: 0,
        };
        if !one.scope.in_scope {
            report.outcome = UserOutcome::OutOfScope;
        } else if !one.user.enabled {
            report.outcome = UserOutcome::DisabledAtSource;
        } else {
            report.run = Some(self.sync_in_scope(store, &one, options).await?);
        }
        // Requests of this sync (of every sync in flight at the time, when a service runs
        // several at once: the clients are shared).
        let graph = RequestCounter::difference(&graph_before, &self.source.request_counts());
        for (kind, n) in graph {
            report.requests.insert(format!("graph {kind}"), n);
        }
        for (st, before) in self.targets.iter().zip(&targets_before) {
            for (kind, n) in RequestCounter::difference(before, &st.target.request_counts()) {
                report
                    .requests
                    .insert(format!("{} {kind}", st.config.name), n);
            }
        }
        report.elapsed_ms = millis(started);
        Ok(report)
    }

    /// The user given, found: an object id or UPN in Graph, a bare username through the links.
    async fn resolve(&self, store: &Store, user: &str) -> Result<(ResolvedBy, OneUser), RunError> {
        let given = user.trim();
        let unknown = |why: String| RunError::UnknownUser {
            app: self.app.name.clone(),
            user: given.to_owned(),
            why,
        };
        if given.is_empty() {
            return Err(unknown("no user given".into()));
        }
        let read = |reference: String| async move {
            self.source
                .read_one_user(&reference)
                .await
                .map_err(|e| RunError::UserSource {
                    user: reference.clone(),
                    source: Box::new(e),
                })
        };
        let graph_kind = if is_guid(given) {
            Some(ResolvedBy::ObjectId)
        } else if given.contains('@') {
            Some(ResolvedBy::UserPrincipalName)
        } else {
            None
        };
        if let Some(kind) = graph_kind
            && let Some(one) = read(given.to_owned()).await?
        {
            return Ok((kind, one));
        }
        // A username (usernames may hold an `@`, when the rules keep the domain).
        let sources: BTreeSet<String> = store
            .sources_of_username(&self.app.name, given)
            .await?
            .into_iter()
            .map(|(_, source_id)| source_id)
            .collect();
        let source_id = match sources.len() {
            0 => {
                return Err(unknown(match graph_kind {
                    Some(ResolvedBy::ObjectId) => {
                        "the directory has no user with this object id, and no account of this app has it as its username".into()
                    }
                    Some(_) => {
                        "the directory has no user with this user principal name, and no account of this app has it as its username".into()
                    }
                    None => {
                        "no account of this app has this username (a user idsync has not synced yet is found by object id or user principal name)".into()
                    }
                }));
            }
            1 => sources.into_iter().next().unwrap_or_default(),
            _ => {
                return Err(unknown(format!(
                    "accounts of this username belong to {} different source users ({}) on different targets; give the object id or user principal name",
                    sources.len(),
                    sources.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        match read(source_id.clone()).await? {
            Some(one) => Ok((ResolvedBy::Username, one)),
            None => Err(unknown(format!(
                "its accounts belong to source user {source_id}, whom the directory no longer has (the next full run deprovisions them)"
            ))),
        }
    }

    /// Plans, applies and records the sync of a user in scope, as a run with trigger `login`.
    async fn sync_in_scope(
        &self,
        store: &Store,
        one: &OneUser,
        options: UserSyncOptions,
    ) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let app = &self.app;
        // Held until the run's end is recorded, as a full run holds it.
        let lease = store
            .lock_app_within(&app.name, options.wait)
            .await
            .map_err(|e| match e {
                idsync_store::StoreError::Busy { .. } => RunError::Busy(e),
                e => RunError::Store(e),
            })?;
        let interrupted = store.close_interrupted_runs(&lease, &app.name).await?;
        let run_id = store
            .start_run(&lease, &app.name, Trigger::Login, options.dry_run)
            .await?;
        let mut report = RunReport::new(
            run_id,
            &app.name,
            Trigger::Login,
            options.dry_run,
            &interrupted,
        );
        report.source = serde_json::json!({
            "user": one.user.id,
            "user_principal_name": one.user.attr("userPrincipalName"),
            "groups": one.groups.len(),
            "scope": one.scope,
            "requests": one.requests,
        });
        for (tc, why) in &self.unbuilt {
            report.targets.push(TargetReport::failed(tc, why.clone()));
        }
        let snapshot = Arc::new(one_user_snapshot(one));
        let planned = futures::future::join_all(
            self.targets
                .iter()
                .map(|st| self.plan_target(store, st, &one.user, Arc::clone(&snapshot))),
        )
        .await;
        let mut plans = Vec::new();
        for (st, planned) in self.targets.iter().zip(planned) {
            match planned {
                Ok(Ok(p)) => plans.push(p),
                Ok(Err(why)) => report.targets.push(TargetReport::failed(&st.config, why)),
                Err(e) => return Err(e),
            }
        }
        for p in &plans {
            for o in &p.plan.operations {
                report.totals.entry(o.op.kind()).or_default().planned += 1;
            }
        }
        if options.dry_run {
            for p in &plans {
                report
                    .targets
                    .push(p.report(p.plan.operations.iter().map(planned_only).collect()));
            }
            report.status = RunStatus::Planned;
            return finish(store, report, started).await;
        }
        let applied =
            futures::future::join_all(plans.into_iter().map(|p| self.apply(store, run_id, p)))
                .await;
        for applied in applied {
            report.add_applied(applied?);
        }
        // A sign-in's few operations finish, stopping or not: never interrupted.
        report.settle_status(false);
        let report = finish(store, report, started).await;
        drop(lease);
        report
    }

    /// The target's product and version: read once, then kept for [`PRODUCT_KNOWN_FOR`].
    async fn product(&self, st: &SyncTarget) -> Result<ProductInfo, idsync_model::TargetError> {
        let mut known = st.product.lock().await;
        if let Some((at, product)) = known.as_ref()
            && at.elapsed() < PRODUCT_KNOWN_FOR
        {
            return Ok(product.clone());
        }
        let product = st.target.discover().await?;
        *known = Some((Instant::now(), product.clone()));
        Ok(product)
    }
}
