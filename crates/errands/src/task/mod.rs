//! Tasks: how they are configured, run, and how they end.

mod builder;
mod handler;
mod info;
mod name;
mod outcome;
mod run;

pub use builder::TaskBuilder;
pub use handler::ErrorHandler;
pub(crate) use info::TaskMeta;
pub use info::{Field, TaskId, TaskInfo, Timing};
pub(crate) use outcome::panic_message;
pub use outcome::{BoxError, Outcome, SkipReason, TaskError, TaskResult};
pub(crate) use run::{Pending, Prepared};
