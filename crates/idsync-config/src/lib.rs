//! The idsync configuration: schema ([`schema`]), secrets ([`secret`]) and loading with
//! validation ([`load()`], [`ConfigError`]); [`locate()`] puts problems found later (by reading
//! the source) in the same `FILE:LINE: field: message` form.
//!
//! Every field is documented in `docs/config.md`.

pub mod load;
pub mod schema;
pub mod secret;

pub use load::{
    ConfigError, Env, Problem, load, load_with_env, locate, locate_with_env, parse_with_env,
};
pub use schema::*;
pub use secret::Secret;
