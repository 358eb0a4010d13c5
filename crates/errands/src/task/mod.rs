//! Tasks: how they are configured, run, and how they end.

mod builder;
mod dispatch;
mod guarded;
mod handler;
mod info;
mod name;
mod outcome;
mod retry;
mod run;
mod slot;
mod work;

pub use builder::{RetryBuilder, TaskBuilder};
pub use dispatch::ErrorHandlers;
pub use handler::ErrorHandler;
pub(crate) use info::TaskMeta;
pub use info::{Field, TaskId, TaskInfo, Timing};
pub(crate) use outcome::panic_message;
pub use outcome::{BoxError, Outcome, SkipReason, TaskError, TaskResult};
pub use retry::RetryPolicy;
pub(crate) use run::{Pending, Prepared};
