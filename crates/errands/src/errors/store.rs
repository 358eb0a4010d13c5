//! Built-in mappings for the durable job store's errors (feature `durable`, which `sqlite`
//! and `postgres` enable).

use http::StatusCode;

use super::ApiError;
use crate::durable::StoreError;

/// The database failed → `503 service_unavailable`; no such job → `404 not_found`; a job
/// whose state does not allow the change → `409 conflict`. A stale attempt or arguments that
/// do not serialize stay unmapped (`500 internal_error`): neither is the client's doing.
pub(super) fn map(error: &StoreError) -> Option<ApiError> {
    match error {
        StoreError::Database(_) => Some(ApiError::from_status(StatusCode::SERVICE_UNAVAILABLE)),
        StoreError::NotFound(_) => Some(ApiError::from_status(StatusCode::NOT_FOUND)),
        StoreError::WrongState { state, .. } => Some(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("The job is {state}, which does not allow this."),
        )),
        _ => None,
    }
}
