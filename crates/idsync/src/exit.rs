//! Errors at the edge of the CLI, each with its exit code.

/// What went wrong, sorted by the exit code the contract gives it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage or a bad config: exit 2.
    #[error("{0}")]
    Usage(String),
    /// A plan was held by a guard and awaits approval: exit 3.
    #[error("{0}")]
    Held(String),
    /// Another run of the same app is in progress: exit 4.
    #[error("{0}")]
    Busy(String),
    /// Anything else that failed: exit 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Held(_) => 3,
            CliError::Busy(_) => 4,
        }
    }
}
