//! A job's identity and state.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

/// A durable job's id, unique in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life; see [the module docs](crate::durable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Stored with its request, waiting for the request's moment (`after_route`,
    /// `after_response`).
    Held,
    /// Runnable once its `run_at` has come.
    Available,
    /// Claimed by a worker, under a lease.
    Running,
    /// Done.
    Succeeded,
    /// Out of attempts (or its arguments could not be decoded, or no process knows its type).
    Failed,
    /// Cancelled before it ran.
    Cancelled,
    /// Discarded by an operator.
    Discarded,
    /// Never ran: its request ended in a way that skips it.
    Skipped,
}

impl JobState {
    /// The stable name stored and shown: `held`, `available`, `running`, `succeeded`,
    /// `failed`, `cancelled`, `discarded`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Held => "held",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
            JobState::Skipped => "skipped",
        }
    }

    /// The state named `name`, as stored.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "held" => JobState::Held,
            "available" => JobState::Available,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            "discarded" => JobState::Discarded,
            "skipped" => JobState::Skipped,
            _ => return None,
        })
    }

    /// Whether the job is over: it will not run again unless retried by an operator.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            JobState::Held | JobState::Available | JobState::Running
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue's unfinished jobs, for metrics and operators: how many wait for their request,
/// are runnable or scheduled, or run; and since when the oldest runnable one has waited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue's name.
    pub queue: String,
    /// Jobs `held` for their request's moment.
    pub held: u64,
    /// Jobs `available`: runnable now, or scheduled for later.
    pub available: u64,
    /// Jobs `running` under a lease.
    pub running: u64,
    /// When the oldest job that could run now became due (its `run_at`): the queue's lag is
    /// the time since. `None` when no job waits.
    #[serde(serialize_with = "rfc3339::option")]
    pub oldest_due: Option<SystemTime>,
}

/// What the store knows of a job, for the "202 + poll" pattern and for operators. In JSON,
/// its times are RFC 3339 in UTC with milliseconds (`"2026-11-30T04:40:32.358Z"`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's id.
    pub id: JobId,
    /// The job type's stable name.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state.
    pub state: JobState,
    /// Attempts made so far (an attempt interrupted by shutdown is not counted).
    pub attempt: u32,
    /// Attempts allowed in all, those of earlier runs included: an operator's
    /// [`retry`](super::Store::retry) adds a run's.
    pub max_attempts: u32,
    /// The last error's text, bounded; never its arguments.
    pub last_error: Option<String>,
    /// The id of the request that enqueued it, if one did.
    pub request_id: Option<String>,
    /// Its context fields (a JSON object); never its arguments.
    pub fields: serde_json::Value,
    /// The W3C `traceparent` of the request that enqueued it.
    pub traceparent: Option<String>,
    /// When it was enqueued.
    #[serde(serialize_with = "rfc3339::time")]
    pub enqueued_at: SystemTime,
    /// When it is, or was last, due to run.
    #[serde(serialize_with = "rfc3339::time")]
    pub run_at: SystemTime,
    /// When it finished, if it did.
    #[serde(serialize_with = "rfc3339::option")]
    pub finished_at: Option<SystemTime>,
}

/// An attempt of a job that ended with an error: a failure, or a lease that expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobAttempt {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// When it ended.
    #[serde(serialize_with = "rfc3339::time")]
    pub finished_at: SystemTime,
    /// Its error chain as one line (`outer: inner: root`), bounded.
    pub error: String,
}

/// Which jobs [`Store::jobs`](super::Store::jobs) lists: newest first, optionally of one state
/// and one type, older than a given job (the next page), at most `limit` (up to 500).
///
/// ```
/// use errands::durable::{JobFilter, JobState};
///
/// let failed_payments = JobFilter::new()
///     .state(JobState::Failed)
///     .kind("process_payment")
///     .limit(50);
/// # let _ = failed_payments;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this type.
    pub kind: Option<String>,
    /// Only jobs older (with a smaller id) than this one.
    pub before: Option<JobId>,
    /// At most this many.
    pub limit: u32,
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            state: None,
            kind: None,
            before: None,
            limit: 50,
        }
    }
}

impl JobFilter {
    /// The most a page holds.
    pub const MAX_LIMIT: u32 = 500;

    /// Every job, 50 at a time.
    pub fn new() -> Self {
        JobFilter::default()
    }

    /// Only jobs in `state`.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only jobs of the type `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only jobs older than `id`: the page after the one that ended with `id`.
    pub fn before(mut self, id: JobId) -> Self {
        self.before = Some(id);
        self
    }

    /// At most `limit` jobs (at most [`MAX_LIMIT`](Self::MAX_LIMIT)).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit.min(Self::MAX_LIMIT);
        self
    }
}

/// Times in JSON as RFC 3339 in UTC with milliseconds, as clients read them.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;

    pub(super) fn time<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&crate::rfc3339::format(*at))
    }

    pub(super) fn option<S: Serializer>(
        at: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => time(at, serializer),
            None => serializer.serialize_none(),
        }
    }
}
