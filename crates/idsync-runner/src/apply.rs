//! Step 5: applying the plans, every step made durable as it goes (the journal), and keeping
//! what each target holds afterwards; or, for a dry run or a held one, the plans unapplied.

// The crate root holds the imports and the types every step shares.
use super::*;

/// A dry run, or a run the guard holds: every plan goes into the report unapplied, and a held
/// one is kept in the store for review and approval.
pub(crate) async fn keep_unapplied(
    store: &Store,
    app: &AppConfig,
    run_id: i64,
    plans: &[Planned<'_>],
    hold: Option<guard::Hold>,
    report: &mut RunReport,
) -> Result<(), RunError> {
    for planned in plans {
        report.targets.push(planned.report_unapplied());
    }
    if let Some(hold) = hold {
        let plan_json = serde_json::to_value(&report.targets).unwrap_or_default();
        store.hold_run(run_id, &plan_json, &hold.held).await?;
        report.notes.push(format!(
            "held: {}. Review the plan (`idsync history --config FILE --run {run_id}`), then approve it with `idsync approve --config FILE {run_id}`, which applies it at once, within guard.approval_expires_minutes = {} minutes",
            hold.reason, app.guard.approval_expires_minutes
        ));
        report.hold = Some(hold);
        report.status = RunStatus::Held;
    } else {
        report.status = RunStatus::Planned;
    }
    Ok(())
}

/// Step 5: applies every target's plan at once, each within its own concurrency, recording as
/// it goes, and says how the run ended.
pub(crate) async fn apply_all(
    store: &Store,
    run_id: i64,
    app: &AppConfig,
    plans: Vec<Planned<'_>>,
    progress: Arc<dyn Progress>,
    report: &mut RunReport,
) -> Result<(), RunError> {
    let total: usize = plans.iter().map(|p| p.plan.operations.len()).sum();
    progress.planned(total);
    progress.phase(phase::APPLYING);
    let applied = futures::future::join_all(plans.into_iter().map(|planned| {
        let span = tracing::info_span!("target", target = %planned.tc.name);
        apply_target(store, run_id, &app.name, planned, Arc::clone(&progress)).instrument(span)
    }))
    .await;

    progress.phase(phase::RECORDING);
    for applied in applied {
        report.add_applied(applied?);
    }
    let interrupted = report.targets.iter().any(|t| {
        t.operations
            .iter()
            .any(|r| r.error.as_deref() == Some(idsync_engine::executor::STOPPING))
    });
    report.settle_status(interrupted);
    Ok(())
}

/// Applies one target's plan, making every step durable as it goes (see [`RunJournal`]), then
/// keeps what the target holds afterwards. Returns the target's report and a note for the run.
pub(crate) async fn apply_target(
    store: &Store,
    run_id: i64,
    app: &str,
    planned: Planned<'_>,
    progress: Arc<dyn Progress>,
) -> Result<(TargetReport, Option<String>), RunError> {
    let Planned {
        target,
        tc,
        mut plan,
        known,
        adopt_on_create_conflict,
    } = planned;
    // What follows from the plan itself (adoptions, memberships already as wanted, links to
    // accounts deleted by hand) is kept before anything is written.
    store
        .apply_bookkeeping(app, &tc.name, &outcome::from_plan(app, &plan))
        .await?;
    // What the store knows of the target stops holding the moment this run writes; if the
    // store cannot record that, nothing is written to the target.
    let epoch = if plan.operations.is_empty() {
        None
    } else {
        Some(store.begin_target_writes(&tc.name).await)
    };
    let options = ExecOptions {
        concurrency: tc.concurrency.max(1),
        adopt_on_create_conflict,
        ..ExecOptions::default()
    };
    // The executor takes the operations: the report needs only the plan's other parts.
    let operations = std::mem::take(&mut plan.operations);
    let results = if matches!(epoch, Some(Err(_))) {
        Vec::new()
    } else {
        let journal = RunJournal {
            store,
            run_id,
            app,
            target: &tc.name,
            remember_emails: !target.capabilities().reads_email,
            progress: progress.as_ref(),
        };
        idsync_engine::execute(target.as_ref(), operations, options, &journal, |r| {
            progress.applied(r)
        })
        .await
    };
    let mut results = results;
    known_state::explain_conflicts(&known.state, &mut results);
    let known_source = known.source;
    let product = Some(known.product.to_string());
    let (fingerprint, read_at) = (known.fingerprint.clone(), known.read_at);
    let (results, after) = after_run(tc, Arc::clone(&target), known, results).await;
    let note = match epoch {
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(epoch)) => keep_known_state(store, tc, &fingerprint, read_at, after, epoch).await?,
        None => None,
    };
    Ok((
        TargetReport {
            target: tc.name.clone(),
            kind: target.kind().to_string(),
            error: None,
            state: known_source,
            product,
            managed_users: plan.managed_users,
            adoptions: plan.adoptions,
            warnings: plan.warnings,
            operations: results,
        },
        note,
    ))
}

/// Makes a run's progress on one target durable as the executor goes: before each phase, the
/// accounts it will create and the memberships it will add; after each batch of results, their
/// history rows and bookkeeping, in one transaction.
pub(crate) struct RunJournal<'a> {
    pub(crate) store: &'a Store,
    pub(crate) run_id: i64,
    pub(crate) app: &'a str,
    pub(crate) target: &'a str,
    /// The target does not report e-mail addresses: those sent are remembered.
    pub(crate) remember_emails: bool,
    /// Asked whether idsync is stopping.
    pub(crate) progress: &'a dyn Progress,
}

#[async_trait::async_trait]
impl idsync_engine::executor::Journal for RunJournal<'_> {
    async fn before_phase(&self, operations: &[PlannedOperation]) -> Result<(), String> {
        let intentions = outcome::intentions(self.app, operations);
        self.store
            .record_intentions(self.run_id, self.target, self.app, &intentions)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record(&self, results: &[OpResult]) -> Result<(), String> {
        let mut books = outcome::Bookkeeping::default();
        for r in results {
            outcome::from_result(self.app, r, &mut books);
        }
        if !self.remember_emails {
            books.sent_emails.clear();
        }
        self.store
            .record_progress(self.run_id, self.app, self.target, results, &books)
            .await
            .map_err(|e| e.to_string())
    }

    fn stopping(&self) -> bool {
        self.progress.stopping()
    }
}

/// One target's plan, with what it was planned from.
pub(crate) struct Planned<'c> {
    pub(crate) target: Arc<dyn Target>,
    pub(crate) tc: &'c TargetConfig,
    pub(crate) plan: TargetPlan,
    pub(crate) known: KnownTarget,
    /// See [`ExecOptions::adopt_on_create_conflict`].
    pub(crate) adopt_on_create_conflict: bool,
}

impl Planned<'_> {
    /// The target's report for a plan that is not applied (a dry run, a held plan).
    pub(crate) fn report_unapplied(&self) -> TargetReport {
        TargetReport {
            target: self.tc.name.clone(),
            kind: self.target.kind().to_string(),
            error: None,
            state: self.known.source,
            product: Some(self.known.product.to_string()),
            managed_users: self.plan.managed_users,
            adoptions: self.plan.adoptions.clone(),
            warnings: self.plan.warnings.clone(),
            operations: self.plan.operations.iter().map(planned_only).collect(),
        }
    }
}

/// What a target holds after a run, packed to be kept: `None` when it is not kept
/// (`full_read_every_minutes = 0`), `Err` with why the next run must read the target in full.
pub(crate) type AfterRun = Option<Result<Vec<u8>, String>>;

/// Works out what the target holds now that `results` are applied, and packs it, on a blocking
/// thread (CPU work on a state of 100k accounts or more). Gives the results back.
pub(crate) async fn after_run(
    tc: &TargetConfig,
    target: Arc<dyn Target>,
    known: KnownTarget,
    results: Vec<OpResult>,
) -> (Vec<OpResult>, AfterRun) {
    if tc.full_read_every_minutes == 0 {
        return (results, None);
    }
    blocking(move || {
        let packed = known_state::state_after(known.state, target.capabilities(), &results)
            .map_err(|e| e.to_string())
            .and_then(|after| {
                idsync_engine::packed::pack_target_state(&after).map_err(|e| e.to_string())
            });
        (results, Some(packed))
    })
    .await
}

/// After a run wrote to a target: keeps what the target now holds, or says why the next run
/// has to read it in full.
pub(crate) async fn keep_known_state(
    store: &Store,
    tc: &TargetConfig,
    fingerprint: &str,
    read_at: i64,
    after: AfterRun,
    epoch: i64,
) -> Result<Option<String>, RunError> {
    match after {
        None => Ok(None),
        Some(Ok(bytes)) => {
            store
                .save_target_state(&tc.name, fingerprint, read_at, epoch, &bytes)
                .await?;
            Ok(None)
        }
        Some(Err(why)) => Ok(Some(format!(
            "{}: {why}; the next run reads the target in full",
            tc.name
        ))),
    }
}
