//! Planning one target for the user signing in: their account(s) read from the target, the
//! groups idsync knows it has, the planner as a full run calls it, and the plan confined to
//! them.

use super::*;

impl UserSyncer {
    /// Plans one target for the user. `Ok(Err(why))`: the target could not be planned for.
    pub(super) async fn plan_target<'s>(
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
            && !names
                .iter()
                .any(|n| idsync_model::name::same_name(n, &wanted))
        {
            names.push(wanted);
        }
        let reads =
            futures::future::join_all(names.iter().map(|n| target.read_user(n, &attributes)));
        let known = self.known_groups(store, st, &attributes);
        let (reads, known) = futures::join!(reads, known);
        let accounts = match accounts_read(reads, link.as_ref()) {
            Ok(accounts) => accounts,
            Err(why) => return Ok(Err(why)),
        };
        let (known, known_groups) = match known? {
            Some((stamp, groups)) => (Some(stamp), (*groups).clone()),
            None => (None, BTreeSet::new()),
        };
        let (actual, managed_pairs) = self.user_state(store, st, accounts, known_groups).await?;
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

    /// The target's state as far as the user goes: their account(s) with the groups each is
    /// in (and the e-mail idsync sent, where the target does not report it), the groups idsync
    /// knows the target has, and the managed memberships of the account(s).
    async fn user_state(
        &self,
        store: &Store,
        st: &SyncTarget,
        accounts: Vec<(TargetUser, BTreeSet<String>)>,
        known_groups: BTreeSet<String>,
    ) -> Result<(ActualState, Vec<idsync_engine::ManagedMembership>), RunError> {
        let (app, tc) = (&self.app.name, &st.config);
        let mut actual = ActualState {
            users: Vec::new(),
            groups: known_groups,
            memberships: BTreeMap::new(),
            leads: Vec::new(),
        };
        let reads_email = st.target.capabilities().reads_email;
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
        Ok((actual, managed_pairs))
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
        let groups = blocking(move || known_group_names(&known.state, &known.patches)).await;
        Ok(groups.ok().map(|groups| {
            let groups = Arc::new(groups);
            *cached = Some((stamp.clone(), Arc::clone(&groups)));
            (stamp, groups)
        }))
    }
}

/// What reading the user's account(s) by username gave, read by read.
type AccountReads = Vec<Result<Option<(TargetUser, BTreeSet<String>)>, idsync_model::TargetError>>;

/// The user's accounts from the reads by username, each once. `Err(why)` when a read failed,
/// or the linked account was not among them: found by its key only in a full read (renamed
/// or deleted by hand), and planning without it would take it for gone.
fn accounts_read(
    reads: AccountReads,
    link: Option<&idsync_model::link::Link>,
) -> Result<Vec<(TargetUser, BTreeSet<String>)>, String> {
    let mut accounts: Vec<(TargetUser, BTreeSet<String>)> = Vec::new();
    for read in reads {
        match read {
            Ok(Some((user, groups))) => {
                if !accounts.iter().any(|(a, _)| a.key == user.key) {
                    accounts.push((user, groups));
                }
            }
            Ok(None) => {}
            Err(e) => return Err(format!("reading the user's account failed: {e}")),
        }
    }
    if let Some(l) = link
        && !accounts.iter().any(|(a, _)| a.key == l.key)
    {
        return Err(format!(
            "the account linked to this user ({:?}, key {}) was not found under that username (renamed or deleted in the product?); the next full run sorts it out",
            l.username, l.key
        ));
    }
    Ok(accounts)
}

/// The source as a full run would see it for this user alone: the user, and each of their
/// groups with them as a member. Through nesting, every group above theirs is one of them
/// (`transitiveMemberOf`), so nothing is lost by listing no group inside another.
pub(super) fn one_user_snapshot(one: &OneUser) -> SourceSnapshot {
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

    /// A plan with operations about u1 (on K1), about u2 and nobody, and u1's on K2.
    fn mixed_plan() -> TargetPlan {
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
        TargetPlan {
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
        }
    }

    #[test]
    fn a_plan_is_confined_to_the_users_own_accounts() {
        let mut plan = mixed_plan();
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
