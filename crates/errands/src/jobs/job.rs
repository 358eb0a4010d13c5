//! A job type, what its attempts know, and what its failure hook sees.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::durable::{JobConnection, JobId, StoreError};
use crate::task::{BoxError, RetryPolicy};

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
    pub(crate) state: S,
    pub(crate) id: JobId,
    pub(crate) attempt: u32,
    pub(crate) request_id: Option<String>,
    /// This attempt's fencing token.
    pub(crate) token: i64,
    /// Set once the job recorded its own completion ([`JobContext::complete_in`]).
    pub(crate) completed: Arc<std::sync::atomic::AtomicBool>,
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

    /// This attempt's number, from 1, counted over the job's life: after an operator's retry
    /// it goes on from the last attempt (the retry policy counts the new run's attempts).
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
