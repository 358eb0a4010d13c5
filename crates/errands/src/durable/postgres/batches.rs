//! The PostgreSQL store's batched writes (see [`Batcher`]): enqueues in one transaction, and
//! completions in one statement.

use std::time::SystemTime;

use sqlx::postgres::PgPool;

use super::{PgStore, database};
use crate::durable::batch::{Batcher, Committed};
use crate::durable::millis;
use crate::durable::state::JobId;
use crate::durable::store::{Enqueued, NewJob, StoreError};

/// The store's two batchers.
#[derive(Clone, Debug)]
pub(super) struct Batches {
    pub(super) enqueues: Batcher<NewJob, Enqueued>,
    /// `(id, token)` of jobs that succeeded.
    pub(super) completions: Batcher<(JobId, i64), ()>,
}

impl Batches {
    /// Starts both on `pool`, on the current tokio runtime.
    pub(super) fn start(pool: &PgPool) -> Self {
        let (on_enqueue, on_complete) = (pool.clone(), pool.clone());
        Batches {
            enqueues: Batcher::start(move |jobs| enqueue(on_enqueue.clone(), jobs)),
            completions: Batcher::start(move |done| complete_all(on_complete.clone(), done)),
        }
    }
}

/// Stores `jobs` in one transaction. A job that cannot be stored on its own (its arguments do
/// not encode) fails alone; a database failure fails them all.
async fn enqueue(pool: PgPool, jobs: Vec<NewJob>) -> Committed<Enqueued> {
    let mut tx = pool.begin().await.map_err(database)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        match PgStore::enqueue_in(&mut tx, job).await {
            Err(StoreError::Database(error)) => return Err(StoreError::Database(error)),
            result => results.push(result),
        }
    }
    tx.commit().await.map_err(database)?;
    Ok(results)
}

/// Ends the jobs `done` as succeeded in one statement, each fenced by its token: a job the
/// statement did not change is [`StoreError::Stale`].
async fn complete_all(pool: PgPool, done: Vec<(JobId, i64)>) -> Committed<()> {
    let (ids, tokens): (Vec<i64>, Vec<i64>) = done.iter().map(|(id, token)| (id.0, *token)).unzip();
    let changed: Vec<i64> = sqlx::query_scalar(
        "UPDATE errands.jobs SET state = 'succeeded', lease_until = NULL, owner = NULL, \
         finished_at = $1 FROM unnest($2::BIGINT[], $3::BIGINT[]) AS done(id, token) \
         WHERE jobs.id = done.id AND jobs.token = done.token AND jobs.state = 'running' \
         RETURNING jobs.id",
    )
    .bind(millis(SystemTime::now()))
    .bind(&ids)
    .bind(&tokens)
    .fetch_all(&pool)
    .await
    .map_err(database)?;
    Ok(done
        .into_iter()
        .map(|(id, _)| {
            if changed.contains(&id.0) {
                Ok(())
            } else {
                Err(StoreError::Stale(id))
            }
        })
        .collect())
}
