//! Starting a round over when Graph lets one of its page tokens expire
//! (`Directory_ExpiredPageToken`): one bounded loop, [`restarting`], that every paged read
//! runs in.

use crate::EntraError;

/// How many times one read starts a round again after Graph let one of its page tokens expire
/// (400 `Directory_ExpiredPageToken`). Pages are asked for back to back, so an expiry means a
/// long pause (throttling, a slow network); a few more tries ride that out, and a round that
/// keeps expiring fails with a clear message instead of looping.
pub const PAGE_TOKEN_RESTARTS: usize = 3;

/// Runs `round` until it ends other than by an expired page token, at most
/// [`PAGE_TOKEN_RESTARTS`] times more, and returns how it ended. When it had to start over, a
/// note (named after `label`) says so in `notes`. A round that restarts must leave nothing of
/// its cut-short try behind, or be harmless to run twice (delta items are whole objects and
/// removals, membership changes are sets): `round` sees to that.
pub(super) async fn restarting<T>(
    label: &'static str,
    notes: &mut Vec<String>,
    mut round: impl AsyncFnMut() -> Result<T, EntraError>,
) -> Result<T, EntraError> {
    let mut restarts = Restarts { label, count: 0 };
    let result = loop {
        if let Some(result) = restarts.settle(round().await) {
            break result;
        }
    };
    restarts.note(notes);
    result
}

/// One initial round (from the first page) into a fresh `state`. A skip token of the initial
/// round can be refused as out of date (`DeltaReset`) when the tenant's sync state moves on
/// while it is paged through: that round starts over once, from nothing.
pub(super) async fn initial_round<S: Default, T>(
    state: &mut S,
    mut round: impl AsyncFnMut(&mut S) -> Result<T, EntraError>,
) -> Result<T, EntraError> {
    *state = S::default();
    match round(state).await {
        Err(EntraError::DeltaReset { .. }) => {
            *state = S::default();
            round(state).await
        }
        other => other,
    }
}

/// Counts the restarts of one round after expired page tokens: [`Restarts::settle`] says
/// whether to run it again (a page token expired and the bound is not reached) or what to
/// return; [`Restarts::note`] then says so in the read's notes.
struct Restarts {
    label: &'static str,
    count: usize,
}

impl Restarts {
    /// `None`: start the round over. Otherwise the outcome of the round.
    fn settle<T>(&mut self, tried: Result<T, EntraError>) -> Option<Result<T, EntraError>> {
        let Err(EntraError::PageTokenExpired { what, message, .. }) = tried else {
            return Some(tried);
        };
        if self.count == PAGE_TOKEN_RESTARTS {
            let restarts = self.count;
            return Some(Err(EntraError::PageTokenExpired {
                what,
                restarts,
                message: format!(
                    "{message} It happened again after idsync had started the round over \
                     {restarts} times: Graph's page tokens expire when the next page is asked \
                     for too late, and pages came too slowly (long throttling pauses, a slow \
                     network or proxy). Nothing was changed; sync again later, when Graph \
                     answers faster."
                ),
            }));
        }
        self.count += 1;
        tracing::warn!(
            label = self.label,
            restarts = self.count,
            "a Graph page token expired; starting the round over"
        );
        None
    }

    /// A note for the read when the round had to start over.
    fn note(&self, notes: &mut Vec<String>) {
        if self.count > 0 {
            notes.push(format!(
                "{}: a page token expired while the round was paged through \
                 (Directory_ExpiredPageToken); the round was started over {} time{}",
                self.label,
                self.count,
                if self.count == 1 { "" } else { "s" }
            ));
        }
    }
}
