use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::PublicError;

/// Why a task could not be scheduled. The task was not started and counts as `rejected`.
///
/// It converts into a `503` response in the errands error schema, so handlers can use `?`:
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
    /// The call was made outside a tokio runtime.
    #[error("tasks can only be scheduled from within a tokio runtime")]
    NoRuntime,
}

impl IntoResponse for ScheduleError {
    fn into_response(self) -> Response {
        let error = match self {
            ScheduleError::ShuttingDown => PublicError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "shutting_down",
                message: "The service is shutting down.",
            },
            ScheduleError::NoRuntime => PublicError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal_error",
                message: "Internal server error.",
            },
        };
        error.into_response()
    }
}
