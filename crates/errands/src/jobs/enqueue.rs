//! Enqueueing: the [`Jobs`] handle, durable tasks of a request ([`DurableTask`]), and the
//! [`JobBuilder`] both make.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Durable, GROUP, Job, release, start};
use crate::durable::{
    AnyStore, Enqueued, JobConnection, JobId, JobStatus, NewJob, Store, StoreError,
};
use crate::runtime::Runtime;
use crate::task::{ScheduleError, TaskName, Timing};
use crate::tasks::TaskBuilder;

/// Why a job could not be enqueued, read or changed. Through `?` in a handler it becomes `503
/// service_unavailable` when the store's database failed (unavailable, or locked past its
/// busy timeout), `404 not_found` for an unknown job, `409 conflict` for a job whose state
/// does not allow the change, `500 internal_error` otherwise — the handler's own
/// transaction, if any, is dropped and so rolled back.
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
    /// [`StoreError::NotFound`] for an unknown id (through `?` in a handler, `404
    /// not_found`), or the store's failure (`503`).
    pub async fn status(&self, id: JobId) -> Result<JobStatus, EnqueueError> {
        Ok(self.durable()?.store.status(id).await?)
    }

    /// Cancels a job that has not started (`held` or `available`).
    ///
    /// # Errors
    ///
    /// Through `?` in a handler: an unknown id is `404 not_found`, a job in another state
    /// ([`StoreError::WrongState`]) `409 conflict`, the store's failure `503`.
    pub async fn cancel(&self, id: JobId) -> Result<(), EnqueueError> {
        Ok(self.durable()?.store.cancel(id).await?)
    }

    /// Makes a finished job (`failed`, `cancelled`, `discarded`, `skipped`) run again now, in
    /// a new run with as many attempts as its last one ([`Store::retry`]).
    ///
    /// # Errors
    ///
    /// As for [`cancel`](Self::cancel).
    pub async fn retry(&self, id: JobId) -> Result<(), EnqueueError> {
        let durable = self.durable()?;
        durable.store.retry(id, SystemTime::now()).await?;
        durable.worker.wake();
        Ok(())
    }

    /// Discards a job that is not running: it will not run (again), and owes no report.
    ///
    /// # Errors
    ///
    /// As for [`cancel`](Self::cancel).
    pub async fn discard(&self, id: JobId) -> Result<(), EnqueueError> {
        Ok(self.durable()?.store.discard(id).await?)
    }

    /// The store, for pruning, counts and listings.
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
            if let Some(scope) = task.tasks().scope() {
                new.traceparent = scope.info().traceparent().map(str::to_owned);
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
