//! Built-in mappings for `sqlx` errors (feature `sqlx`).

use http::StatusCode;
use sqlx::error::{DatabaseError, ErrorKind};

use super::ApiError;

/// Row not found → `404 not_found`; unique or foreign-key violation → `409 conflict`; the
/// database out of reach (no connection within the pool's acquire timeout, the connection
/// lost, the pool closed) or busy (SQLite locked past its busy timeout; PostgreSQL out of
/// connections, shutting down or starting up) → `503 service_unavailable`, like a job store
/// whose database failed. Every other database error stays unmapped (`500 internal_error`).
pub(super) fn map(error: &sqlx::Error) -> Option<ApiError> {
    match error {
        sqlx::Error::RowNotFound => Some(ApiError::from_status(StatusCode::NOT_FOUND)),
        sqlx::Error::Database(db) if unavailable(&**db) => {
            Some(ApiError::from_status(StatusCode::SERVICE_UNAVAILABLE))
        }
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

/// Whether a database's own error says it cannot serve now, rather than that the query is
/// wrong. Told by the driver's error type, as SQLite's result codes and PostgreSQL's
/// SQLSTATEs overlap as text.
fn unavailable(db: &dyn DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // SQLITE_BUSY and SQLITE_LOCKED, whatever their extended code.
        let primary = sqlite
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(5 | 6));
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // too_many_connections, admin_shutdown, crash_shutdown, cannot_connect_now.
        return matches!(pg.code(), "53300" | "57P01" | "57P02" | "57P03");
    }
    let _ = db;
    false
}
