//! [`JobConnection`]: the caller's own connection — its open transaction — on which a job is
//! enqueued, or a job's completion is written, together with the caller's writes.

use super::state::JobId;
use super::store::{Enqueued, NewJob, StoreError};

mod sealed {
    pub trait Sealed {}
}

/// A database connection a job can be written on: an sqlx transaction (`&mut tx`) or a
/// connection (`&mut *tx`, `&mut conn`) on SQLite or PostgreSQL. It must be a connection to
/// the runtime's own job store's database; a connection of the other kind is refused.
pub trait JobConnection: sealed::Sealed + Send {
    /// The database's name: `sqlite` or `postgres`.
    const BACKEND: &'static str;

    #[doc(hidden)]
    fn enqueue_job(
        &mut self,
        job: NewJob,
    ) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;

    #[doc(hidden)]
    fn release_job(&mut self, id: JobId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    #[doc(hidden)]
    fn complete_job(
        &mut self,
        id: JobId,
        token: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::SqliteConnection {}

#[cfg(feature = "sqlite")]
impl JobConnection for sqlx::SqliteConnection {
    const BACKEND: &'static str = "sqlite";

    async fn enqueue_job(&mut self, job: NewJob) -> Result<Enqueued, StoreError> {
        super::SqliteStore::enqueue_in(self, job).await
    }

    async fn release_job(&mut self, id: JobId) -> Result<bool, StoreError> {
        super::SqliteStore::release_in(self, id).await
    }

    async fn complete_job(&mut self, id: JobId, token: i64) -> Result<(), StoreError> {
        super::SqliteStore::complete_in(self, id, token).await
    }
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::PgConnection {}

#[cfg(feature = "postgres")]
impl JobConnection for sqlx::PgConnection {
    const BACKEND: &'static str = "postgres";

    async fn enqueue_job(&mut self, job: NewJob) -> Result<Enqueued, StoreError> {
        super::PgStore::enqueue_in(self, job).await
    }

    async fn release_job(&mut self, id: JobId) -> Result<bool, StoreError> {
        super::PgStore::release_in(self, id).await
    }

    async fn complete_job(&mut self, id: JobId, token: i64) -> Result<(), StoreError> {
        super::PgStore::complete_in(self, id, token).await
    }
}

/// A transaction is written on through its connection.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_macros)
)]
macro_rules! transaction {
    ($db:ty, $conn:ty, $backend:literal) => {
        impl sealed::Sealed for sqlx::Transaction<'_, $db> {}

        impl JobConnection for sqlx::Transaction<'_, $db> {
            const BACKEND: &'static str = $backend;

            async fn enqueue_job(&mut self, job: NewJob) -> Result<Enqueued, StoreError> {
                <$conn as JobConnection>::enqueue_job(self, job).await
            }

            async fn release_job(&mut self, id: JobId) -> Result<bool, StoreError> {
                <$conn as JobConnection>::release_job(self, id).await
            }

            async fn complete_job(&mut self, id: JobId, token: i64) -> Result<(), StoreError> {
                <$conn as JobConnection>::complete_job(self, id, token).await
            }
        }
    };
}

#[cfg(feature = "sqlite")]
transaction!(sqlx::Sqlite, sqlx::SqliteConnection, "sqlite");
#[cfg(feature = "postgres")]
transaction!(sqlx::Postgres, sqlx::PgConnection, "postgres");
