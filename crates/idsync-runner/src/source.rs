//! Step 1: the source read (delta when possible), and what becomes of it.

// The crate root holds the imports and the types every step shares.
use super::*;

/// Every source attribute an app's rules read, on any of its targets.
pub(crate) fn attributes_needed(app: &AppConfig, rules: &[TargetRules]) -> BTreeSet<String> {
    let mut attrs: BTreeSet<String> = app.read_attributes.iter().cloned().collect();
    for r in rules {
        attrs.extend(r.users.source_attributes());
    }
    attrs
}

/// Records why the source read failed; a scope naming what the tenant lacks is a problem of
/// the config, placed at its fields (`apps[i].scope.groups[j]`).
pub(crate) fn source_failed(
    app_index: usize,
    app: &AppConfig,
    e: &idsync_entra::EntraError,
    report: &mut RunReport,
) {
    let why = match e {
        idsync_entra::EntraError::Scope { problems, .. } => {
            report.config_problems = problems
                .iter()
                .map(|p| ConfigProblem {
                    field: format!("apps[{app_index}].{}", p.field),
                    message: p.message.clone(),
                })
                .collect();
            report
                .config_problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => other.to_string(),
    };
    report.error = Some(format!(
        "reading the source of app {:?} failed: {why}",
        app.name
    ));
}

/// Keeps the source read as the baseline of the next delta read (once the guard let the run
/// go on: a held read must not become it).
pub(crate) async fn keep_source(
    store: &Store,
    app: &str,
    packed_source: Result<Vec<u8>, idsync_model::stored::PackError>,
    users_in_scope: usize,
    report: &mut RunReport,
) -> Result<(), RunError> {
    match packed_source {
        Ok(bytes) => store.save_source_state(app, &bytes, users_in_scope).await?,
        Err(e) => report
            .notes
            .push(format!("the source snapshot could not be kept: {e}")),
    }
    Ok(())
}

/// Reads the app's source, from its stored snapshot when there is one (a delta read), unless
/// `full_read`.
/// `Ok(Err(_))` is a failed read; `Err(_)` a store that failed.
pub(crate) async fn read_source(
    store: &Store,
    app: &AppConfig,
    attributes: &BTreeSet<String>,
    full_read: bool,
    notes: &mut Vec<String>,
) -> Result<Result<idsync_entra::SourceRead, idsync_entra::EntraError>, RunError> {
    // `--full-read` reads the source afresh too: whatever the stored snapshot holds (a
    // damaged or doubtful read) is not carried over.
    let stored = if full_read {
        None
    } else {
        store.source_state(&app.name).await?
    };
    let previous = match stored {
        Some(bytes) => match blocking(move || DirectoryState::unpack(&bytes)).await {
            Ok(state) => Some(state),
            Err(e) => {
                notes.push(format!(
                    "the stored source snapshot could not be read ({e}); reading the source in full"
                ));
                None
            }
        },
        None => None,
    };
    Ok(match EntraSource::new(app, attributes) {
        Ok(source) => source.read(previous).await,
        Err(e) => Err(e),
    })
}
