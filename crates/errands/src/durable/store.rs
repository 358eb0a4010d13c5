//! The store contract: what every durable backend does, in the same states.

use std::time::{Duration, SystemTime};

use std::sync::Arc;

use tokio::sync::Notify;

use super::state::{JobAttempt, JobFilter, JobId, JobState, JobStatus, QueueCounts};

/// A job to store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewJob {
    /// The job type's stable name.
    pub kind: String,
    /// Its queue (`default` unless chosen).
    pub queue: String,
    /// The serialized arguments (JSON).
    pub args: serde_json::Value,
    /// Whether it waits, `held`, for its request's moment instead of being runnable at once.
    pub held: bool,
    /// When it may run at the earliest.
    pub run_at: SystemTime,
    /// Attempts allowed in all (at least one).
    pub max_attempts: u32,
    /// A key no other unfinished job of its type may hold.
    pub unique_key: Option<String>,
    /// The request that enqueued it.
    pub request_id: Option<String>,
    /// The process that owns it while `held`.
    pub owner: Option<String>,
    /// Its explicit context fields (JSON object), for reports.
    pub fields: serde_json::Value,
    /// The W3C `traceparent` of the request that enqueued it.
    pub traceparent: Option<String>,
}

impl NewJob {
    /// A runnable job of type `kind` with `args`, in the default queue, one attempt.
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            queue: "default".to_owned(),
            args,
            held: false,
            run_at: SystemTime::now(),
            max_attempts: 1,
            unique_key: None,
            request_id: None,
            owner: None,
            fields: serde_json::Value::Object(Default::default()),
            traceparent: None,
        }
    }

    /// In `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Part of the trace `traceparent` (W3C trace context), carried to its attempts and
    /// reports.
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Held for the moment of the request `request_id`, owned by the process `owner`.
    pub fn held(mut self, request_id: impl Into<String>, owner: impl Into<String>) -> Self {
        self.held = true;
        self.request_id = Some(request_id.into());
        self.owner = Some(owner.into());
        self
    }

    /// Runnable no earlier than `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = at;
        self
    }

    /// With `attempts` attempts in all (at least one).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Unique by `key` among unfinished jobs of its type.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// What a store writes of it besides its plain columns: the arguments and the fields as
    /// JSON text, and the state it starts in.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn encoded(&self) -> Result<(String, String, JobState), StoreError> {
        let args = serde_json::to_string(&self.args).map_err(StoreError::Encode)?;
        let fields = serde_json::to_string(&self.fields).map_err(StoreError::Encode)?;
        let state = if self.held {
            JobState::Held
        } else {
            JobState::Available
        };
        Ok((args, fields, state))
    }
}

/// What an enqueue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored as a new job.
    New(JobId),
    /// Not stored: an unfinished job of the same type holds the unique key.
    Duplicate(JobId),
}

impl Enqueued {
    /// The id of the job the caller should follow: the new one, or the live duplicate.
    pub fn id(self) -> JobId {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// A job claimed by a worker.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Claimed {
    /// The job's id.
    pub id: JobId,
    /// Its type's name.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// This attempt's number, from 1, counted over the job's whole life.
    pub attempt: u32,
    /// Its number within the job's current run, from 1: the same as `attempt` until an
    /// operator's [`retry`](Store::retry) starts a new run. Retry policies count this one.
    pub run_attempt: u32,
    /// Attempts allowed in all (those of earlier runs included).
    pub max_attempts: u32,
    /// The fencing token of this claim: only writes with it are accepted.
    pub token: i64,
    /// The request that enqueued it.
    pub request_id: Option<String>,
    /// Its context fields.
    pub fields: serde_json::Value,
    /// The W3C `traceparent` of the request that enqueued it.
    pub traceparent: Option<String>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write carried a fencing token that no longer holds: the job's lease expired and
    /// it was rescued or claimed again. Nothing was written.
    #[error("job {0} is no longer held by this attempt")]
    Stale(JobId),
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(JobId),
    /// The job is not in a state the operation applies to.
    #[error("job {id} is {state}, which does not allow this")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
    },
    /// The arguments or fields could not be serialized.
    #[error("the job's arguments could not be serialized")]
    Encode(#[source] serde_json::Error),
    /// The database failed (unavailable, locked past its busy timeout, …).
    #[error("the job store's database failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A durable job store: one state machine whatever the database (see
/// [the module docs](crate::durable)). Times are wall-clock, passed in by the caller, so that
/// tests and the conformance suite control them.
pub trait Store: Send + Sync + 'static {
    /// Stores `job`: `available`, or `held` for its request.
    fn enqueue(&self, job: NewJob) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;

    /// Makes a held job runnable; `false` if it was not held (already released or skipped).
    fn release(&self, id: JobId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends a held job as `skipped`, with `reason`; it owes a report, which its owner
    /// delivers (other processes are given it by [`unreported`](Store::unreported) only once
    /// the owner is dead). `false` if it was not held.
    fn skip(
        &self,
        id: JobId,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims up to `limit` available jobs of `queue` whose time has come (oldest `run_at`
    /// first), as `owner`, leased until `now + lease`.
    fn claim(
        &self,
        queue: &str,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Extends a running job's lease to `until`, while `token` holds.
    fn heartbeat(
        &self,
        id: JobId,
        token: i64,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a running job as `succeeded`, while `token` holds.
    fn complete(
        &self,
        id: JobId,
        token: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed attempt, while `token` holds: `available` again at `retry_at`, or —
    /// `None`, or no attempts left — `failed`, owing a report that the attempt's process
    /// delivers (as for [`skip`](Store::skip)). The error text is bounded.
    fn fail(
        &self,
        id: JobId,
        token: i64,
        error: &str,
        retry_at: Option<SystemTime>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Rescues running jobs whose lease ended before `now`: `available` again when attempts
    /// are left, `failed` (owing a report) otherwise. Returns the rescued ids.
    fn rescue(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;

    /// Puts `owner`'s running jobs back to `available` without counting their attempt
    /// (shutdown). Returns how many.
    fn requeue(&self, owner: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Puts the running job `id` back to `available` without counting its attempt, while
    /// `token` holds: a claim this process could not start. [`StoreError::Stale`] if the
    /// token no longer holds (nothing written).
    fn give_back(
        &self,
        id: JobId,
        token: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Cancels a job that has not started (`held` or `available`).
    fn cancel(&self, id: JobId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes a finished job (`failed`, `cancelled`, `discarded`, `skipped`) runnable again
    /// now, in a new run with as many attempts as the last one allowed. Attempt numbers go
    /// on from the last one, so each attempt's history entry and report key stay its own.
    fn retry(
        &self,
        id: JobId,
        now: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Discards a job that is not running.
    fn discard(&self, id: JobId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The job's status.
    fn status(&self, id: JobId) -> impl Future<Output = Result<JobStatus, StoreError>> + Send;

    /// Claims finished jobs that still owe a report, oldest first, at most `limit` — those
    /// whose owner (the process that ended them) is not alive at `now`, and that no other
    /// process claimed: for `claim` from `now`, no other process is given them, so that one
    /// process delivers each report (again, after a crash, once the claim ran out).
    fn unreported(
        &self,
        now: SystemTime,
        claim: Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<JobStatus>, StoreError>> + Send;

    /// How many jobs are in each state (states with none are left out).
    fn counts(&self) -> impl Future<Output = Result<Vec<(JobState, u64)>, StoreError>> + Send;

    /// The unfinished jobs of each queue that has any, by queue name; the oldest runnable
    /// one as of `now`.
    fn queues(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<QueueCounts>, StoreError>> + Send;

    /// The jobs `filter` selects, newest first.
    fn jobs(
        &self,
        filter: &JobFilter,
    ) -> impl Future<Output = Result<Vec<JobStatus>, StoreError>> + Send;

    /// The attempts of `id` that ended with an error, oldest first (the last 100).
    fn attempts(
        &self,
        id: JobId,
    ) -> impl Future<Output = Result<Vec<JobAttempt>, StoreError>> + Send;

    /// Records that the report of `id`'s current end was delivered.
    fn reported(&self, id: JobId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the process `owner` is alive until `until`: its held jobs stay held
    /// until then. A process renews this well before it runs out.
    fn alive(
        &self,
        owner: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases the held jobs whose owning process is not alive at `now` (it died before
    /// their request's moment came: their enqueue committed, so they must run) and forgets
    /// the dead processes. Returns the released ids.
    fn release_orphans(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;

    /// The process `owner` stops: its held jobs are released and it is forgotten. Returns
    /// how many jobs were released.
    fn leave(&self, owner: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes finished jobs that ended before `before` and owe no report. Returns how many.
    fn prune(&self, before: SystemTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Wakes `wake` whenever a job may have become runnable in another process, for as long
    /// as it runs (the worker polls besides). By default it never does: a process sees its
    /// own jobs, and others' at its next poll.
    fn wait_for_jobs(&self, wake: Arc<Notify>) -> impl Future<Output = ()> + Send {
        let _ = wake;
        std::future::pending()
    }
}
