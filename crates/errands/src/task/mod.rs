//! What a task is: its info, its name, how it ends, how it retries, its error handlers, and
//! why scheduling it can be refused. How tasks run is [`crate::exec`]; how they are
//! scheduled is [`crate::tasks`].

mod dispatch;
mod handler;
mod info;
mod name;
mod outcome;
mod rejected;
mod retry;

pub use dispatch::ErrorHandlers;
pub use handler::{ErrorHandler, OnError};
pub use info::{Field, TaskId, TaskInfo, Timing};
pub(crate) use info::{GroupId, TaskMeta};
pub(crate) use name::TaskName;
pub(crate) use outcome::panic_message;
pub use outcome::{BoxError, Outcome, SharedError, SkipReason, TaskError, TaskResult};
pub use rejected::ScheduleError;
pub use retry::RetryPolicy;
