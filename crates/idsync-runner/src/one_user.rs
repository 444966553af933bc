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
//!    it wrote to is updated with what the sync did, so the next incremental run still plans
//!    from it.

use std::collections::BTreeSet;
use std::time::Duration;

use idsync_config::validate::is_guid;
use idsync_entra::{InScope, OneUser};
use idsync_model::{ProductInfo, SourceGroup, SourceSnapshot, SourceUser, TargetUser};

// The crate root holds the imports and the types every step shares.
use super::*;

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
}

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
        let (app_index, app) = config
            .apps
            .iter()
            .enumerate()
            .find(|(_, a)| a.name == app_name)
            .ok_or_else(|| RunError::UnknownApp(app_name.to_owned()))?;
        let target_configs = targets_of(config, app);
        let rules: Vec<TargetRules> = target_configs
            .iter()
            .map(|t| target_rules(app, app_index, t))
            .collect::<Result<_, _>>()?;
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
        let graph = RequestCounterDiff::between(&graph_before, &self.source.request_counts());
        for (kind, n) in graph {
            report.requests.insert(format!("graph {kind}"), n);
        }
        for (st, before) in self.targets.iter().zip(&targets_before) {
            for (kind, n) in RequestCounterDiff::between(before, &st.target.request_counts()) {
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
                report.targets.push(
                    p.report(
                        p.plan
                            .operations
                            .iter()
                            .map(|o| OpResult {
                                planned: o.clone(),
                                status: OpStatus::Planned,
                                error: None,
                                error_kind: None,
                                key: None,
                                duration_ms: 0,
                            })
                            .collect(),
                    ),
                );
            }
            report.status = RunStatus::Planned;
            return finish(store, report, started).await;
        }
        let applied =
            futures::future::join_all(plans.into_iter().map(|p| self.apply(store, run_id, p)))
                .await;
        for applied in applied {
            let (target_report, note) = applied?;
            if let Some(note) = note {
                report.notes.push(note);
            }
            record_totals(&mut report.totals, &target_report.operations);
            report.targets.push(target_report);
        }
        let any_failed = report.totals.values().any(|t| t.failed + t.skipped > 0)
            || report.targets.iter().any(|t| t.error.is_some());
        let all_failed =
            !report.targets.is_empty() && report.targets.iter().all(|t| t.error.is_some());
        report.status = if all_failed {
            RunStatus::Failed
        } else if any_failed {
            RunStatus::Partial
        } else {
            RunStatus::Done
        };
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

    /// Plans one target for the user. `Ok(Err(why))`: the target could not be planned for.
    async fn plan_target<'s>(
        &self,
        store: &Store,
        st: &'s SyncTarget,
        src: &SourceUser,
        snapshot: Arc<SourceSnapshot>,
    ) -> Result<Result<UserPlan<'s>, String>, RunError> {
        let (app, tc, target) = (&self.app.name, &st.config, &st.target);
        let product = match self.product(st).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("reading the target failed: {e}"))),
        };
        let attributes = custom_attributes(&st.rules);
        let link = store.link_of_source(app, &tc.name, &src.id).await?;
        // The account the user has (by its link) and the one the rules name now, when they
        // differ (a rename, or a first sync that may adopt an account of that name).
        let mut names: Vec<String> = Vec::new();
        if let Some(l) = &link {
            names.push(l.username.clone());
        }
        if let Some(wanted) = st.rules.users.username(src)
            && !names.iter().any(|n| n.eq_ignore_ascii_case(&wanted))
        {
            names.push(wanted);
        }
        let reads =
            futures::future::join_all(names.iter().map(|n| target.read_user(n, &attributes)));
        let known = self.known_groups(store, st, &attributes);
        let (reads, known) = futures::join!(reads, known);
        let mut accounts: Vec<(TargetUser, BTreeSet<String>)> = Vec::new();
        for read in reads {
            match read {
                Ok(Some((user, groups))) => {
                    if !accounts.iter().any(|(a, _)| a.key == user.key) {
                        accounts.push((user, groups));
                    }
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(format!("reading the user's account failed: {e}"))),
            }
        }
        if let Some(l) = &link
            && !accounts.iter().any(|(a, _)| a.key == l.key)
        {
            // Found by its key only in a full read: renamed or deleted by hand. Planning
            // without it would take it for gone.
            return Ok(Err(format!(
                "the account linked to this user ({:?}, key {}) was not found under that username (renamed or deleted in the product?); the next full run sorts it out",
                l.username, l.key
            )));
        }
        let (known, known_groups) = match known? {
            Some((stamp, groups)) => (Some(stamp), (*groups).clone()),
            None => (None, BTreeSet::new()),
        };
        let mut actual = ActualState {
            users: Vec::new(),
            groups: known_groups,
            memberships: BTreeMap::new(),
            leads: Vec::new(),
        };
        let reads_email = target.capabilities().reads_email;
        let mut managed_pairs = Vec::new();
        for (mut user, groups) in accounts {
            if !reads_email {
                user.email = store.sent_email(&tc.name, &user.key).await?;
            }
            // Only a group the account is in can it be taken out of: the managed memberships
            // of those groups are all the planner needs.
            let lower: Vec<String> = groups
                .iter()
                .map(|g| idsync_model::name::name_key(g))
                .collect();
            managed_pairs.extend(
                store
                    .managed_memberships_of(app, &tc.name, &user.key, &lower)
                    .await?,
            );
            for g in groups {
                actual
                    .memberships
                    .entry(g.clone())
                    .or_default()
                    .insert(user.key.clone());
                actual.groups.insert(g);
            }
            actual.users.push(user);
        }
        let keys: Vec<&str> = actual.users.iter().map(|u| u.key.as_str()).collect();
        let mut links = store.links_of_keys(&tc.name, &keys).await?;
        if let Some(l) = link.clone()
            && !links.contains(&l)
        {
            links.push(l);
        }
        let managed: idsync_engine::ManagedMemberships = managed_pairs.into_iter().collect();
        let (plan, actual) = {
            let (app, name, rules) = (app.clone(), tc.name.clone(), Arc::clone(&st.rules));
            let target = Arc::clone(target);
            let nested_groups = self.app.nested_groups;
            blocking(move || {
                let plan = idsync_engine::plan(&PlanInput {
                    app: &app,
                    target: &name,
                    capabilities: target.capabilities(),
                    snapshot: &snapshot,
                    source_complete: true,
                    actual: &actual,
                    links: &links,
                    managed_memberships: &managed,
                    users: &rules.users,
                    groups: &rules.groups,
                    nested_groups,
                });
                (plan, actual)
            })
            .await
        };
        let mut plan = plan;
        let mine: BTreeSet<String> = link
            .iter()
            .map(|l| l.key.clone())
            .chain(
                plan.adoptions
                    .iter()
                    .filter(|a| a.source_id == src.id)
                    .map(|a| a.key.clone()),
            )
            .collect();
        confine(&mut plan, &src.id, &mine);
        Ok(Ok(UserPlan {
            st,
            plan,
            actual,
            known,
            product,
        }))
    }

    /// The names of the groups idsync knows the target has, when what it knows may be planned
    /// from (as a run would decide), with the stamp of that state.
    async fn known_groups(
        &self,
        store: &Store,
        st: &SyncTarget,
        attributes: &[String],
    ) -> Result<Option<(KnownStamp, Arc<BTreeSet<String>>)>, RunError> {
        let tc = &st.config;
        if tc.full_read_every_minutes == 0 {
            return Ok(None);
        }
        let Some((fingerprint, read_at, epoch)) = store.known_target_stamp(&tc.name).await? else {
            return Ok(None);
        };
        let max_age =
            i64::try_from(tc.full_read_every_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
        if fingerprint != self::fingerprint(tc, attributes)
            || unix_now().saturating_sub(read_at) >= max_age
        {
            return Ok(None);
        }
        let stamp = KnownStamp {
            fingerprint,
            read_at,
            epoch,
        };
        let mut cached = st.known_groups.lock().await;
        if let Some((at, groups)) = cached.as_ref()
            && *at == stamp
        {
            return Ok(Some((stamp, Arc::clone(groups))));
        }
        let Some(known) = store.known_target_state(&tc.name).await? else {
            return Ok(None);
        };
        if known.epoch != stamp.epoch {
            // Written to since the stamp was read: planned as if the groups were unknown (a
            // missing one is then created, or found there already).
            return Ok(None);
        }
        let groups =
            blocking(move || idsync_engine::packed::unpack_group_names(&known.state)).await;
        Ok(groups.ok().map(|groups| {
            let groups = Arc::new(groups);
            *cached = Some((stamp.clone(), Arc::clone(&groups)));
            (stamp, groups)
        }))
    }

    /// Applies one target's plan, recording as a full run does, then brings what idsync knows
    /// of the target up to date.
    async fn apply(
        &self,
        store: &Store,
        run_id: i64,
        p: UserPlan<'_>,
    ) -> Result<(TargetReport, Option<String>), RunError> {
        let app = &self.app.name;
        let UserPlan {
            st,
            mut plan,
            actual,
            known,
            product,
        } = p;
        let tc = &st.config;
        store
            .apply_bookkeeping(app, &tc.name, &outcome::from_plan(app, &plan))
            .await?;
        let operations = std::mem::take(&mut plan.operations);
        if operations.is_empty() {
            let done = UserPlan {
                st,
                plan,
                actual,
                known,
                product,
            };
            return Ok((done.report(Vec::new()), None));
        }
        // What idsync knows of the target, to bring up to date once written to: read before
        // the writes begin, which drop it.
        let known = match known {
            Some(stamp) => store
                .known_target_state(&tc.name)
                .await?
                .filter(|k| k.epoch == stamp.epoch && k.fingerprint == stamp.fingerprint)
                .map(|k| (stamp, k.state)),
            None => None,
        };
        // What idsync knows of the target stops holding the moment this writes.
        let epoch = store.begin_target_writes(&tc.name).await?;
        let journal = RunJournal {
            store,
            run_id,
            app,
            target: &tc.name,
            remember_emails: !st.target.capabilities().reads_email,
            // A sign-in sync is a handful of operations: it finishes, stopping or not.
            progress: &Quiet,
        };
        let options = ExecOptions {
            concurrency: tc.concurrency.max(1),
            adopt_on_create_conflict: st.rules.users.config.adopt_by.contains(&AdoptBy::Username),
            ..ExecOptions::default()
        };
        let mut results =
            idsync_engine::execute(st.target.as_ref(), operations, options, &journal, |_| {}).await;
        known_state::explain_conflicts(&actual, &mut results);
        let note = match known {
            None => None,
            Some((stamp, bytes)) => {
                let capabilities = st.target.capabilities().clone();
                let (after, back) = blocking(move || {
                    let after = known_after(&bytes, &actual, &capabilities, &results);
                    (after, results)
                })
                .await;
                results = back;
                match after {
                    Ok((bytes, groups)) => {
                        let saved = store
                            .save_target_state(
                                &tc.name,
                                &stamp.fingerprint,
                                stamp.read_at,
                                epoch,
                                &bytes,
                            )
                            .await?;
                        if saved {
                            // The next sign-in plans with these groups without decoding them.
                            *st.known_groups.lock().await =
                                Some((KnownStamp { epoch, ..stamp }, Arc::new(groups)));
                        }
                        None
                    }
                    Err(why) => Some(format!(
                        "{}: {why}; the next run reads the target in full",
                        tc.name
                    )),
                }
            }
        };
        let done = UserPlan {
            st,
            plan,
            actual: ActualState::default(),
            known: None,
            product,
        };
        Ok((done.report(results), note))
    }
}

impl UserPlan<'_> {
    fn report(&self, operations: Vec<OpResult>) -> TargetReport {
        TargetReport {
            target: self.st.config.name.clone(),
            kind: self.st.target.kind().to_string(),
            error: None,
            state: StateSource::OneUser,
            product: Some(self.product.to_string()),
            managed_users: self.plan.managed_users,
            adoptions: self.plan.adoptions.clone(),
            warnings: self.plan.warnings.clone(),
            operations,
        }
    }
}

/// What idsync knew of a target, brought up to date with a sign-in sync: the user's accounts
/// as just read (they may have changed by hand since), with what the sync did to them worked out
/// as a full run works it out (`known_state::state_after`, on those accounts alone), spliced
/// into the packed state in place of what it held of them. Returns the packed state and its
/// groups' names.
fn known_after(
    bytes: &[u8],
    fresh: &ActualState,
    capabilities: &idsync_model::Capabilities,
    results: &[OpResult],
) -> Result<(Vec<u8>, BTreeSet<String>), String> {
    let after = known_state::state_after(fresh.clone(), capabilities, results)
        .map_err(|e| e.to_string())?;
    let accounts: Vec<(TargetUser, BTreeSet<String>)> = after
        .users
        .iter()
        .map(|u| {
            let groups = after
                .memberships
                .iter()
                .filter(|(_, members)| members.contains(&u.key))
                .map(|(g, _)| g.clone())
                .collect();
            (u.clone(), groups)
        })
        .collect();
    // Groups created by the sync (those it was only told of are in the state already).
    let created: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status == OpStatus::Done)
        .filter_map(|r| match &r.planned.op {
            Operation::CreateGroup { group } => Some(group.clone()),
            _ => None,
        })
        .collect();
    idsync_engine::packed::splice_accounts(bytes, &accounts, &created).map_err(|e| e.to_string())
}

/// The source as a full run would see it for this user alone: the user, and each of their
/// groups with them as a member. Through nesting, every group above theirs is one of them
/// (`transitiveMemberOf`), so nothing is lost by listing no group inside another.
fn one_user_snapshot(one: &OneUser) -> SourceSnapshot {
    SourceSnapshot {
        users: BTreeMap::from([(one.user.id.clone(), one.user.clone())]),
        groups: one
            .groups
            .iter()
            .map(|(id, name)| {
                (
                    id.clone(),
                    SourceGroup {
                        id: id.clone(),
                        display_name: name.clone(),
                        user_members: BTreeSet::from([one.user.id.clone()]),
                        group_members: BTreeSet::new(),
                    },
                )
            })
            .collect(),
        membership_unknown: BTreeSet::new(),
        maybe_in_scope: BTreeSet::new(),
    }
}

/// Confines a plan to one source user: keeps only operations about `source_id` on its own
/// accounts (`keys`, or one being created for it) and the creation of groups it is being added
/// to; drops, with a warning each, everything else — any other user's operation, any
/// deprovisioning (left to full runs and their guard) and any group deletion. Links and
/// adoptions of anyone else are dropped too, and no link is dropped: a target state holding
/// one user cannot tell that another user's account is gone.
pub(crate) fn confine(plan: &mut TargetPlan, source_id: &str, keys: &BTreeSet<String>) {
    let ours = |o: &PlannedOperation| -> bool {
        if o.source_id.as_deref() != Some(source_id) {
            return false;
        }
        match &o.op {
            Operation::CreateUser { .. } => true,
            // A membership of an account being created: its key comes once it exists.
            Operation::AddMembership { key, .. } if key.is_empty() => true,
            Operation::RenameUser { key, .. }
            | Operation::UpdateUser { key, .. }
            | Operation::SetAttribute { key, .. }
            | Operation::ReactivateUser { key, .. }
            | Operation::AddMembership { key, .. }
            | Operation::RemoveMembership { key, .. } => keys.contains(key),
            Operation::DeactivateUser { .. }
            | Operation::DeleteUser { .. }
            | Operation::HandOverLead { .. }
            | Operation::CreateGroup { .. }
            | Operation::DeleteGroup { .. } => false,
        }
    };
    let mut kept: Vec<PlannedOperation> = Vec::with_capacity(plan.operations.len());
    let mut dropped: Vec<PlannedOperation> = Vec::new();
    let mut groups_needed: BTreeSet<String> = BTreeSet::new();
    let (creations, others): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.operations)
        .into_iter()
        .partition(|o| matches!(o.op, Operation::CreateGroup { .. }));
    for o in others {
        if ours(&o) {
            if let Operation::AddMembership { group, .. } = &o.op {
                groups_needed.insert(idsync_model::name::name_key(group));
            }
            kept.push(o);
        } else {
            dropped.push(o);
        }
    }
    for o in creations {
        match &o.op {
            Operation::CreateGroup { group }
                if groups_needed.contains(&idsync_model::name::name_key(group)) =>
            {
                kept.push(o);
            }
            _ => dropped.push(o),
        }
    }
    // Plan order (kind by kind) as the planner made it.
    kept.sort_by_key(|o| o.op.kind());
    for o in &dropped {
        let why = match o.op.kind() {
            OperationKind::DeactivateUser
            | OperationKind::DeleteUser
            | OperationKind::HandOverLead => "deprovisioning is left to full runs",
            OperationKind::DeleteGroup => "a sign-in sync never deletes groups",
            OperationKind::CreateGroup => "no membership of this user needs the group",
            _ => "it is not about this user's own account",
        };
        let subject = o.op.user().or(o.op.group()).unwrap_or_default();
        tracing::warn!(target = %plan.target, op = %o.op.kind(), subject, why, "sign-in sync: operation dropped");
        plan.warnings.push(format!(
            "sign-in sync: {} of {subject:?} dropped: {why}",
            o.op.kind()
        ));
    }
    plan.operations = kept;
    plan.adoptions.retain(|a| a.source_id == source_id);
    plan.claimed_memberships
        .retain(|(_, key)| keys.contains(key) || plan.adoptions.iter().any(|a| &a.key == key));
    if !plan.dropped_links.is_empty() {
        plan.warnings.push(format!(
            "sign-in sync: {} link(s) to accounts not found left for the next full run to check",
            plan.dropped_links.len()
        ));
        plan.dropped_links.clear();
    }
    plan.rename_reports.retain(|l| l.source_id == source_id);
}

/// Differences of request counters, by kind.
struct RequestCounterDiff;

impl RequestCounterDiff {
    fn between(
        before: &BTreeMap<String, u64>,
        after: &BTreeMap<String, u64>,
    ) -> Vec<(String, u64)> {
        after
            .iter()
            .filter_map(|(kind, n)| {
                let d = n.saturating_sub(before.get(kind).copied().unwrap_or(0));
                (d > 0).then(|| (kind.clone(), d))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_engine::Adoption;
    use idsync_model::UserChanges;
    use idsync_model::link::Link;

    fn op(op: Operation, source: Option<&str>) -> PlannedOperation {
        PlannedOperation {
            target: "jira".into(),
            op,
            reason: "test".into(),
            source_id: source.map(str::to_owned),
        }
    }

    fn link(source: &str, key: &str) -> Link {
        Link {
            app: "main".into(),
            source_id: source.into(),
            key: key.into(),
            username: key.to_lowercase(),
            kept_username: None,
            rename_reported: None,
        }
    }

    #[test]
    fn a_plan_is_confined_to_the_users_own_accounts() {
        let add = |group: &str, key: &str, user: &str, source: &str| {
            op(
                Operation::AddMembership {
                    group: group.into(),
                    key: key.into(),
                    user: user.into(),
                },
                Some(source),
            )
        };
        let mut plan = TargetPlan {
            target: "jira".into(),
            operations: vec![
                op(
                    Operation::CreateGroup {
                        group: "Devs".into(),
                    },
                    None,
                ),
                op(
                    Operation::CreateGroup {
                        group: "unused".into(),
                    },
                    None,
                ),
                op(
                    Operation::UpdateUser {
                        key: "K1".into(),
                        user: "ada".into(),
                        changes: UserChanges {
                            display_name: Some("Ada L".into()),
                            email: None,
                        },
                    },
                    Some("u1"),
                ),
                // Another user's change, and ours on an account that is not ours.
                op(
                    Operation::UpdateUser {
                        key: "K2".into(),
                        user: "bob".into(),
                        changes: UserChanges::default(),
                    },
                    Some("u2"),
                ),
                op(
                    Operation::RenameUser {
                        key: "K2".into(),
                        user: "bob".into(),
                        new_username: "ada".into(),
                    },
                    Some("u1"),
                ),
                add("devs", "K1", "ada", "u1"),
                add("ops", "K2", "bob", "u2"),
                op(
                    Operation::RemoveMembership {
                        group: "qa".into(),
                        key: "K2".into(),
                        user: "bob".into(),
                    },
                    Some("u2"),
                ),
                op(
                    Operation::DeactivateUser {
                        key: "K1".into(),
                        user: "ada".into(),
                    },
                    Some("u1"),
                ),
                op(
                    Operation::DeactivateUser {
                        key: "K3".into(),
                        user: "cy".into(),
                    },
                    None,
                ),
                op(
                    Operation::DeleteGroup {
                        group: "old".into(),
                    },
                    None,
                ),
            ],
            adoptions: vec![Adoption {
                source_id: "u2".into(),
                key: "K2".into(),
                user: "bob".into(),
                reason: "test".into(),
                kept_username: None,
            }],
            claimed_memberships: vec![("devs".into(), "K1".into()), ("ops".into(), "K2".into())],
            dropped_links: vec![link("u3", "K3")],
            rename_reports: vec![link("u2", "K2")],
            warnings: Vec::new(),
            managed_users: 2,
        };
        confine(&mut plan, "u1", &BTreeSet::from(["K1".to_owned()]));
        let kept: Vec<(OperationKind, Option<&str>)> = plan
            .operations
            .iter()
            .map(|o| (o.op.kind(), o.op.user().or(o.op.group())))
            .collect();
        assert_eq!(
            kept,
            [
                (OperationKind::CreateGroup, Some("Devs")),
                (OperationKind::UpdateUser, Some("ada")),
                (OperationKind::AddMembership, Some("ada")),
            ]
        );
        assert_eq!(plan.warnings.len(), 9, "{:#?}", plan.warnings);
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("deactivate_user of \"ada\" dropped: deprovisioning"))
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("delete_group of \"old\" dropped"))
        );
        assert!(plan.adoptions.is_empty());
        assert_eq!(
            plan.claimed_memberships,
            [("devs".to_owned(), "K1".to_owned())]
        );
        assert!(plan.dropped_links.is_empty());
        assert!(plan.rename_reports.is_empty());
    }
}
