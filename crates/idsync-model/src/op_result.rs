//! What happened to one planned operation. The executor produces these; the store writes them
//! to a run's history and the bookkeeping reads them. Plain data, so that the store can keep
//! them without depending on the engine.

use serde::{Deserialize, Serialize};

use crate::{PlannedOperation, TargetErrorKind};

/// Where an operation ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// In a dry run or a held plan: not applied.
    Planned,
    /// Applied: the target changed as asked.
    Done,
    /// The target already was as asked (e.g. already a member).
    AlreadyDone,
    /// The target refused it, or it could not be sent.
    Failed,
    /// Not attempted because an operation it depends on failed.
    Skipped,
}

impl OpStatus {
    /// As stored, shown and serialized (`already_done`, …): without going through serde, as
    /// the history and the metrics do for every one of millions of results.
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Planned => "planned",
            OpStatus::Done => "done",
            OpStatus::AlreadyDone => "already_done",
            OpStatus::Failed => "failed",
            OpStatus::Skipped => "skipped",
        }
    }
}

/// What happened to one planned operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    /// The operation as planned (and as sent).
    #[serde(flatten)]
    pub planned: PlannedOperation,
    /// Where it ended up.
    pub status: OpStatus,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure, when it failed at the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<TargetErrorKind>,
    /// The account key, once known (for created users: the new key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How long it took, retries included.
    pub duration_ms: u64,
}

impl OpResult {
    /// The target is now as the operation asked (done, or already so).
    pub fn succeeded(&self) -> bool {
        matches!(self.status, OpStatus::Done | OpStatus::AlreadyDone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_serialized_name() {
        for status in [
            OpStatus::Planned,
            OpStatus::Done,
            OpStatus::AlreadyDone,
            OpStatus::Failed,
            OpStatus::Skipped,
        ] {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
    }
}
