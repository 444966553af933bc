//! Starting a round over when Graph lets one of its page tokens expire
//! (`Directory_ExpiredPageToken`): one bounded loop, [`restarting!`], that every paged
//! read runs in.

use crate::EntraError;

/// How many times one read starts a round again after Graph let one of its page tokens expire
/// (400 `Directory_ExpiredPageToken`). Pages are asked for back to back, so an expiry means a
/// long pause (throttling, a slow network); a few more tries ride that out, and a round that
/// keeps expiring fails with a clear message instead of looping.
pub const PAGE_TOKEN_RESTARTS: usize = 3;

/// Runs the round `$round` (an expression, awaited inside) until it ends other than by an
/// expired page token, at most [`PAGE_TOKEN_RESTARTS`] times more, and is how it ended. When it
/// had to start over, a note (named after `$label`) says so in `$notes`. A round that restarts
/// must leave nothing of its cut-short try behind, or be harmless to run twice (delta items
/// are whole objects and removals, membership changes are sets): `$round` sees to that.
///
/// A macro, not a function taking an async closure: such a closure borrowing the round's state
/// made the whole read's future lose `Send` ("implementation of `Send` is not general enough")
/// where the runner spawns it.
macro_rules! restarting {
    ($label:expr, $notes:expr, $round:expr) => {{
        let mut restarts = $crate::read::restart::Restarts::new($label);
        let result = loop {
            if let Some(result) = restarts.settle($round) {
                break result;
            }
        };
        restarts.note($notes);
        result
    }};
}
pub(super) use restarting;

/// One initial round `$round` (from the first page) into `$state`, made fresh first. A skip
/// token of the initial round can be refused as out of date (`DeltaReset`) when the tenant's
/// sync state moves on while it is paged through: that round starts over once, from nothing.
/// A macro for the reason [`restarting`] is.
macro_rules! initial_round {
    ($state:expr, $round:expr) => {{
        $state = Default::default();
        match $round {
            Err($crate::EntraError::DeltaReset { .. }) => {
                $state = Default::default();
                $round
            }
            other => other,
        }
    }};
}
pub(super) use initial_round;

/// Counts the restarts of one round after expired page tokens: [`Restarts::settle`] says
/// whether to run it again (a page token expired and the bound is not reached) or what to
/// return; [`Restarts::note`] then says so in the read's notes.
pub(super) struct Restarts {
    label: &'static str,
    count: usize,
}

impl Restarts {
    pub(super) fn new(label: &'static str) -> Self {
        Restarts { label, count: 0 }
    }

    /// `None`: start the round over. Otherwise the outcome of the round.
    pub(super) fn settle<T>(
        &mut self,
        tried: Result<T, EntraError>,
    ) -> Option<Result<T, EntraError>> {
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
    pub(super) fn note(&self, notes: &mut Vec<String>) {
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
