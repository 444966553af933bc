//! The idsync configuration: schema ([`schema`]), secrets ([`secret`]) and loading.

pub mod schema;
pub mod secret;

pub use schema::*;
pub use secret::Secret;
