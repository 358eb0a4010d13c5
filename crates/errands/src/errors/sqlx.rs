//! Built-in mappings for `sqlx` errors (feature `sqlx`).

use http::StatusCode;
use sqlx::error::ErrorKind;

use super::ApiError;

/// Row not found → `404 not_found`; unique or foreign-key violation → `409 conflict`; the
/// database out of reach (no connection within the pool's acquire timeout, the connection
/// lost, the pool closed) → `503 service_unavailable`, like a job store whose database
/// failed. Every other database error stays unmapped (`500 internal_error`).
pub(super) fn map(error: &sqlx::Error) -> Option<ApiError> {
    match error {
        sqlx::Error::RowNotFound => Some(ApiError::from_status(StatusCode::NOT_FOUND)),
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Some(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "The resource already exists.",
            )),
            ErrorKind::ForeignKeyViolation => Some(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "The request refers to a resource that does not exist or is still in use.",
            )),
            _ => None,
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => {
            Some(ApiError::from_status(StatusCode::SERVICE_UNAVAILABLE))
        }
        _ => None,
    }
}
