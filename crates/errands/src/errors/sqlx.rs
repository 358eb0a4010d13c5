//! Built-in mappings for `sqlx` errors (feature `sqlx`).

use http::StatusCode;
use sqlx::error::ErrorKind;

use super::ApiError;

/// Row not found → `404 not_found`; unique or foreign-key violation → `409 conflict`.
/// Every other database error stays unmapped (`500 internal_error`).
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
        _ => None,
    }
}
