//! The public face of a [`ScheduleError`]: `503 overloaded`, `503 shutting_down`, or
//! `500 internal_error`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{ApiError, Error};
use crate::task::ScheduleError;

/// The public face of a refused schedule call.
pub(crate) fn public(error: &ScheduleError) -> ApiError {
    match error {
        ScheduleError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "The service is shutting down.",
        ),
        ScheduleError::Overloaded => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is overloaded; try again later.",
        ),
        ScheduleError::NoRuntime | ScheduleError::UnknownGroup(_) => ApiError::internal(),
    }
}

impl IntoResponse for ScheduleError {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}
