//! Step 2: each target as this run knows it: what the store holds for it (links, managed
//! memberships, unsettled creations, remembered e-mails, the known state) and, when that is not
//! enough, a full read; and its product version.

// The crate root holds the imports and the types every step shares.
use super::*;

/// A target's state as this run knows it.
pub(crate) struct KnownTarget {
    pub(crate) state: ActualState,
    /// The product and version it runs, read at the start of every run.
    pub(crate) product: idsync_model::ProductInfo,
    pub(crate) source: StateSource,
    /// When it was last read in full (unix seconds).
    pub(crate) read_at: i64,
    pub(crate) fingerprint: String,
    /// Something the admin should hear about how it was come by.
    pub(crate) note: Option<String>,
}

pub(crate) enum KnowError {
    Target(idsync_model::TargetError),
    Store(idsync_store::StoreError),
}

impl From<idsync_store::StoreError> for KnowError {
    fn from(e: idsync_store::StoreError) -> Self {
        KnowError::Store(e)
    }
}

pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What a state read from this target with these attributes is only good for.
pub(crate) fn fingerprint(tc: &TargetConfig, attributes: &[String]) -> String {
    // Stored: nothing that may hold a secret goes in (the config check refuses user info in a
    // base URL already; a query string is cut here).
    let base_url = idsync_model::redact::redact_url(tc.base_url.as_str());
    format!("{} {base_url} {}", tc.kind, attributes.join(","))
}

/// What the store holds for one target.
pub(crate) struct StoredTarget {
    pub(crate) links: Vec<idsync_engine::Link>,
    pub(crate) managed: idsync_engine::ManagedMemberships,
    /// The known state when it may be planned from: recent enough, read with the same
    /// fingerprint, and not refused by `--full-read` or `full_read_every_minutes = 0`.
    pub(crate) known: Option<Result<(i64, ActualState), String>>,
    /// Creations an interrupted run left unsettled: the target is read in full to settle them.
    pub(crate) intents: Vec<idsync_engine::outcome::CreateIntent>,
    /// The e-mail address idsync last sent each account (by key), for targets that do not
    /// report them.
    pub(crate) sent_emails: HashMap<String, String>,
    pub(crate) fingerprint: String,
}

/// Loads what the store holds for a target, decoding its known state off the async threads.
pub(crate) async fn stored_for_target(
    store: &Store,
    app: &str,
    tc: &TargetConfig,
    fingerprint: String,
    full_read: bool,
    remembers_emails: bool,
) -> Result<StoredTarget, RunError> {
    let known = async {
        let max_age =
            i64::try_from(tc.full_read_every_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
        if tc.full_read_every_minutes == 0 || full_read {
            return Ok(None);
        }
        let Some(known) = store.known_target_state(&tc.name).await? else {
            return Ok(None);
        };
        if known.fingerprint != fingerprint || unix_now().saturating_sub(known.read_at) >= max_age {
            return Ok(None);
        }
        let read_at = known.read_at;
        let state = blocking(move || {
            idsync_engine::known_patch::unpack_known(&known.state, &known.patches)
        })
        .await
        .map_err(|e| e.to_string());
        Ok::<_, idsync_store::StoreError>(Some(state.map(|s| (read_at, s))))
    };
    let (known, links, managed, intents, sent_emails) = futures::join!(
        known,
        store.links(&tc.name),
        store.managed_memberships(app, &tc.name),
        store.create_intents(app, &tc.name),
        // Only a target that does not report e-mail addresses needs the ones idsync sent.
        async {
            if remembers_emails {
                store.sent_emails(&tc.name).await
            } else {
                Ok(HashMap::new())
            }
        },
    );
    Ok(StoredTarget {
        links: links?,
        managed: managed?,
        known: known?,
        intents: intents?,
        sent_emails: sent_emails?,
        fingerprint,
    })
}

/// A target as this run knows it, with what the store holds for it.
pub(crate) struct TargetInputs {
    pub(crate) known: KnownTarget,
    pub(crate) links: Vec<idsync_engine::Link>,
    pub(crate) managed: idsync_engine::ManagedMemberships,
}

/// The target's state: what idsync knows of it when that is recent enough and the run does not
/// call for a full read, otherwise read in full (and kept for the runs to come).
pub(crate) async fn know_target(
    store: &Store,
    app: &str,
    target: Arc<dyn Target>,
    tc: &TargetConfig,
    attributes: Vec<String>,
    stored: StoredTarget,
    force_full_read: bool,
) -> Result<TargetInputs, KnowError> {
    let StoredTarget {
        mut links,
        managed,
        known,
        intents,
        sent_emails,
        fingerprint,
    } = stored;
    let force_full_read = force_full_read || !intents.is_empty();
    let now = unix_now();
    let mut note = None;
    // The product's version decides what can be planned for it (an older Confluence lacks
    // resources idsync uses): read first, on every run, as an upgrade can happen any day.
    let product = target.discover().await.map_err(KnowError::Target)?;
    let reads_email = target.capabilities().reads_email;
    match known {
        Some(Ok((read_at, mut state))) if !force_full_read => {
            if !reads_email {
                remembered_emails(&mut state, &sent_emails);
            }
            let minutes = u64::try_from(now.saturating_sub(read_at) / 60).unwrap_or(0);
            let known = KnownTarget {
                state,
                product,
                source: StateSource::Known {
                    read_minutes_ago: minutes,
                },
                read_at,
                fingerprint,
                note: None,
            };
            return Ok(TargetInputs {
                known,
                links,
                managed,
            });
        }
        Some(Err(e)) if !force_full_read => {
            note = Some(format!(
                "what idsync knew of the target could not be read back ({e}); it was read in full"
            ));
        }
        _ => {}
    }
    // The epoch before the read: if a run starts writing while this one reads, what was read
    // may miss its changes and is not kept.
    let epoch = store.target_epoch(&tc.name).await?;
    let state = target
        .read_state(&attributes)
        .await
        .map_err(KnowError::Target)?;
    let state = Arc::new(state);
    if tc.full_read_every_minutes > 0 {
        let to_pack = Arc::clone(&state);
        match blocking(move || idsync_engine::packed::pack_target_state(&to_pack)).await {
            Ok(bytes) => {
                store
                    .save_target_state(&tc.name, &fingerprint, now, epoch, &bytes)
                    .await?;
            }
            Err(e) => note = Some(format!("its state could not be kept: {e}")),
        }
    }
    let mut state = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
    let mut sent_emails = sent_emails;
    if !intents.is_empty() {
        // An interrupted run created accounts it did not get to link: they are linked now,
        // before planning, so that they are managed like any other (deprovisioned when their
        // user leaves) instead of left behind.
        let (mut claimed, unclaimed) =
            idsync_engine::outcome::claim_interrupted_creations(&intents, &state, &links);
        if reads_email {
            claimed.sent_emails.clear();
        } else {
            sent_emails.extend(claimed.sent_emails.iter().cloned());
        }
        store.apply_bookkeeping(app, &tc.name, &claimed).await?;
        let found = claimed.upsert_links.len();
        links.extend(claimed.upsert_links);
        let mut said = format!(
            "{} creation(s) of an interrupted run settled: {found} account(s) found and linked",
            intents.len()
        );
        for n in unclaimed {
            said.push_str("; ");
            said.push_str(&n);
        }
        note = Some(match note {
            Some(earlier) => format!("{earlier}; {said}"),
            None => said,
        });
    }
    if !reads_email {
        remembered_emails(&mut state, &sent_emails);
    }
    Ok(TargetInputs {
        known: KnownTarget {
            state,
            product,
            source: StateSource::FullRead,
            read_at: now,
            fingerprint,
            note,
        },
        links,
        managed,
    })
}

/// Gives each account of a target that does not report e-mail addresses the one idsync last
/// sent it, so that the planner sees a change at the source as a change (and an account with
/// none remembered as one whose address is unknown).
pub(crate) fn remembered_emails(state: &mut ActualState, sent: &HashMap<String, String>) {
    for user in &mut state.users {
        user.email = sent.get(&user.key).cloned();
    }
}
