//! [`ScheduleError`]: why a task was refused at the call.

/// Why a task could not be scheduled. The task was not started and counts as `rejected`.
///
/// It converts into a response in the errands error schema — `503 overloaded`, `503
/// shutting_down`, or `500 internal_error` for [`NoRuntime`](ScheduleError::NoRuntime) and
/// [`UnknownGroup`](ScheduleError::UnknownGroup) — so handlers can use `?`:
///
/// ```
/// use errands::{ScheduleError, Tasks};
///
/// async fn handler(tasks: Tasks) -> Result<&'static str, ScheduleError> {
///     tasks.schedule(async {})?;
///     Ok("scheduled")
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Shutdown has passed the request drain: the runtime accepts no new tasks.
    #[error("the errands runtime is shutting down and accepts no new tasks")]
    ShuttingDown,
    /// The task's group (the runtime's own limits, unless the task chose a
    /// [group](crate::TaskBuilder::group)) already holds `max_running + max_queued`
    /// unfinished tasks.
    #[error("too many background tasks are unfinished; try again later")]
    Overloaded,
    /// The call was made outside a tokio runtime.
    #[error("tasks can only be scheduled from within a tokio runtime")]
    NoRuntime,
    /// The task names a group the runtime was not built with
    /// ([`ErrandsBuilder::group`](crate::ErrandsBuilder::group)).
    #[error("no task group named {0:?}")]
    UnknownGroup(&'static str),
}
