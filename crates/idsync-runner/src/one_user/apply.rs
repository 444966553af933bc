//! Applying one target's plan for the user signing in, recorded as a full run records it, and
//! what idsync knows of the target brought up to date with a patch.

use super::*;

impl UserSyncer {
    /// Applies one target's plan, recording as a full run does, then brings what idsync knows
    /// of the target up to date.
    pub(super) async fn apply(
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
        // What idsync knows of the target stops holding the moment this writes: with a known
        // state planned from, it is kept and brought up to date with a patch afterwards.
        let epoch = match &known {
            Some(_) => store.begin_target_patch(&tc.name).await?,
            None => store.begin_target_writes(&tc.name).await?,
        };
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
            Some(stamp) => {
                let capabilities = st.target.capabilities().clone();
                let (patch, back) = blocking(move || {
                    let patch = accounts_patch(&actual, &capabilities, &results);
                    (patch, results)
                })
                .await;
                results = back;
                match patch {
                    Ok(patch) => {
                        self.keep_patch(store, st, stamp, epoch, &patch).await?;
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

    /// Keeps what a sign-in did to a target as a patch of the known state it planned from
    /// (`stamp`), and the groups the next sign-in plans with. Once [`FOLD_PATCHES_AT`] patches
    /// have gathered, they are folded into the state in the background, off any sign-in's time.
    async fn keep_patch(
        &self,
        store: &Store,
        st: &SyncTarget,
        stamp: KnownStamp,
        epoch: i64,
        patch: &AccountsPatch,
    ) -> Result<(), RunError> {
        let tc = &st.config;
        let saved = store
            .save_target_patch(
                &tc.name,
                &stamp.fingerprint,
                stamp.epoch,
                epoch,
                &patch.encode(),
            )
            .await?;
        let Some(pending) = saved else {
            // Replaced, or written to by another run, meanwhile: the next run reads the
            // target in full.
            return Ok(());
        };
        {
            let mut cached = st.known_groups.lock().await;
            *cached = match cached.take() {
                Some((at, groups)) if at == stamp => {
                    let mut groups = (*groups).clone();
                    add_group_names(&mut groups, patch);
                    Some((KnownStamp { epoch, ..stamp }, Arc::new(groups)))
                }
                _ => None,
            };
        }
        if pending >= FOLD_PATCHES_AT && !st.folding.swap(true, Ordering::AcqRel) {
            let (store, target, folding) =
                (store.clone(), tc.name.clone(), Arc::clone(&st.folding));
            tokio::spawn(async move {
                if let Err(why) = fold_known_state(&store, &target).await {
                    // The patches stay, and are folded by whoever reads the state next.
                    tracing::warn!(target = %target, "folding sign-in patches failed: {why}");
                }
                folding.store(false, Ordering::Release);
            });
        }
        Ok(())
    }
}

/// Folds a target's sign-in patches into its known state, saved only if nothing wrote to the
/// target meanwhile.
async fn fold_known_state(store: &Store, target: &str) -> Result<(), String> {
    let Some(known) = store
        .known_target_state(target)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if known.patches.is_empty() {
        return Ok(());
    }
    let (fingerprint, read_at, epoch) = (known.fingerprint, known.read_at, known.epoch);
    let (state, patches) = (known.state, known.patches);
    let folded = blocking(move || fold_patches(&state, &patches))
        .await
        .map_err(|e| e.to_string())?;
    store
        .save_target_state(target, &fingerprint, read_at, epoch, &folded.0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

impl UserPlan<'_> {
    pub(super) fn report(&self, operations: Vec<OpResult>) -> TargetReport {
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

/// What a sign-in sync did to a target, as a patch of what idsync knew of it: the user's
/// accounts as just read (they may have changed by hand since), with what the sync did to them
/// worked out as a full run works it out (`known_state::state_after`, on those accounts alone),
/// and the groups it created.
fn accounts_patch(
    fresh: &ActualState,
    capabilities: &idsync_model::Capabilities,
    results: &[OpResult],
) -> Result<AccountsPatch, String> {
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
    let groups: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status == OpStatus::Done)
        .filter_map(|r| match &r.planned.op {
            Operation::CreateGroup { group } => Some(group.clone()),
            _ => None,
        })
        .collect();
    Ok(AccountsPatch { accounts, groups })
}
