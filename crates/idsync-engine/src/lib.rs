//! The sync engine: rules ([`rules`]), the pure planner ([`planner`]), the mass-change guard
//! ([`guard`]) and the executor ([`executor`]). Reading sources, talking to targets and storing
//! state happen at the edges, behind the `Target` trait and the store.

#![warn(missing_docs)]

pub mod executor;
pub mod guard;
pub mod known_patch;
pub mod known_state;
pub mod outcome;
pub mod packed;
pub mod planner;
pub mod rules;

pub use executor::{ExecOptions, OpResult, OpStatus, execute};
pub use idsync_model::managed::ManagedMemberships;
pub use planner::{Adoption, Link, ManagedMembership, PlanInput, TargetPlan, plan};
pub use rules::{CompiledGroupRules, CompiledUserRules, RuleError};
