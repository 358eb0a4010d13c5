//! [`PgStore`]: the store contract on PostgreSQL, through sqlx, for several processes and
//! machines sharing one queue.
//!
//! The tables live in their own schema, `errands`, versioned in `errands.schema_versions`
//! (the application's migrations never see them); processes starting together apply the
//! migrations once, under an advisory lock. Claims take due jobs with `FOR UPDATE SKIP
//! LOCKED`, so concurrent workers never wait on, nor take, each other's rows. A job that
//! becomes runnable notifies `errands_jobs` (from a trigger; PostgreSQL sends a
//! transaction's identical notifications once), and workers listen for it, polling as well:
//! a lost listening connection delays work by at most one poll. Maintenance that needs no
//! more than one process — rescuing expired leases, releasing dead processes' held jobs,
//! pruning — runs under a transaction-scoped advisory lock: a process that finds it taken
//! skips its turn.
//!
//! Enqueues and completions go through a writer task each (on the tokio runtime the store
//! was made on), which writes those that wait together at once: the enqueues in one
//! transaction, the completions in one statement. Jobs with a unique key are enqueued in a
//! transaction of their own: their insert may wait on another transaction holding the key.
//!
//! Connections: the store uses the pool it is given, plus one connection per process of its
//! own, for `LISTEN` (reopened after a second when it is lost, the worker polling meanwhile).

use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Connection, Row};

mod batches;

use batches::Batches;

use super::state::{JobAttempt, JobFilter, JobId, JobState, JobStatus, QueueCounts};
use super::store::{Claimed, Enqueued, NewJob, Store, StoreError};
use super::{at, attempts, bounded, count, counts, json, millis, queues};

/// The schema's migrations, in order: (version, SQL).
const MIGRATIONS: [(i64, &str); 4] = [
    (1, include_str!("0001_jobs.sql")),
    (2, include_str!("0002_attempts.sql")),
    (3, include_str!("0003_traceparent.sql")),
    (4, include_str!("0004_runs.sql")),
];

/// The advisory lock keys: migrations, and maintenance.
const MIGRATION_LOCK: i64 = 0x6572_7261_6e64_0001;
const MAINTENANCE_LOCK: i64 = 0x6572_7261_6e64_0002;

/// The channel runnable jobs are announced on.
pub(crate) const CHANNEL: &str = "errands_jobs";

const COMPLETE: &str = "UPDATE errands.jobs SET state = 'succeeded', lease_until = NULL, \
     owner = NULL, finished_at = $1 WHERE id = $2 AND token = $3 AND state = 'running'";

/// The durable job store on PostgreSQL.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use errands::durable::PgStore;
///
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/app").await?;
/// let store = PgStore::new(pool).await?; // creates or upgrades the `errands` schema
/// let errands = errands::Errands::builder().durable(store).build();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    batches: Batches,
}

impl PgStore {
    /// A store on `pool`, whose schema is created or upgraded first.
    ///
    /// # Errors
    ///
    /// If the database is unavailable, or a migration fails (nothing of it is applied).
    pub async fn new(pool: PgPool) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await.map_err(database)?;
        migrate(&mut conn).await?;
        drop(conn);
        let batches = Batches::start(&pool);
        Ok(PgStore { pool, batches })
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores `job` on `conn` — typically the caller's open transaction (`&mut *tx`), so that
    /// the job commits, or rolls back, with the caller's own writes.
    ///
    /// # Errors
    ///
    /// As for [`Store::enqueue`]; the caller's transaction is left to the caller.
    pub async fn enqueue_in(conn: &mut PgConnection, job: NewJob) -> Result<Enqueued, StoreError> {
        let (args, fields, state) = job.encoded()?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO errands.jobs (kind, queue, args, state, max_attempts, run_at, \
             unique_key, request_id, owner, fields, created_at, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&job.kind)
        .bind(&job.queue)
        .bind(args)
        .bind(state.as_str())
        .bind(i32::try_from(job.max_attempts.max(1)).unwrap_or(i32::MAX))
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
        if let Some(id) = inserted {
            return Ok(Enqueued::New(JobId(id)));
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT id FROM errands.jobs WHERE kind = $1 AND unique_key = $2 \
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
    pub async fn release_in(conn: &mut PgConnection, id: JobId) -> Result<bool, StoreError> {
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
        conn: &mut PgConnection,
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

    /// Runs `step` in a transaction holding the maintenance lock; `None` when another process
    /// holds it (and so does this step now).
    async fn maintenance<T>(
        &self,
        step: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(database)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(database)?;
        if !locked {
            return Ok(None);
        }
        let done = step(&mut tx).await?;
        tx.commit().await.map_err(database)?;
        Ok(Some(done))
    }
}

type Update<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs a write fenced by a token: nothing changed means the token no longer holds.
async fn fenced<'c>(
    executor: impl sqlx::PgExecutor<'c>,
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

fn release<'q>(id: JobId) -> Update<'q> {
    sqlx::query(
        "UPDATE errands.jobs SET state = 'available', owner = NULL \
         WHERE id = $1 AND state = 'held'",
    )
    .bind(id.0)
}

fn complete<'q>(id: JobId, token: i64) -> Update<'q> {
    sqlx::query(COMPLETE)
        .bind(millis(SystemTime::now()))
        .bind(id.0)
        .bind(token)
}

fn ids(mut ids: Vec<i64>) -> Vec<JobId> {
    ids.sort_unstable();
    ids.into_iter().map(JobId).collect()
}

impl Store for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        if job.unique_key.is_none() {
            return self.batches.enqueues.write(job).await;
        }
        // A unique key may wait on another transaction holding it (another process's batch,
        // a caller's open transaction): its own transaction, never holding up the batch.
        let mut tx = self.pool.begin().await.map_err(database)?;
        let enqueued = PgStore::enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(database)?;
        Ok(enqueued)
    }

    async fn release(&self, id: JobId) -> Result<bool, StoreError> {
        let done = release(id).execute(&self.pool).await.map_err(database)?;
        Ok(done.rows_affected() > 0)
    }

    async fn skip(&self, id: JobId, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE errands.jobs SET state = 'skipped', last_error = $1, report_owed = 1, \
             finished_at = $2 WHERE id = $3 AND state = 'held'",
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
        let rows = sqlx::query(
            "UPDATE errands.jobs SET state = 'running', attempt = attempt + 1, \
             token = token + 1, lease_until = $1, owner = $2 \
             WHERE id IN (SELECT id FROM errands.jobs WHERE state = 'available' \
             AND queue = $3 AND run_at <= $4 ORDER BY run_at, id LIMIT $5 \
             FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, args, attempt, GREATEST(attempt - run_from, 1) AS run_attempt, \
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
            "UPDATE errands.jobs SET lease_until = $1 \
             WHERE id = $2 AND token = $3 AND state = 'running'",
        )
        .bind(millis(until))
        .bind(id.0)
        .bind(token);
        fenced(&self.pool, id, query).await
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
            "UPDATE errands.jobs SET \
             state = CASE WHEN $1::BIGINT IS NOT NULL AND attempt < max_attempts \
                 THEN 'available' ELSE 'failed' END, \
             report_owed = CASE WHEN $1::BIGINT IS NOT NULL AND attempt < max_attempts \
                 THEN 0 ELSE 1 END, \
             finished_at = CASE WHEN $1::BIGINT IS NOT NULL AND attempt < max_attempts \
                 THEN NULL ELSE $2 END, \
             owner = CASE WHEN $1::BIGINT IS NOT NULL AND attempt < max_attempts \
                 THEN NULL ELSE owner END, \
             run_at = COALESCE($1::BIGINT, run_at), last_error = $3, lease_until = NULL \
             WHERE id = $4 AND token = $5 AND state = 'running'",
        )
        .bind(retry_at.map(millis))
        .bind(millis(SystemTime::now()))
        .bind(bounded(error))
        .bind(id.0)
        .bind(token);
        fenced(&self.pool, id, query).await
    }

    async fn rescue(&self, now: SystemTime) -> Result<Vec<JobId>, StoreError> {
        let now = millis(now);
        let rescued = self
            .maintenance(async |conn: &mut PgConnection| {
                sqlx::query_scalar(
                    "UPDATE errands.jobs SET \
                     state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'failed' END, \
                     report_owed = CASE WHEN attempt < max_attempts THEN 0 ELSE 1 END, \
                     finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE $1 END, \
                     run_at = $1, lease_until = NULL, owner = NULL, \
                     last_error = 'the lease expired: the worker stopped, or stopped renewing it' \
                     WHERE state = 'running' AND lease_until < $1 RETURNING id",
                )
                .bind(now)
                .fetch_all(conn)
                .await
                .map_err(database)
            })
            .await?;
        Ok(ids(rescued.unwrap_or_default()))
    }

    async fn requeue(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE errands.jobs SET state = 'available', attempt = attempt - 1, \
             lease_until = NULL, owner = NULL, run_at = $1 \
             WHERE state = 'running' AND owner = $2",
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
            "UPDATE errands.jobs SET state = 'available', attempt = attempt - 1, \
             lease_until = NULL, owner = NULL, run_at = $1 \
             WHERE id = $2 AND token = $3 AND state = 'running'",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0)
        .bind(token);
        fenced(&self.pool, id, query).await
    }

    async fn cancel(&self, id: JobId) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands.jobs SET state = 'cancelled', owner = NULL, finished_at = $1 \
             WHERE id = $2 AND state IN ('held', 'available')",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn retry(&self, id: JobId, now: SystemTime) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands.jobs SET state = 'available', run_from = attempt, \
             max_attempts = LEAST(attempt::BIGINT + max_attempts - run_from, 2147483647)::INTEGER, \
             run_at = $1, finished_at = NULL, report_owed = 0, owner = NULL \
             WHERE id = $2 AND state IN ('failed', 'cancelled', 'discarded', 'skipped')",
        )
        .bind(millis(now))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn discard(&self, id: JobId) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE errands.jobs SET state = 'discarded', owner = NULL, report_owed = 0, \
             finished_at = $1 WHERE id = $2 AND state NOT IN ('running', 'discarded')",
        )
        .bind(millis(SystemTime::now()))
        .bind(id.0);
        self.change(id, query).await
    }

    async fn status(&self, id: JobId) -> Result<JobStatus, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, queue, state, attempt, max_attempts, last_error, request_id, \
             fields, created_at, run_at, finished_at, traceparent FROM errands.jobs WHERE id = $1",
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
            "UPDATE errands.jobs SET report_claimed_until = $1 \
             WHERE id IN (SELECT id FROM errands.jobs WHERE report_owed = 1 \
             AND (report_claimed_until IS NULL OR report_claimed_until < $2) \
             AND (owner IS NULL OR owner NOT IN \
                 (SELECT owner FROM errands.processes WHERE alive_until >= $2)) \
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
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
            sqlx::query_as("SELECT state, COUNT(*) FROM errands.jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(database)?;
        Ok(counts(rows))
    }

    async fn queues(&self, now: SystemTime) -> Result<Vec<QueueCounts>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT queue, COUNT(*) FILTER (WHERE state = 'held'), \
             COUNT(*) FILTER (WHERE state = 'available'), \
             COUNT(*) FILTER (WHERE state = 'running'), \
             MIN(run_at) FILTER (WHERE state = 'available' AND run_at <= $1) \
             FROM errands.jobs WHERE state IN ('held', 'available', 'running') \
             GROUP BY queue ORDER BY queue",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        Ok(queues(rows))
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, queue, state, attempt, max_attempts, last_error, request_id, \
             fields, created_at, run_at, finished_at, traceparent FROM errands.jobs \
             WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR kind = $2) \
             AND ($3::BIGINT IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
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
        let rows: Vec<(i32, i64, String)> = sqlx::query_as(
            "SELECT attempt, finished_at, error FROM (SELECT id, attempt, finished_at, error \
             FROM errands.attempts WHERE job_id = $1 ORDER BY id DESC LIMIT 100) AS last \
             ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(database)?;
        let rows = rows
            .into_iter()
            .map(|(n, at, error)| (i64::from(n), at, error));
        Ok(attempts(rows.collect()))
    }

    async fn reported(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query("UPDATE errands.jobs SET report_owed = 0 WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn alive(&self, owner: &str, until: SystemTime) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO errands.processes (owner, alive_until) VALUES ($1, $2) \
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
        let released = self
            .maintenance(async |conn: &mut PgConnection| {
                let released: Vec<i64> = sqlx::query_scalar(
                    "UPDATE errands.jobs SET state = 'available', owner = NULL \
                     WHERE state = 'held' AND owner NOT IN \
                     (SELECT owner FROM errands.processes WHERE alive_until >= $1) RETURNING id",
                )
                .bind(now)
                .fetch_all(&mut *conn)
                .await
                .map_err(database)?;
                sqlx::query("DELETE FROM errands.processes WHERE alive_until < $1")
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(database)?;
                Ok(released)
            })
            .await?;
        Ok(ids(released.unwrap_or_default()))
    }

    async fn leave(&self, owner: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(database)?;
        let released = sqlx::query(
            "UPDATE errands.jobs SET state = 'available', owner = NULL \
             WHERE state = 'held' AND owner = $1",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(database)?
        .rows_affected();
        sqlx::query("DELETE FROM errands.processes WHERE owner = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        tx.commit().await.map_err(database)?;
        Ok(released)
    }

    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        let before = millis(before);
        let pruned = self
            .maintenance(async |conn: &mut PgConnection| {
                let done = sqlx::query(
                    "DELETE FROM errands.jobs WHERE finished_at IS NOT NULL AND finished_at < $1 \
                     AND report_owed = 0 \
                     AND state IN ('succeeded', 'failed', 'cancelled', 'discarded', 'skipped')",
                )
                .bind(before)
                .execute(conn)
                .await
                .map_err(database)?;
                Ok(done.rows_affected())
            })
            .await?;
        Ok(pruned.unwrap_or(0))
    }

    async fn wait_for_jobs(&self, wake: std::sync::Arc<tokio::sync::Notify>) {
        listen(&self.pool, &wake).await;
    }
}

/// Wakes `wake` at every notification on [`CHANNEL`], for as long as the store lives;
/// reconnects (after a pause) when the listening connection is lost.
async fn listen(pool: &PgPool, wake: &tokio::sync::Notify) {
    loop {
        match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(mut listener) => {
                if listener.listen(CHANNEL).await.is_ok() {
                    // Anything enqueued while not listening: look now.
                    wake.notify_one();
                    while let Ok(Some(_)) = listener.try_recv().await {
                        wake.notify_one();
                    }
                }
                tracing::debug!(target: "errands", "listening for runnable jobs stopped: reconnecting");
            }
            Err(error) => {
                tracing::warn!(target: "errands", error = %crate::chain::line(&error), "listening for runnable jobs failed: polling until it works again");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Applies the migrations not applied yet, each in its own transaction with its version;
/// processes starting together wait for each other on an advisory lock.
async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.map_err(database)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS errands; \
         CREATE TABLE IF NOT EXISTS errands.schema_versions (version BIGINT PRIMARY KEY);",
    )
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    for (version, sql) in MIGRATIONS {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM errands.schema_versions WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(database)?;
        if applied.is_none() {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            sqlx::query("INSERT INTO errands.schema_versions (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
        }
    }
    tx.commit().await.map_err(database)?;
    Ok(())
}

fn claimed(row: &PgRow) -> Claimed {
    Claimed {
        id: JobId(row.get("id")),
        kind: row.get("kind"),
        args: json(row.get("args")),
        attempt: count(i64::from(row.get::<i32, _>("attempt"))),
        run_attempt: count(i64::from(row.get::<i32, _>("run_attempt"))),
        max_attempts: count(i64::from(row.get::<i32, _>("max_attempts"))),
        token: row.get("token"),
        request_id: row.get("request_id"),
        fields: json(row.get("fields")),
        traceparent: row.get("traceparent"),
    }
}

fn status(row: &PgRow) -> Result<JobStatus, StoreError> {
    let id = JobId(row.get("id"));
    let state: String = row.get("state");
    Ok(JobStatus {
        id,
        kind: row.get("kind"),
        queue: row.get("queue"),
        state: JobState::parse(&state).ok_or_else(|| {
            StoreError::Database(format!("job {id} has the unknown state {state:?}").into())
        })?,
        attempt: count(i64::from(row.get::<i32, _>("attempt"))),
        max_attempts: count(i64::from(row.get::<i32, _>("max_attempts"))),
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
