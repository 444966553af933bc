//! `idsync check`: validate the config, sign in, read the source, print counts.

use crate::CheckArgs;
use crate::exit::CliError;

pub async fn run(args: CheckArgs) -> Result<(), CliError> {
    Err(CliError::Usage(format!(
        "check of {} is not built yet",
        args.config.display()
    )))
}
