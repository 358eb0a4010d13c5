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
//! type's [`RetryPolicy`], persisted as the job's next `run_at` — and fails
//! when the job failed for good: reported once, through the same reporters as everything else.
//! Arguments that no longer decode, and job types no process here knows, fail the job and are
//! reported the same way, never retried in a loop.
//!
//! **Crashes and shutdown.** A job whose worker died is rescued once its lease expires: run
//! again (at least once), or failed when no attempts are left. Shutdown stops claiming when the
//! drain starts; jobs still running when their tasks are stopped go back to `available`
//! without losing an attempt (before the application's teardown hooks run). A failure whose
//! report a crash interrupted is reported by the next process, with the job id and attempt.

mod registry;
mod release;
mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::durable::{
    AnyStore, Enqueued, JobConnection, JobId, JobStatus, NewJob, Store, StoreError,
};
use crate::runtime::Runtime;
use crate::task::{BoxError, RetryPolicy, ScheduleError, TaskName, Timing};
use crate::tasks::TaskBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use registry::Registry;
pub(crate) use release::GROUP;
pub(crate) use worker::{Worker, start};

/// A durable job type.
///
/// ```
/// use errands::jobs::{Job, JobContext};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendInvoice { order_id: i64 }
///
/// #[derive(Clone)]
/// struct AppState;
///
/// impl Job for SendInvoice {
///     const NAME: &'static str = "send_invoice";
///     type State = AppState;
///
///     async fn run(self, cx: JobContext<AppState>) -> Result<(), errands::BoxError> {
///         let _ = (self.order_id, cx.attempt());
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The stable name stored with each job: renaming a type orphans its stored jobs.
    const NAME: &'static str;

    /// The application state `run` receives.
    type State: Clone + Send + Sync + 'static;

    /// The queue its jobs go to (default `default`); each queue has its own concurrency
    /// ([`ErrandsBuilder::job_queue`](crate::ErrandsBuilder::job_queue)).
    const QUEUE: &'static str = "default";

    /// Runs one attempt.
    fn run(self, cx: JobContext<Self::State>) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// The retry policy: how many attempts in all, and the backoff between them (default:
    /// 3 attempts, exponential from 1 s). A panic, a timeout and an error are all failed
    /// attempts.
    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_secs(1)).max_attempts(3)
    }

    /// Whether an attempt runs on through shutdown until the shutdown deadline (`true`, the
    /// default), or is stopped when the drain ends, like an unshielded task. Either way a job
    /// stopped by shutdown goes back to `available`, and the next process runs it.
    const SHIELD: bool = true;

    /// The longest one attempt may run (default: no limit); past it, the attempt failed.
    fn timeout() -> Option<Duration> {
        None
    }

    /// Runs when a job failed for good — its last attempt failed, its lease ran out with no
    /// attempts left, or its arguments no longer decode — after its report went out: the
    /// place for an alert or a compensating write. A crash right after it may run it once
    /// more, in the next process, with the same [`JobFailure::key`].
    fn on_failure(state: Self::State, failure: JobFailure) -> impl Future<Output = ()> + Send {
        let _ = (state, failure);
        async {}
    }
}

/// A job that failed for good, as [`Job::on_failure`] sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobFailure {
    /// The job's id.
    pub id: JobId,
    /// Its type's name.
    pub kind: String,
    /// The attempt that ended it.
    pub attempt: u32,
    /// The last error's chain, as one bounded line (never the job's arguments).
    pub error: String,
    /// The request that enqueued it, when known.
    pub request_id: Option<String>,
    /// Its context fields (a JSON object).
    pub fields: serde_json::Value,
}

impl JobFailure {
    /// `job:{id}:{attempt}`: the same for every delivery of this end, the key its report
    /// carries ([`ErrorReport::key`](crate::ErrorReport::key)).
    pub fn key(&self) -> String {
        format!("job:{}:{}", self.id, self.attempt)
    }
}

/// What a running job knows: the application state and its own identity.
#[derive(Clone, Debug)]
pub struct JobContext<S> {
    state: S,
    id: JobId,
    attempt: u32,
    request_id: Option<String>,
    /// This attempt's fencing token.
    token: i64,
    /// Set once the job recorded its own completion ([`JobContext::complete_in`]).
    completed: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> JobContext<S> {
    /// The application state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The id of the request that enqueued the job, if one did.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Records the job's completion on `conn` — the transaction that writes the job's side
    /// effect — so that both commit together, or neither: a side effect in the same database
    /// then happens effectively once, even if the process dies between the write and the
    /// job's end. Call it last, then commit; if the transaction rolls back, the attempt counts
    /// as not done.
    ///
    /// # Errors
    ///
    /// [`StoreError::Stale`] when this attempt's lease was lost (another attempt owns the job:
    /// roll back), or the database's failure.
    pub async fn complete_in<C: JobConnection>(&self, conn: &mut C) -> Result<(), StoreError> {
        conn.complete_job(self.id, self.token).await?;
        self.completed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

/// Why a job could not be enqueued. Through `?` in a handler it becomes `503
/// service_unavailable` when the store's database failed (unavailable, or locked past its
/// busy timeout), `500 internal_error` otherwise — the handler's own transaction, if any, is
/// dropped and so rolled back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The runtime was built without a job store
    /// ([`ErrandsBuilder::durable`](crate::ErrandsBuilder::durable)).
    #[error("the errands runtime has no job store")]
    NoStore,
    /// The job type was not registered with
    /// [`ErrandsBuilder::job`](crate::ErrandsBuilder::job).
    #[error("the job type {0:?} is not registered")]
    Unregistered(&'static str),
    /// The store refused or failed.
    #[error("the job could not be stored")]
    Store(#[from] StoreError),
    /// The connection given to `enqueue_in` is not of the job store's database.
    #[error("a job kept in {store} cannot be enqueued on a {connection} connection")]
    WrongDatabase {
        /// The job store's database.
        store: &'static str,
        /// The connection's.
        connection: &'static str,
    },
}

/// The durable side of a runtime, as the handle [`Errands::jobs`](crate::Errands::jobs) gives.
#[derive(Clone)]
pub struct Jobs {
    inner: Option<Arc<Durable>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("store", &self.inner.is_some())
            .finish()
    }
}

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

impl Jobs {
    /// The durable side of `rt`, if it has one; its worker starts if it has not.
    pub(crate) fn of(rt: &Arc<Runtime>) -> Self {
        let inner = rt.attached::<Durable>();
        if let Some(durable) = &inner {
            start(durable, rt);
        }
        Jobs { inner }
    }

    fn durable(&self) -> Result<&Arc<Durable>, EnqueueError> {
        self.inner.as_ref().ok_or(EnqueueError::NoStore)
    }

    fn new_job<J: Job>(&self, job: &J) -> Result<NewJob, EnqueueError> {
        let durable = self.durable()?;
        if !durable.registry.knows(J::NAME) {
            return Err(EnqueueError::Unregistered(J::NAME));
        }
        let args = serde_json::to_value(job).map_err(StoreError::Encode)?;
        Ok(NewJob::new(J::NAME, args)
            .queue(J::QUEUE)
            .max_attempts(J::retry_policy().attempts()))
    }

    /// Stores `job`, runnable at once; returns its id. For a later start or a unique key,
    /// see [`prepare`](Self::prepare). With SQLite, inside an open write transaction use
    /// [`enqueue_in`](Self::enqueue_in): SQLite has one writer, so this enqueue would wait
    /// for that transaction (up to the busy timeout, then fail).
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; nothing is stored then.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<JobId, EnqueueError> {
        Ok(self.prepare(job).enqueue().await?.id())
    }

    /// A job to enqueue with options: a start time, a unique key.
    ///
    /// ```no_run
    /// # use errands::jobs::{Job, JobContext};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct SendInvoice { order_id: i64 }
    /// # impl Job for SendInvoice { const NAME: &'static str = "send_invoice"; type State = ();
    /// #     async fn run(self, _: JobContext<()>) -> Result<(), errands::BoxError> { Ok(()) } }
    /// # async fn f(errands: errands::Errands) -> Result<(), errands::jobs::EnqueueError> {
    /// use std::time::Duration;
    ///
    /// let invoice = errands
    ///     .jobs()
    ///     .prepare(SendInvoice { order_id: 7 })
    ///     .unique("invoice-7") // a second one for order 7 returns the live one
    ///     .run_after(Duration::from_secs(3600))
    ///     .enqueue()
    ///     .await?;
    /// let id = invoice.id();
    /// # Ok(()) }
    /// ```
    pub fn prepare<J: Job>(&self, job: J) -> JobBuilder<'static, J> {
        JobBuilder {
            jobs: self.clone(),
            job,
            unique: None,
            run_at: None,
            task: None,
        }
    }

    /// Stores `job` on `conn` — the caller's open transaction (`&mut *tx`) — so that it
    /// commits, or rolls back, with the caller's writes; the worker finds it once committed.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; the transaction is the caller's to roll back.
    pub async fn enqueue_in<J: Job, C: JobConnection>(
        &self,
        conn: &mut C,
        job: J,
    ) -> Result<JobId, EnqueueError> {
        // Most likely committed soon; if not, the next poll finds it.
        Ok(self.prepare(job).enqueue_in(conn).await?.id())
    }

    /// The job's status, for the "202 + poll" pattern.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown id, or the store's failure.
    pub async fn status(&self, id: JobId) -> Result<JobStatus, EnqueueError> {
        Ok(self.durable()?.store.status(id).await?)
    }

    /// The store, for operator actions (cancel, retry, discard, prune) and counts.
    pub fn store(&self) -> Option<&AnyStore> {
        self.inner.as_deref().map(|d| &d.store)
    }
}

/// Makes a task of a request durable: `tasks.after_response().durable(job)`.
///
/// The job takes the task's timing, fields and group: `immediate`, it is runnable once
/// stored; `after_route` or `after_response`, it is stored *held*, with its request and this
/// process, and released when the request reaches that moment — or skipped, by the same
/// rules as an in-memory task (recorded as `skipped` and reported). If this process dies
/// before the moment, the job is released once the process's heartbeat ran out: its enqueue
/// committed, so the work happens, at least once.
///
/// ```no_run
/// use axum::extract::State;
/// use errands::jobs::{DurableTask, Job, JobContext};
/// use errands::Tasks;
/// use errands::durable::JobId;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ProcessPayment { payment_id: i64 }
///
/// impl Job for ProcessPayment {
///     const NAME: &'static str = "process_payment";
///     type State = sqlx::SqlitePool;
///     async fn run(self, cx: JobContext<sqlx::SqlitePool>) -> Result<(), errands::BoxError> {
///         let _ = (self.payment_id, cx.state());
///         Ok(())
///     }
/// }
///
/// async fn pay(State(db): State<sqlx::SqlitePool>, tasks: Tasks) -> errands::Result<String> {
///     let mut tx = db.begin().await?;
///     let payment_id: i64 = sqlx::query_scalar("INSERT INTO payments DEFAULT VALUES RETURNING id")
///         .fetch_one(&mut *tx)
///         .await?;
///     // Committed with the payment, released once the response was sent.
///     let job: JobId = tasks
///         .after_response()
///         .durable(ProcessPayment { payment_id })
///         .enqueue_in(&mut tx)
///         .await?
///         .id();
///     tx.commit().await?;
///     Ok(format!("payment {payment_id}, job {job}"))
/// }
/// ```
pub trait DurableTask<'a> {
    /// This task, as the durable job `job`.
    fn durable<J: Job>(self, job: J) -> JobBuilder<'a, J>;
}

impl<'a> DurableTask<'a> for TaskBuilder<'a> {
    fn durable<J: Job>(self, job: J) -> JobBuilder<'a, J> {
        JobBuilder {
            jobs: Jobs::of(self.tasks().rt()),
            job,
            unique: None,
            run_at: None,
            task: Some(self),
        }
    }
}

/// A job to enqueue, with options; see [`Jobs::prepare`] and [`DurableTask::durable`].
#[must_use = "a job is stored when enqueued"]
pub struct JobBuilder<'a, J> {
    jobs: Jobs,
    job: J,
    unique: Option<String>,
    run_at: Option<SystemTime>,
    /// The task this job is, when made from one: its timing, request and fields.
    task: Option<TaskBuilder<'a>>,
}

impl<J> std::fmt::Debug for JobBuilder<'_, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBuilder")
            .field("unique", &self.unique)
            .field("run_at", &self.run_at)
            .finish_non_exhaustive()
    }
}

impl<J: Job> JobBuilder<'_, J> {
    /// Refuses a second unfinished job of this type with the same key: enqueueing then
    /// returns the live one ([`Enqueued::Duplicate`]).
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique = Some(key.into());
        self
    }

    /// Runnable no earlier than `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Runnable no earlier than `delay` from now.
    pub fn run_after(self, delay: Duration) -> Self {
        self.run_at(SystemTime::now() + delay)
    }

    /// Whether the job waits, held, for its request's moment.
    fn held(&self) -> bool {
        self.task.as_ref().is_some_and(|task| {
            task.timing() != Timing::Immediate && task.tasks().request_id().is_some()
        })
    }

    fn new_job(&self) -> Result<NewJob, EnqueueError> {
        let mut new = self.jobs.new_job(&self.job)?;
        if let Some(key) = &self.unique {
            new = new.unique(key.clone());
        }
        if let Some(at) = self.run_at {
            new = new.run_at(at);
        }
        if let Some(task) = &self.task {
            new.fields = task
                .fields()
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into();
            if let Some(request) = task.tasks().request_id() {
                new.request_id = Some(request.to_string());
            }
            if self.held() {
                new.held = true;
                new.owner = Some(self.jobs.durable()?.worker.owner.clone());
            }
        }
        Ok(new)
    }

    /// Stores the job.
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; nothing is stored then.
    pub async fn enqueue(self) -> Result<Enqueued, EnqueueError> {
        let new = self.new_job()?;
        let durable = self.jobs.durable()?.clone();
        let enqueued = durable.store.enqueue(new).await?;
        if let Err(id) = self.follow(enqueued) {
            // Its release could not be scheduled: it is released now instead.
            durable.store.release(id).await?;
        }
        Ok(enqueued)
    }

    /// Stores the job on `conn`, the caller's open transaction: see [`Jobs::enqueue_in`].
    ///
    /// # Errors
    ///
    /// See [`EnqueueError`]; the transaction is the caller's to roll back.
    pub async fn enqueue_in<C: JobConnection>(
        self,
        conn: &mut C,
    ) -> Result<Enqueued, EnqueueError> {
        let (store, connection) = (self.jobs.durable()?.store.backend(), conn.backend());
        if store != connection {
            return Err(EnqueueError::WrongDatabase { store, connection });
        }
        let new = self.new_job()?;
        let enqueued = conn.enqueue_job(new).await?;
        if let Err(id) = self.follow(enqueued) {
            conn.release_job(id).await?;
        }
        Ok(enqueued)
    }

    /// After the job was stored: wakes the worker for it, or — held — schedules its release
    /// as a task of its request. `Err` with the job's id when that task was refused
    /// (shutting down, or the release group is full).
    fn follow(self, enqueued: Enqueued) -> Result<(), JobId> {
        let held = self.held();
        let (Ok(durable), Enqueued::New(id)) = (self.jobs.durable(), enqueued) else {
            return Ok(());
        };
        let Some(task) = self.task.filter(|_| held) else {
            durable.worker.wake_at(self.run_at);
            return Ok(());
        };
        let release = release::Release {
            durable: durable.clone(),
            id,
        };
        task.default_group(GROUP)
            .shield()
            .field("job_id", id.0)
            .report_key(format!("job:{id}:skipped"))
            .submit(release, TaskName::Given(J::NAME.into()))
            .map(drop)
            .map_err(|error: ScheduleError| {
                tracing::debug!(target: "errands", job_id = id.0, %error, "a held durable job is released at once");
                id
            })
    }
}
