use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::PublicError;

/// The rejection of the [`Tasks`](crate::Tasks) and [`RequestId`](crate::RequestId)
/// extractors on a route that the errands layer does not wrap.
///
/// It renders as `500 internal_error` and logs one error naming the cause, so a router that
/// forgot `.layer(errands.layer())` fails on its first request instead of dropping tasks.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the errands layer is not installed on this route: add `.layer(errands.layer())` to the router"
)]
pub struct TasksUnavailable;

impl IntoResponse for TasksUnavailable {
    fn into_response(self) -> Response {
        tracing::error!(target: "errands", error = %self, "errands extractor rejected the request");
        PublicError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: "Internal server error.",
        }
        .into_response()
    }
}
