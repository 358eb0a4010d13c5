//! The HTTP endpoints, one file per resource.

pub mod drills;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod signups;
