//! The store's enqueues go through one writer: SQLite has one write lock, and writers that
//! race for it sleep in its busy handler. The writer takes the enqueues waiting at the moment
//! (up to [`BATCH`]) and commits them in one transaction, so under load one commit — one
//! write of the log — serves many jobs; alone, an enqueue is its own transaction as before.

use sqlx::Connection;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::{SqliteStore, database};
use crate::durable::store::{Enqueued, NewJob, StoreError};

/// The most enqueues committed together.
const BATCH: usize = 64;

/// How many enqueues may wait for the writer; more wait to be queued.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Enqueued, StoreError>>;

/// The sending side of the writer.
#[derive(Clone, Debug)]
pub(super) struct Writer(mpsc::Sender<(NewJob, Reply)>);

impl Writer {
    /// Starts the writer on `pool`, on the current tokio runtime.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(pool, rx));
        Writer(tx)
    }

    /// Stores `job` with the enqueues waiting beside it.
    pub(super) async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let (reply, done) = oneshot::channel();
        let gone = || StoreError::Database("the job store's writer stopped".into());
        self.0.send((job, reply)).await.map_err(|_| gone())?;
        done.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn write(pool: SqlitePool, mut rx: mpsc::Receiver<(NewJob, Reply)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = batch.drain(..).unzip();
        match commit(&pool, jobs).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            // Nothing of the batch was written: each enqueue fails with the database's error
            // (the first with the error itself, the others with its text).
            Err(error) => {
                let text = crate::chain::line(&error);
                let mut error = Some(error);
                for reply in replies {
                    let error = error
                        .take()
                        .unwrap_or_else(|| StoreError::Database(text.clone().into()));
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}

/// Commits `jobs` in one transaction. A job that cannot be stored on its own (its arguments
/// do not encode) fails alone; a database failure fails them all.
async fn commit(
    pool: &SqlitePool,
    jobs: Vec<NewJob>,
) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
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
