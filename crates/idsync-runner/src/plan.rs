//! Step 3 and 4: each target's plan, made on a thread of its own, and the mass-change guard
//! over the whole app.

// The crate root holds the imports and the types every step shares.
use super::*;

/// The rules in force for one target of an app (overrides applied), compiled.
pub(crate) struct TargetRules {
    pub(crate) users: CompiledUserRules,
    pub(crate) groups: CompiledGroupRules,
}

pub(crate) fn target_rules(
    app: &AppConfig,
    app_index: usize,
    target: &TargetConfig,
) -> Result<TargetRules, RunError> {
    let (users, _) = app.user_rules_for(&target.name);
    let groups = app
        .overrides
        .get(&target.name)
        .and_then(|o| o.groups.as_ref())
        .unwrap_or(&app.groups);
    Ok(TargetRules {
        // The target's own username restrictions (Confluence: lower case) come with the rules.
        users: CompiledUserRules::compile(users, &format!("apps[{app_index}].users"))?
            .for_target(target.kind),
        groups: CompiledGroupRules::compile(groups, &format!("apps[{app_index}].groups"))?,
    })
}

/// The client of each target the app feeds; one that cannot be set up is reported failed.
pub(crate) fn build_targets<'c>(
    target_configs: &[&'c TargetConfig],
    rules: Vec<TargetRules>,
    report: &mut RunReport,
) -> Vec<(Arc<dyn Target>, &'c TargetConfig, Arc<TargetRules>)> {
    let mut targets = Vec::new();
    for (tc, r) in target_configs.iter().copied().zip(rules) {
        match idsync_atlassian::build_target(tc) {
            Ok(t) => targets.push((t, tc, Arc::new(r))),
            Err(e) => report.targets.push(TargetReport::failed(tc, e.to_string())),
        }
    }
    targets
}

/// Step 3: plans every target that could be read, all at once, each on a thread of its own
/// (a target whose leads changed by hand is planned again with them), and gathers what the
/// guard counts against.
pub(crate) async fn plan_all<'c>(
    app: &AppConfig,
    targets: Vec<(Arc<dyn Target>, &'c TargetConfig, Arc<TargetRules>)>,
    reads: Vec<Result<TargetInputs, KnowError>>,
    snapshot: Arc<idsync_model::SourceSnapshot>,
    report: &mut RunReport,
) -> Result<PlannedApp<'c>, RunError> {
    let mut jobs: Vec<PlanJob> = Vec::new();
    let mut job_targets: Vec<&TargetConfig> = Vec::new();
    for ((target, tc, r), known) in targets.into_iter().zip(reads) {
        let known = match known {
            Ok(k) => k,
            Err(KnowError::Store(e)) => return Err(e.into()),
            Err(KnowError::Target(e)) => {
                report.targets.push(TargetReport::failed(
                    tc,
                    format!("reading the target failed: {e}"),
                ));
                continue;
            }
        };
        if let Some(note) = &known.known.note {
            report.notes.push(format!("{}: {note}", tc.name));
        }
        job_targets.push(tc);
        jobs.push(PlanJob {
            app: app.name.clone(),
            target_name: tc.name.clone(),
            target,
            snapshot: Arc::clone(&snapshot),
            known: known.known,
            links: known.links,
            managed: known.managed,
            rules: r,
            nested_groups: app.nested_groups,
        });
    }
    let mut planner_ms = 0;
    let mut plans: Vec<Planned> = Vec::new();
    // For the guard, which counts people rather than accounts: the source users the app
    // manages an account of, on any target; and the memberships it manages.
    let mut managed_people: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut managed_memberships = 0usize;
    let planned = futures::future::join_all(jobs.into_iter().map(plan_one)).await;
    for ((job, plan, ms), tc) in planned.into_iter().zip(job_targets) {
        planner_ms += ms;
        let mut plan = plan;
        let mut job = job;
        if job.target.capabilities().leads
            && job.known.source != StateSource::FullRead
            && plan.deprovisions() > 0
        {
            // Leads change by hand all the time: who leads what is read afresh before anyone
            // is deprovisioned, and the plan made again with it.
            match job.target.read_leads().await {
                Ok(leads) if leads == job.known.state.leads => {}
                Ok(leads) => {
                    job.known.state.leads = leads;
                    let (again, replanned, ms) = plan_one(job).await;
                    (job, plan) = (again, replanned);
                    planner_ms += ms;
                }
                Err(e) => {
                    report.targets.push(TargetReport::failed(
                        tc,
                        format!("reading the project and component leads failed: {e}"),
                    ));
                    continue;
                }
            }
        }
        let PlanJob {
            target,
            known,
            links,
            managed,
            rules,
            ..
        } = job;
        managed_people.extend(
            links
                .iter()
                .filter(|l| l.app == app.name)
                .map(|l| l.source_id.clone())
                .chain(plan.adoptions.iter().map(|a| a.source_id.clone())),
        );
        managed_memberships += managed.len();
        plans.push(Planned {
            target,
            tc,
            plan,
            known,
            adopt_on_create_conflict: rules.users.config.adopt_by.contains(&AdoptBy::Username),
        });
        // What only planning needed is freed on a blocking thread, off the run's path: at 100k
        // users that is millions of small allocations.
        drop(tokio::task::spawn_blocking(move || drop((links, managed))));
    }
    drop(tokio::task::spawn_blocking(move || drop(snapshot)));
    report.planner_ms = planner_ms;
    Ok(PlannedApp {
        plans,
        managed_people,
        managed_memberships,
    })
}

/// Every target's plan, with what the guard counts the plans against.
pub(crate) struct PlannedApp<'c> {
    pub(crate) plans: Vec<Planned<'c>>,
    /// The source users the app manages an account of, on any target (the guard counts people).
    pub(crate) managed_people: std::collections::HashSet<String>,
    pub(crate) managed_memberships: usize,
}

/// Step 4: the mass-change guard, over the whole app: holds the run (returns why) when it
/// deprovisions or removes more than the limits allow and no approval covers it. Uses up an
/// approval the run applies with.
pub(crate) async fn guard_step(
    store: &Store,
    app: &AppConfig,
    run_id: i64,
    dry_run: bool,
    planned: &PlannedApp<'_>,
    users_in_scope: usize,
    report: &mut RunReport,
) -> Result<Option<guard::Hold>, RunError> {
    let PlannedApp {
        plans,
        managed_people,
        managed_memberships,
    } = planned;
    let managed_memberships = *managed_memberships;
    let mut deprovisions: BTreeSet<guard::Deprovision> = BTreeSet::new();
    let mut people: BTreeMap<guard::Deprovision, String> = BTreeMap::new();
    let mut membership_removals: BTreeSet<guard::MembershipRemoval> = BTreeSet::new();
    for p in plans.iter() {
        for o in &p.plan.operations {
            match &o.op {
                Operation::DeactivateUser { key, .. } | Operation::DeleteUser { key, .. } => {
                    let account = (p.tc.name.clone(), key.clone());
                    if let Some(person) = &o.source_id {
                        people.insert(account.clone(), person.clone());
                    }
                    deprovisions.insert(account);
                }
                Operation::RemoveMembership { group, key, .. } => {
                    membership_removals.insert((
                        p.tc.name.clone(),
                        idsync_model::name::name_key(group),
                        key.clone(),
                    ));
                }
                _ => {}
            }
        }
    }
    let approval = store.pending_approval(&app.name, unix_now()).await?;
    let previous_users_in_scope = store.source_users_in_scope(&app.name).await?;
    let guard_input = guard::GuardInput {
        deprovisions: &deprovisions,
        people: &people,
        managed_people: managed_people.len(),
        membership_removals: &membership_removals,
        managed_memberships,
        users_in_scope,
        previous_users_in_scope,
        approved: approval.as_ref().map(|a| &a.held),
    };
    let hold = guard::check(&app.guard, &guard_input);
    if let Some(note) = guard::shrink_note(&app.guard, &guard_input) {
        report.notes.push(note);
    }
    if let Some(approval) = &approval
        && !dry_run
    {
        // An approval is good for this one run, whatever it does: left unused, it would let
        // through a later, unrelated plan.
        store.use_approval(approval.run_id, run_id).await?;
        report.notes.push(format!(
            "applying with the approval of run {} (its {} deprovision(s) and {} membership removal(s), and no others)",
            approval.run_id,
            approval.held.accounts.len(),
            approval.held.memberships.len()
        ));
    }

    Ok(hold)
}

/// The custom attributes a target's rules write, which its reads must bring back.
pub(crate) fn custom_attributes(rules: &TargetRules) -> Vec<String> {
    rules
        .users
        .config
        .custom_attributes
        .keys()
        .cloned()
        .collect()
}

/// One target's plan to make: everything it is made from, owned, so that each can be made on
/// a thread of its own.
pub(crate) struct PlanJob {
    pub(crate) app: String,
    pub(crate) target_name: String,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) snapshot: Arc<idsync_model::SourceSnapshot>,
    pub(crate) known: KnownTarget,
    pub(crate) links: Vec<idsync_engine::Link>,
    pub(crate) managed: idsync_engine::ManagedMemberships,
    pub(crate) rules: Arc<TargetRules>,
    pub(crate) nested_groups: bool,
}

impl PlanJob {
    /// The plan, and how long the planner took (ms).
    pub(crate) fn plan(&self) -> (TargetPlan, u64) {
        let planning = Instant::now();
        let plan = idsync_engine::plan(&PlanInput {
            app: &self.app,
            target: &self.target_name,
            capabilities: self.target.capabilities(),
            snapshot: &self.snapshot,
            source_complete: true,
            actual: &self.known.state,
            links: &self.links,
            managed_memberships: &self.managed,
            users: &self.rules.users,
            groups: &self.rules.groups,
            nested_groups: self.nested_groups,
        });
        (plan, millis(planning))
    }
}

/// Plans one target on a blocking thread: the planner is pure CPU work, and the targets'
/// plans are made side by side.
pub(crate) async fn plan_one(job: PlanJob) -> (PlanJob, TargetPlan, u64) {
    blocking(move || {
        let (plan, ms) = job.plan();
        (job, plan, ms)
    })
    .await
}
