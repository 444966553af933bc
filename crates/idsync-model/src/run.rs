//! The words a run is described by, shared by the runner, the store and the CLI: what started
//! it, how it ended, and how the source was read.

use serde::{Deserialize, Serialize};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `idsync run` or `idsync apply` at a command line, or a run asked for through the admin API.
    Manual,
    /// The app's `schedule`, in `idsync serve`.
    Schedule,
    /// A user signing in (login-time sync of that one user).
    Login,
    /// `idsync approve` (or the admin API) releasing a held plan.
    Approval,
}

impl Trigger {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Login => "login",
            Trigger::Approval => "approval",
        }
    }
}

/// How a run ended, as kept in the history and counted in `idsync_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A dry run: the plan was made and nothing applied.
    Planned,
    /// Everything applied.
    Done,
    /// Applied, but some operations or targets failed.
    Partial,
    /// Nothing could be done (source unreadable, every target failed).
    Failed,
    /// The plan exceeds the mass-change guard and waits for `idsync approve`.
    Held,
    /// idsync stopped before the run finished (a service shutting down, or a process that
    /// died): what was sent is recorded, the rest is left to the next run.
    Interrupted,
}

impl RunStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::Done => "done",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Held => "held",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// How the source was read: every object (a first read, an expired delta token), or only
/// what changed since the last read; `Mixed` when users and groups were read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Every user and group was read in full.
    Full,
    /// Only what changed since the last read (delta tokens).
    Delta,
    /// Users one way and groups the other.
    Mixed,
}
