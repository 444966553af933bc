//! Domain types shared by every idsync crate: what a source (an identity provider) holds, what a
//! target (an Atlassian product) holds, the operations that turn one into the other, and the
//! `Target` trait the sync engine drives.
//!
//! Nothing here does I/O; the types are plain data so that the planner stays a pure function.

#![warn(missing_docs)]

pub mod bookkeeping;
pub mod held;
pub mod link;
pub mod managed;
pub mod name;
pub mod op_result;
pub mod operation;
pub mod redact;
pub mod run;
pub mod source;
pub mod stored;
pub mod target;

pub use operation::{Operation, OperationKind, PlannedOperation};
pub use source::{SourceGroup, SourceSnapshot, SourceUser};
pub use target::{
    ActualState, AdminRights, Applied, AttributeNames, Capabilities, Deprovisioning, Lead,
    LeadKind, LicenceSeats, ProbeFailure, ProbeStep, ProductInfo, Seats, Target, TargetError,
    TargetErrorKind, TargetKind, TargetProbe, TargetUser, UserChanges, Version,
};
