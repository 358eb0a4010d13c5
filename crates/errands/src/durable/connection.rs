//! [`JobConnection`]: the caller's own connection — its open transaction — on which a job is
//! enqueued, or a job's completion is written, together with the caller's writes.

use super::state::JobId;
use super::store::{Enqueued, NewJob, StoreError};

mod sealed {
    pub trait Sealed {}
}

/// A database connection a job can be written on: an sqlx transaction (`&mut tx`) or a
/// connection (`&mut *tx`, `&mut conn`) on SQLite or PostgreSQL, or on either through sqlx's
/// `Any` driver (feature `any`). It must be a connection to
/// the runtime's own job store's database; a connection of the other kind is refused.
pub trait JobConnection: sealed::Sealed + Send {
    /// The database's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

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
    fn backend(&self) -> &'static str {
        "sqlite"
    }

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
    fn backend(&self) -> &'static str {
        "postgres"
    }

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
    ($db:ty, $conn:ty) => {
        impl sealed::Sealed for sqlx::Transaction<'_, $db> {}

        impl JobConnection for sqlx::Transaction<'_, $db> {
            fn backend(&self) -> &'static str {
                <$conn as JobConnection>::backend(self)
            }

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
transaction!(sqlx::Sqlite, sqlx::SqliteConnection);
#[cfg(feature = "postgres")]
transaction!(sqlx::Postgres, sqlx::PgConnection);

#[cfg(feature = "any")]
impl sealed::Sealed for sqlx::AnyConnection {}

/// Through sqlx's `Any` driver, on whichever database it is connected to.
#[cfg(feature = "any")]
impl JobConnection for sqlx::AnyConnection {
    fn backend(&self) -> &'static str {
        match self.backend_name() {
            "SQLite" => "sqlite",
            "PostgreSQL" => "postgres",
            _ => "another database",
        }
    }

    async fn enqueue_job(&mut self, job: NewJob) -> Result<Enqueued, StoreError> {
        let jobs = any::table(self)?;
        any::enqueue(self, jobs, job).await
    }

    async fn release_job(&mut self, id: JobId) -> Result<bool, StoreError> {
        let jobs = any::table(self)?;
        any::release(self, jobs, id).await
    }

    async fn complete_job(&mut self, id: JobId, token: i64) -> Result<(), StoreError> {
        let jobs = any::table(self)?;
        any::complete(self, jobs, id, token).await
    }
}

#[cfg(feature = "any")]
transaction!(sqlx::Any, sqlx::AnyConnection);

/// The store's writes on a connection of sqlx's `Any` driver: the same statements as the
/// stores', with `$n` parameters (which SQLite reads by their order) and the job table each
/// store uses.
#[cfg(feature = "any")]
mod any {
    use std::time::SystemTime;

    use sqlx::{AnyConnection, AssertSqlSafe};

    use super::super::millis;
    use super::super::state::JobId;
    use super::super::store::{Enqueued, NewJob, StoreError};
    use super::JobConnection;

    /// The job table on the connection's database.
    pub(super) fn table(conn: &AnyConnection) -> Result<&'static str, StoreError> {
        match conn.backend() {
            "sqlite" => Ok("errands_jobs"),
            "postgres" => Ok("errands.jobs"),
            other => Err(StoreError::Database(
                format!("durable jobs are not kept in {other}").into(),
            )),
        }
    }

    fn database(error: sqlx::Error) -> StoreError {
        StoreError::Database(Box::new(error))
    }

    pub(super) async fn enqueue(
        conn: &mut AnyConnection,
        jobs: &str,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        let (args, fields, state) = job.encoded()?;
        let insert = format!(
            "INSERT INTO {jobs} (kind, queue, args, state, max_attempts, run_at, unique_key, \
             request_id, owner, fields, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT DO NOTHING RETURNING id"
        );
        let inserted: Option<i64> = sqlx::query_scalar(AssertSqlSafe(insert))
            .bind(job.kind.clone())
            .bind(job.queue)
            .bind(args)
            .bind(state.as_str())
            .bind(i32::try_from(job.max_attempts.max(1)).unwrap_or(i32::MAX))
            .bind(millis(job.run_at))
            .bind(job.unique_key.clone())
            .bind(job.request_id)
            .bind(job.owner)
            .bind(fields)
            .bind(millis(SystemTime::now()))
            .fetch_optional(&mut *conn)
            .await
            .map_err(database)?;
        if let Some(id) = inserted {
            return Ok(Enqueued::New(JobId(id)));
        }
        let live = format!(
            "SELECT id FROM {jobs} WHERE kind = $1 AND unique_key = $2 \
             AND state IN ('held', 'available', 'running')"
        );
        let live: i64 = sqlx::query_scalar(AssertSqlSafe(live))
            .bind(job.kind)
            .bind(job.unique_key)
            .fetch_one(&mut *conn)
            .await
            .map_err(database)?;
        Ok(Enqueued::Duplicate(JobId(live)))
    }

    pub(super) async fn release(
        conn: &mut AnyConnection,
        jobs: &str,
        id: JobId,
    ) -> Result<bool, StoreError> {
        let release = format!(
            "UPDATE {jobs} SET state = 'available', owner = NULL WHERE id = $1 AND state = 'held'"
        );
        let done = sqlx::query(AssertSqlSafe(release))
            .bind(id.0)
            .execute(conn)
            .await
            .map_err(database)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn complete(
        conn: &mut AnyConnection,
        jobs: &str,
        id: JobId,
        token: i64,
    ) -> Result<(), StoreError> {
        let complete = format!(
            "UPDATE {jobs} SET state = 'succeeded', lease_until = NULL, owner = NULL, \
             finished_at = $1 WHERE id = $2 AND token = $3 AND state = 'running'"
        );
        let done = sqlx::query(AssertSqlSafe(complete))
            .bind(millis(SystemTime::now()))
            .bind(id.0)
            .bind(token)
            .execute(conn)
            .await
            .map_err(database)?;
        match done.rows_affected() {
            0 => Err(StoreError::Stale(id)),
            _ => Ok(()),
        }
    }
}
