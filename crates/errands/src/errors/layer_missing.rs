use axum::response::{IntoResponse, Response};

use super::Error;

/// The rejection of the [`Tasks`](crate::Tasks) and [`RequestId`](crate::RequestId)
/// extractors on a route that the errands layer does not wrap.
///
/// It renders as `500 internal_error` and logs one error naming the cause, so a router that
/// forgot `.layer(errands.layer())` fails on its first request instead of dropping tasks.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the errands layer is not installed on this route: add `.layer(errands.layer())` to the router"
)]
pub struct LayerMissing;

impl IntoResponse for LayerMissing {
    fn into_response(self) -> Response {
        // Without the layer there is no reporter to reach: this log line is the report.
        tracing::error!(target: "errands", error = %self, "errands extractor rejected the request");
        Error::from(self).into_response()
    }
}
