//! The SQLite store's batched writes (see [`Batcher`]): enqueues, and completions. SQLite has
//! one write lock, and writers that race for it sleep in its busy handler (a millisecond or
//! more): a batch takes it once, with `BEGIN IMMEDIATE`, and the store's busiest writers — the
//! two batchers and the claims — take turns on an async lock first ([`Writing`]), so that
//! within a process they wait for each other without sleeping.

use std::sync::Arc;

use sqlx::Connection;
use sqlx::sqlite::SqlitePool;
use tokio::sync::Mutex;

use super::{SqliteStore, complete, database, fenced};
use crate::durable::batch::{Batcher, Committed};
use crate::durable::state::JobId;
use crate::durable::store::{Enqueued, NewJob, StoreError};

/// The turn of the store's busiest writers in this process.
pub(super) type Writing = Arc<Mutex<()>>;

/// The store's two batchers.
#[derive(Clone, Debug)]
pub(super) struct Batches {
    pub(super) enqueues: Batcher<NewJob, Enqueued>,
    /// `(id, token)` of jobs that succeeded.
    pub(super) completions: Batcher<(JobId, i64), ()>,
}

impl Batches {
    /// Starts both on `pool`, on the current tokio runtime, each writing in its turn.
    pub(super) fn start(pool: &SqlitePool, writing: &Writing) -> Self {
        let (enqueue_pool, enqueue_turn) = (pool.clone(), writing.clone());
        let (complete_pool, complete_turn) = (pool.clone(), writing.clone());
        Batches {
            enqueues: Batcher::start(move |jobs| {
                enqueue(enqueue_pool.clone(), enqueue_turn.clone(), jobs)
            }),
            completions: Batcher::start(move |done| {
                complete_all(complete_pool.clone(), complete_turn.clone(), done)
            }),
        }
    }
}

/// Stores `jobs` in one transaction. A job that cannot be stored on its own (its arguments do
/// not encode) fails alone; a database failure fails them all.
async fn enqueue(pool: SqlitePool, writing: Writing, jobs: Vec<NewJob>) -> Committed<Enqueued> {
    let _turn = writing.lock().await;
    let mut conn = pool.acquire().await.map_err(database)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(database)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        match SqliteStore::enqueue_in(&mut tx, job).await {
            Err(StoreError::Database(error)) => return Err(StoreError::Database(error)),
            result => results.push(result),
        }
    }
    tx.commit().await.map_err(database)?;
    Ok(results)
}

/// Ends the jobs `done` as succeeded in one transaction, each fenced by its token.
async fn complete_all(
    pool: SqlitePool,
    writing: Writing,
    done: Vec<(JobId, i64)>,
) -> Committed<()> {
    let _turn = writing.lock().await;
    let mut conn = pool.acquire().await.map_err(database)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(database)?;
    let mut results = Vec::with_capacity(done.len());
    for (id, token) in done {
        match fenced(&mut *tx, id, complete(id, token)).await {
            Err(StoreError::Database(error)) => return Err(StoreError::Database(error)),
            result => results.push(result),
        }
    }
    tx.commit().await.map_err(database)?;
    Ok(results)
}
