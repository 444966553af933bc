//! The idsync configuration: schema ([`schema`]), secrets ([`secret`]) and loading with
//! validation ([`load()`], [`ConfigError`]); [`locate()`] puts problems found later (by reading
//! the source) in the same `FILE:LINE: field: message` form.
//!
//! Loading is a pipeline, one concern per module: `load` (read, environment, deserialize,
//! check), `env` (the `IDSYNC_*` overlay), `locate` (field paths to lines), `check` (what serde
//! cannot check), `problem` (how problems are told), and [`validate`] for checks of single
//! values other crates share.
//!
//! Every field is documented in `docs/config.md`.

#![warn(missing_docs)]

mod check;
mod compose;
mod env;
pub mod load;
mod locate;
mod problem;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod validate;

pub use compose::compose;
pub use load::{
    ConfigError, Env, Problem, load, load_with_env, locate, locate_with_env, parse_with_env,
};
pub use schedule::{Schedule, ScheduleError};
pub use schema::*;
pub use secret::Secret;
