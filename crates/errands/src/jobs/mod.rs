//! Durable jobs in the runtime (feature `sqlite`): job types, their registration, enqueueing,
//! and the worker that runs them.
//!
//! A job type is a [`Job`]: serializable arguments, a stable [`NAME`](Job::NAME), and an async
//! `run` with the application's state and the job's [`JobContext`]. Register the store and the
//! types on the builder; enqueue through [`Errands::jobs`](crate::Errands::jobs), or as a task
//! of a request in any timing mode ([`DurableTask`]: `tasks.after_response().durable(job)`,
//! held until the response was sent) — on its own, or inside the caller's sqlx transaction,
//! so that the job commits or rolls back with the caller's writes. The rules are on the
//! semantics page, "Durable jobs".
//!
//! **Running.** A worker claims due jobs under a lease (renewed by heartbeats while the job
//! runs) and runs each attempt as a task of the runtime, named after the job type, shielded,
//! with a `job_id` field: limits, shutdown, reports and stats apply as to any task. The task
//! succeeds when the attempt's result is recorded — done, or a retry scheduled by the job
//! type's [`RetryPolicy`](crate::RetryPolicy), persisted as the job's next `run_at` — and fails
//! when the job failed for good: reported once, through the same reporters as everything else.
//! Arguments that no longer decode, and job types no process here knows, fail the job and are
//! reported the same way, never retried in a loop.
//!
//! **Crashes and shutdown.** A job whose worker died is rescued once its lease expires: run
//! again (at least once), or failed when no attempts are left. Shutdown stops claiming when the
//! drain starts; jobs still running when their tasks are stopped go back to `available`
//! without losing an attempt (before the application's teardown hooks run). A failure whose
//! report a crash interrupted is reported by the next process, with the job id and attempt.

mod enqueue;
mod job;
mod registry;
mod release;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use enqueue::{DurableTask, EnqueueError, JobBuilder, Jobs};
pub use job::{Job, JobContext, JobFailure};

use crate::durable::{AnyStore, Store, StoreError};

pub(crate) use registry::Registry;
pub(crate) use release::GROUP;
pub(crate) use worker::{Worker, start};

/// A runtime's store, job types and worker.
pub(crate) struct Durable {
    pub(crate) store: AnyStore,
    pub(crate) registry: Registry,
    pub(crate) worker: Worker,
    /// Writes made outside any task (a skipped job's record): stopping waits for them.
    pub(crate) writes: tokio_util::task::TaskTracker,
    /// How long finished jobs are kept before they are pruned.
    pub(crate) retention: Duration,
}

/// How long finished jobs are kept unless configured: a week.
pub(crate) const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a claim is leased unless configured.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// How many jobs of a queue run at once unless configured.
pub(crate) const DEFAULT_CONCURRENCY: usize = 16;

impl Durable {
    /// `queues`: the configured queues' concurrency; the registered job types' queues and
    /// `default` are added with [`DEFAULT_CONCURRENCY`].
    pub(crate) fn new(
        store: AnyStore,
        registry: Registry,
        mut queues: Vec<(String, usize)>,
        lease: Duration,
        retention: Duration,
    ) -> Self {
        for name in registry.queues().chain(["default"]) {
            if !queues.iter().any(|(queue, _)| queue == name) {
                queues.push((name.to_owned(), DEFAULT_CONCURRENCY));
            }
        }
        Durable {
            store,
            registry,
            worker: Worker::new(queues, lease, Duration::from_secs(1)),
            writes: tokio_util::task::TaskTracker::new(),
            retention,
        }
    }
}

/// A durable job's work — an attempt, or a held job's release — dropped before it ended,
/// stopped by shutdown, is handed back, not lost: its job is still `running` (or `held`) in
/// the store, and goes back to `available` when the process stops (or its write was made
/// just before). Disarmed when the work ended.
pub(crate) struct HandBack(pub(crate) Option<Arc<crate::runtime::Runtime>>);

impl HandBack {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for HandBack {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.hand_back(1);
        }
    }
}

/// This process stops: the first teardown hook, when every task is terminal, so no attempt
/// of ours is still running. Its running jobs go back to `available`, and the held jobs whose
/// release did not happen (shutdown stopped it) are released.
pub(crate) async fn stop(durable: Arc<Durable>) -> Result<(), StoreError> {
    durable.writes.close();
    durable.writes.wait().await;
    let owner = &durable.worker.owner;
    let requeued = durable.store.requeue(owner).await?;
    let released = durable.store.leave(owner).await?;
    if requeued + released > 0 {
        tracing::info!(target: "errands", requeued, released, "durable jobs still running, or still held, went back to available");
    }
    Ok(())
}
