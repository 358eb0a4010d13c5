//! [`SqliteStore`]: the store contract on SQLite, through sqlx.
//!
//! One writer at a time is SQLite's rule; every write here is one statement (or one
//! `BEGIN IMMEDIATE` transaction), so writers queue on the database's busy timeout rather
//! than fail on a lock upgrade. Use WAL mode for readers beside the writer, and with it
//! `synchronous = NORMAL` (`SqliteConnectOptions::synchronous`): a commit then survives a
//! crash of the process (`kill -9`), and only a power loss may undo the last ones, while
//! SQLite's default, `FULL`, waits for the disk at every commit — a few milliseconds each,
//! which caps a queue at a few hundred jobs a second. The tables live
//! in the application's own database file unless it gives the store another pool; the
//! schema is versioned in its own table (`errands_schema`), apart from the application's
//! migrations.

use std::time::{Duration, SystemTime};

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Connection, Row};

mod batches;

use batches::{Batches, Writing};

use super::state::{JobAttempt, JobFilter, JobId, JobState, JobStatus, QueueCounts};
use super::store::{Claimed, Enqueued, NewJob, Store, StoreError};
use super::{at, attempts, bounded, count, counts, json, millis, queues};

/// The schema's migrations, in order: (version, SQL).
const MIGRATIONS: [(i64, &str); 6] = [
    (1, include_str!("0001_jobs.sql")),
    (2, include_str!("0002_processes.sql")),
    (3, include_str!("0003_report_claims.sql")),
    (4, include_str!("0004_attempts.sql")),
    (5, include_str!("0005_traceparent.sql")),
    (6, include_str!("0006_runs.sql")),
];

/// Ends a running job, fenced by its token: (finished_at, id, token).
const COMPLETE: &str = "UPDATE errands_jobs SET state = 'succeeded', lease_until = NULL, \
     owner = NULL, finished_at = ? WHERE id = ? AND token = ? AND state = 'running'";

/// The durable job store on SQLite.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use errands::durable::{NewJob, SqliteStore, Store};
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let store = SqliteStore::new(pool).await?; // creates or upgrades its tables
/// let id = store.enqueue(NewJob::new("send_invoice", serde_json::json!({"order": 7}))).await?.id();
/// assert_eq!(store.status(id).await?.state, errands::durable::JobState::Available);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    batches: Batches,
    writing: Writing,
}

impl SqliteStore {
    /// A store on `pool`, whose tables are created or upgraded first. Its enqueues, and its
    /// completions, go through a writer task each, on the current tokio runtime, which commits
    /// those that wait together in one transaction.
    ///
    /// # Errors
    ///
    /// If the database is unavailable, or a migration fails (nothing of it is applied).
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await.map_err(database)?;
        migrate(&mut conn).await?;
        drop(conn);
        let writing = Writing::default();
        let batches = Batches::start(&pool, &writing);
        Ok(SqliteStore {
            pool,
            batches,
            writing,
        })
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Stores `job` on `conn` — typically the caller's open transaction (`&mut *tx`), so
    /// that the job commits, or rolls back, with the caller's own writes.
    ///
    /// # Errors
    ///
    /// As for [`Store::enqueue`]; the caller's transaction is left to the caller.
    pub async fn enqueue_in(
        conn: &mut SqliteConnection,
        job: NewJob,
    ) -> Result<Enqueued, StoreError> {
        let (args, fields, state) = job.encoded()?;
        let inserted = sqlx::query(
            "INSERT INTO errands_jobs (kind, queue, args, state, max_attempts, run_at, \
             unique_key, request_id, owner, fields, created_at, traceparent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&job.kind)
        .bind(&job.queue)
        .bind(args)
        .bind(state.as_str())
        .bind(i64::from(job.max_attempts.max(1)))
        .bind(millis(job.run_at))
        .bind(&job.unique_key)
        .bind(&job.request_id)
        .bind(&job.owner)
        .bind(fields)
        .bind(millis(SystemTime::now()))
        .bind(&job.traceparent)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database)?;
        if let Some(row) = inserted {
            return Ok(Enqueued::New(JobId(row.get(0))));
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT id FROM errands_jobs WHERE kind = ? AND unique_key = ? \
             AND state IN ('held', 'available', 'running')",
        )
        .bind(&job.kind)
        .bind(&job.unique_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(database)?;
        Ok(Enqueued::Duplicate(JobId(live)))
    }

    /// Releases the held job `id` on `conn` (the transaction that enqueued it); `false` if it
    /// was not held.
    ///
    /// # Errors
    ///
    /// The database's failure.
    pub async fn release_in(conn: &mut SqliteConnection, id: JobId) -> Result<bool, StoreError> {
        let done = release(id).execute(conn).await.map_err(database)?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends a running job as `succeeded` on `conn` — the job's own transaction, together with
    /// its side effect — while `token` holds.
    ///
    /// # Errors
    ///
    /// [`StoreError::Stale`] if the token no longer holds (nothing written), or the
    /// database's failure.
    pub async fn complete_in(
        conn: &mut SqliteConnection,
        id: JobId,
        token: i64,
    ) -> Result<(), StoreError> {
        fenced(&mut *conn, id, complete(id, token)).await
    }

    /// Runs one statement that must change the job `id` in a state it allows; when it changed
    /// nothing, says why.
    async fn change(&self, id: JobId, query: Update<'_>) -> Result<(), StoreError> {
        let changed = query
            .execute(&self.pool)
            .await
            .map_err(database)?
            .rows_affected();
        if changed > 0 {
            return Ok(());
        }
        let state = self.status(id).await?.state;
        Err(StoreError::WrongState { id, state })
    }

    /// A write of a running job, fenced by its token.
    async fn fenced(&self, id: JobId, query: Update<'_>) -> Result<(), StoreError> {
        fenced(&self.pool, id, query).await
    }
}

type Update<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Runs a write fenced by a token: nothing changed means the token no longer holds.
async fn fenced<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    id: JobId,
    query: Update<'_>,
) -> Result<(), StoreError> {
    let changed = query
        .execute(executor)
        .await
        .map_err(database)?
        .rows_affected();
    match changed {
        0 => Err(StoreError::Stale(id)),
        _ => Ok(()),
    }
}

/// Makes the held job `id` runnable.
fn release<'q>(id: JobId) -> Update<'q> {
    sqlx::query(
        "UPDATE errands_jobs SET state = 'available', owner = NULL WHERE id = ? AND state = 'held'",
    )
    .bind(id.0)
}

/// Ends the running job `id` as `succeeded`, while `token` holds.
fn complete<'q>(id: JobId, token: i64) -> Update<'q> {
    sqlx::query(COMPLETE)
        .bind(millis(SystemTime::now()))
        .bind(id.0)
        .bind(token)
}

impl Store for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.batches.enqueues.write(job).await
    }

    async fn release(&self, id: JobId) -> Result<bool, StoreError> {
        let done = release(id).execute(&self.pool).await.map_err(database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn skip(&self, id: JobId, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE errands_jobs SET state = 'skipped', last_error = ?, report_owed = 1, \
             finished_at = ? WHERE id = ? AND state = 'held'",
        )
        .bind(bounded(reason))
        .bind(millis(SystemTime::now()))
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim(
        &self,
        queue: &str,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let _turn = self.writing.lock().await;
        let rows = sqlx::query(
            "UPDATE errands_jobs SET state = 'running', attempt = attempt + 1, \
             token = token + 1, lease_until = ?, owner = ? \
             WHERE id IN (SELECT id FROM errands_jobs WHERE state = 'available' \
             AND queue = ? AND run_at <= ? ORDER BY run_at, id LIMIT ?) \
             RETURNING id, kind, args, attempt, MAX(attempt - run_from, 1) AS run_attempt, \
             max_attempts, token, request_id, fields, traceparent",
        )
        .bind(millis(now + lease))
        .bind(owner)
        .bind(queue)
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        let mut claimed: Vec<Claimed> = rows.iter().map(claimed).collect();
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn heartbeat(&self, id: JobId, token: i64, until: SystemTime) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET lease_until = ? \
             WHERE id = ? AND token = ? AND state = 'running'",
        )
        .bind(millis(until))
        .bind(id.0)
        .bind(token);
        self.fenced(id, query).await
    }

    async fn complete(&self, id: JobId, token: i64) -> Result<(), StoreError> {
        self.batches.completions.write((id, token)).await
    }

    async fn fail(
        &self,
        id: JobId,
        token: i64,
        error: &str,
        retry_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET \
             state = CASE WHEN ?1 IS NOT NULL AND attempt < max_attempts \
                 THEN 'available' ELSE 'failed' END, \
             report_owed = CASE WHEN ?1 IS NOT NULL AND attempt < max_attempts THEN 0 ELSE 1 END, \
             finished_at = CASE WHEN ?1 IS NOT NULL AND attempt < max_attempts THEN NULL ELSE ?2 END, \
             owner = CASE WHEN ?1 IS NOT NULL AND attempt < max_attempts THEN NULL ELSE owner END, \
             run_at = COALESCE(?1, run_at), last_error = ?3, lease_until = NULL \
             WHERE id = ?4 AND token = ?5 AND state = 'running'",
        )
        .bind(retry_at.map(millis))
        .bind(millis(SystemTime::now()))
        .bind(bounded(error))
        .bind(id.0)
        .bind(token);
        self.fenced(id, query).await
    }

    async fn rescue(&self, now: SystemTime) -> Result<Vec<JobId>, StoreError> {
        let now = millis(now);
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE errands_jobs SET \
             state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'failed' END, \
             report_owed = CASE WHEN attempt < max_attempts THEN 0 ELSE 1 END, \
             finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE ?1 END, \
             run_at = ?1, lease_until = NULL, owner = NULL, \
             last_error = 'the lease expired: the worker stopped, or stopped renewing it' \
             WHERE state = 'running' AND lease_until < ?1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        let mut ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
        ids.sort();
        Ok(ids)
    }

    async fn requeue(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE errands_jobs SET state = 'available', attempt = attempt - 1, \
             lease_until = NULL, owner = NULL, run_at = ? \
             WHERE state = 'running' AND owner = ?",
        )
        .bind(millis(SystemTime::now()))
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(done.rows_affected())
    }

    async fn give_back(&self, id: JobId, token: i64) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET state = 'available', attempt = attempt - 1, \
             lease_until = NULL, owner = NULL, run_at = ? \
             WHERE id = ? AND token = ? AND state = 'running'",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0)
        .bind(token);
        self.fenced(id, query).await
    }

    async fn cancel(&self, id: JobId) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET state = 'cancelled', owner = NULL, finished_at = ? \
             WHERE id = ? AND state IN ('held', 'available')",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn retry(&self, id: JobId, now: SystemTime) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET state = 'available', run_from = attempt, \
             max_attempts = MIN(attempt + max_attempts - run_from, 2147483647), run_at = ?, \
             finished_at = NULL, report_owed = 0, owner = NULL \
             WHERE id = ? AND state IN ('failed', 'cancelled', 'discarded', 'skipped')",
        )
        .bind(millis(now))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn discard(&self, id: JobId) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands_jobs SET state = 'discarded', owner = NULL, report_owed = 0, \
             finished_at = ? WHERE id = ? AND state NOT IN ('running', 'discarded')",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn status(&self, id: JobId) -> Result<JobStatus, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, queue, state, attempt, max_attempts, last_error, request_id, fields, \
             created_at, run_at, finished_at, traceparent FROM errands_jobs WHERE id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(database)?
        .ok_or(StoreError::NotFound(id))?;
        status(&row)
    }

    async fn unreported(
        &self,
        now: SystemTime,
        claim: Duration,
        limit: u32,
    ) -> Result<Vec<JobStatus>, StoreError> {
        let rows = sqlx::query(
            "UPDATE errands_jobs SET report_claimed_until = ?1 \
             WHERE id IN (SELECT id FROM errands_jobs WHERE report_owed = 1 \
             AND (report_claimed_until IS NULL OR report_claimed_until < ?2) \
             AND (owner IS NULL OR owner NOT IN \
                 (SELECT owner FROM errands_processes WHERE alive_until >= ?2)) \
             ORDER BY id LIMIT ?3) \
             RETURNING id, kind, queue, state, attempt, max_attempts, last_error, request_id, \
             fields, created_at, run_at, finished_at, traceparent",
        )
        .bind(millis(now + claim))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        let mut owed = rows.iter().map(status).collect::<Result<Vec<_>, _>>()?;
        owed.sort_by_key(|status| status.id);
        Ok(owed)
    }

    async fn counts(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM errands_jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(database)?;
        Ok(counts(rows))
    }

    async fn queues(&self, now: SystemTime) -> Result<Vec<QueueCounts>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT queue, SUM(state = 'held'), SUM(state = 'available'), \
             SUM(state = 'running'), MIN(CASE WHEN state = 'available' AND run_at <= ? \
             THEN run_at END) FROM errands_jobs \
             WHERE state IN ('held', 'available', 'running') GROUP BY queue ORDER BY queue",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        Ok(queues(rows))
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, queue, state, attempt, max_attempts, last_error, request_id, fields, \
             created_at, run_at, finished_at, traceparent FROM errands_jobs \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
        )
        .bind(filter.state.map(JobState::as_str))
        .bind(&filter.kind)
        .bind(filter.before.map(|id| id.0))
        .bind(i64::from(filter.limit.min(JobFilter::MAX_LIMIT)))
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        rows.iter().map(status).collect()
    }

    async fn attempts(&self, id: JobId) -> Result<Vec<JobAttempt>, StoreError> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT attempt, finished_at, error FROM (SELECT id, attempt, finished_at, error \
             FROM errands_attempts WHERE job_id = ? ORDER BY id DESC LIMIT 100) ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        Ok(attempts(rows))
    }

    async fn reported(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query("UPDATE errands_jobs SET report_owed = 0 WHERE id = ?")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn alive(&self, owner: &str, until: SystemTime) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO errands_processes (owner, alive_until) VALUES (?, ?) \
             ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until",
        )
        .bind(owner)
        .bind(millis(until))
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(())
    }

    async fn release_orphans(&self, now: SystemTime) -> Result<Vec<JobId>, StoreError> {
        let now = millis(now);
        let mut conn = self.pool.acquire().await.map_err(database)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(database)?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE errands_jobs SET state = 'available', owner = NULL \
             WHERE state = 'held' AND owner NOT IN \
             (SELECT owner FROM errands_processes WHERE alive_until >= ?) RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(database)?;
        sqlx::query("DELETE FROM errands_processes WHERE alive_until < ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        tx.commit().await.map_err(database)?;
        let mut ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
        ids.sort();
        Ok(ids)
    }

    async fn leave(&self, owner: &str) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(database)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(database)?;
        let released = sqlx::query(
            "UPDATE errands_jobs SET state = 'available', owner = NULL \
             WHERE state = 'held' AND owner = ?",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(database)?
        .rows_affected();
        sqlx::query("DELETE FROM errands_processes WHERE owner = ?")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        tx.commit().await.map_err(database)?;
        Ok(released)
    }

    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM errands_jobs WHERE finished_at IS NOT NULL AND finished_at < ? \
             AND report_owed = 0 \
             AND state IN ('succeeded', 'failed', 'cancelled', 'discarded', 'skipped')",
        )
        .bind(millis(before))
        .execute(&self.pool)
        .await
        .map_err(database)?;
        Ok(done.rows_affected())
    }
}

/// Applies the migrations not applied yet, each in its own transaction with its version.
async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS errands_schema (version INTEGER PRIMARY KEY)")
        .execute(&mut *conn)
        .await
        .map_err(database)?;
    for (version, sql) in MIGRATIONS {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(database)?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM errands_schema WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(database)?;
        if applied.is_none() {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            sqlx::query("INSERT INTO errands_schema (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
        }
        tx.commit().await.map_err(database)?;
    }
    Ok(())
}

fn claimed(row: &SqliteRow) -> Claimed {
    Claimed {
        id: JobId(row.get("id")),
        kind: row.get("kind"),
        args: json(row.get("args")),
        attempt: count(row.get("attempt")),
        run_attempt: count(row.get("run_attempt")),
        max_attempts: count(row.get("max_attempts")),
        token: row.get("token"),
        request_id: row.get("request_id"),
        fields: json(row.get("fields")),
        traceparent: row.get("traceparent"),
    }
}

fn status(row: &SqliteRow) -> Result<JobStatus, StoreError> {
    let id = JobId(row.get("id"));
    let state: String = row.get("state");
    Ok(JobStatus {
        id,
        kind: row.get("kind"),
        queue: row.get("queue"),
        state: JobState::parse(&state).ok_or_else(|| {
            StoreError::Database(format!("job {id} has the unknown state {state:?}").into())
        })?,
        attempt: count(row.get("attempt")),
        max_attempts: count(row.get("max_attempts")),
        last_error: row.get("last_error"),
        request_id: row.get("request_id"),
        fields: json(row.get("fields")),
        traceparent: row.get("traceparent"),
        enqueued_at: at(row.get("created_at")),
        run_at: at(row.get("run_at")),
        finished_at: row.get::<Option<i64>, _>("finished_at").map(at),
    })
}

fn database(error: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(error))
}
