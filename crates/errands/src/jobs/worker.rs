//! The worker: claims due jobs, runs each attempt as a task of the runtime, records the
//! result under the attempt's fencing token, rescues expired leases.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use futures_util::FutureExt;

use super::registry::Runner;
use super::{Durable, HandBack, JobFailure};
use crate::durable::{AnyStore, Claimed, JobId, JobState, JobStatus, Store, StoreError};
use crate::lifecycle::Event;
use crate::report::{ErrorLink, ErrorReport, Origin};
use crate::request::RequestId;
use crate::runtime::Runtime;
use crate::task::{BoxError, Outcome, TaskError, TaskInfo};
use crate::tasks::Tasks;

/// How the worker claims and leases.
pub(crate) struct Worker {
    /// This process's name in the store: the owner of its running jobs.
    pub(crate) owner: String,
    pub(crate) lease: Duration,
    pub(crate) poll: Duration,
    /// The queues this worker claims from, each with its concurrency.
    queues: Vec<Queue>,
    /// Jobs whose failure this process is reporting through their task: the owed-report scan
    /// leaves them alone. At most `concurrency` at once.
    reporting: Mutex<HashSet<JobId>>,
    wake: Arc<Notify>,
    started: AtomicBool,
    /// The runtime refused an attempt (its limits are full): wait before claiming again.
    refused: AtomicBool,
    /// The queues whose gauges this worker set: one that empties is set to zero, not left
    /// at its last value.
    #[cfg(feature = "metrics")]
    measured: Mutex<std::collections::BTreeSet<String>>,
}

impl Worker {
    pub(crate) fn new(queues: Vec<(String, usize)>, lease: Duration, poll: Duration) -> Self {
        Worker {
            owner: format!("errands-{}-{:016x}", std::process::id(), fastrand::u64(..)),
            lease,
            poll,
            queues: queues
                .into_iter()
                .map(|(name, concurrency)| Queue {
                    name,
                    concurrency: concurrency.max(1),
                    in_flight: Arc::default(),
                    writing: Arc::default(),
                })
                .collect(),
            reporting: Mutex::default(),
            wake: Arc::default(),
            started: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            measured: Mutex::default(),
        }
    }

    fn reporting(&self) -> MutexGuard<'_, HashSet<JobId>> {
        self.reporting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A job was enqueued here, or an attempt ended: look for work now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Looks for work at `at` (now when `None` or past), when that comes before the next
    /// poll: a retry or a scheduled job then starts on time.
    pub(crate) fn wake_at(&self, at: Option<SystemTime>) {
        let Some(delay) = at.and_then(|at| at.duration_since(SystemTime::now()).ok()) else {
            return self.wake();
        };
        if delay < self.poll {
            let wake = self.wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                wake.notify_one();
            });
        }
    }
}

/// A queue: its name, how many of its jobs may run at once, how many do.
struct Queue {
    name: String,
    concurrency: usize,
    in_flight: Arc<AtomicUsize>,
    /// Attempts whose run returned and whose result is being written: claims wait while
    /// [`WRITES_WAITING`] (or `concurrency`, if more) of them do, so they never outrun the
    /// writes.
    writing: Arc<AtomicUsize>,
}

/// How many results of a queue may wait to be written before it claims more: the store's
/// writer commits this many at once.
const WRITES_WAITING: usize = 64;

impl Queue {
    /// How many jobs the queue may claim now.
    fn free(&self) -> usize {
        if self.writing.load(Ordering::Acquire) >= self.concurrency.max(WRITES_WAITING) {
            return 0;
        }
        self.concurrency
            .saturating_sub(self.in_flight.load(Ordering::Acquire))
    }
}

/// Starts the worker of `durable` once, on the current tokio runtime (if there is one).
pub(crate) fn start(durable: &Arc<Durable>, rt: &Arc<Runtime>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if durable.worker.started.swap(true, Ordering::AcqRel) {
        return;
    }
    handle.spawn(work(durable.clone(), rt.clone()));
}

async fn work(durable: Arc<Durable>, rt: Arc<Runtime>) {
    let (store, worker) = (&durable.store, &durable.worker);
    let stop = rt.started();
    // Wake-ups from other processes (PostgreSQL's notifications), until the drain.
    let listening = durable.clone();
    let listen_stop = stop.clone();
    tokio::spawn(async move {
        let wake = listening.worker.wake.clone();
        tokio::select! {
            () = listening.store.wait_for_jobs(wake) => {}
            () = listen_stop.cancelled() => {}
        }
    });
    let mut next_rescue = tokio::time::Instant::now();
    let mut backoff = Duration::ZERO;
    while !stop.is_cancelled() {
        if tokio::time::Instant::now() >= next_rescue {
            maintain(&durable, &rt).await;
            next_rescue = tokio::time::Instant::now() + worker.lease / 3;
        }
        let mut claimed_all = false;
        for queue in &worker.queues {
            let free = queue.free();
            if free == 0 {
                continue;
            }
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            let now = SystemTime::now();
            match store
                .claim(&queue.name, &worker.owner, now, worker.lease, limit)
                .await
            {
                Ok(claimed) => {
                    backoff = Duration::ZERO;
                    claimed_all |= claimed.len() == free;
                    for job in claimed {
                        run(&durable, &rt, queue, job, now + worker.lease);
                    }
                }
                Err(error) => {
                    // The database is down or locked: back off, then try again.
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                    tracing::warn!(target: "errands", error = %crate::chain::line(&error), ?backoff, "claiming durable jobs failed: backing off");
                    break;
                }
            }
        }
        let refused = worker.refused.swap(false, Ordering::AcqRel);
        if claimed_all && backoff.is_zero() && !refused {
            continue; // more may be due
        }
        let wait = if backoff.is_zero() {
            worker.poll
        } else {
            backoff
        };
        tokio::select! {
            () = worker.wake.notified() => {}
            () = tokio::time::sleep(wait.min(next_rescue.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(1)))) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Runs one claimed attempt, whose lease holds until `held_until`, as a task of the runtime.
fn run(
    durable: &Arc<Durable>,
    rt: &Arc<Runtime>,
    queue: &Queue,
    job: Claimed,
    held_until: SystemTime,
) {
    let runner = durable.registry.get(&job.kind);
    queue.in_flight.fetch_add(1, Ordering::AcqRel);
    let counts = (queue.in_flight.clone(), queue.writing.clone());
    let (id, attempt_no, token) = (job.id, job.attempt, job.token);
    let failure = JobFailure {
        id,
        kind: job.kind.clone(),
        attempt: attempt_no,
        error: String::new(),
        request_id: job.request_id.clone(),
        fields: job.fields.clone(),
    };
    let scheduled = {
        let (attempt_durable, reported_durable) = (durable.clone(), durable.clone());
        let stopping = rt.clone();
        let tasks = Tasks::for_runtime(rt);
        let mut task = tasks.immediate().name(job.kind.clone());
        if runner.as_ref().is_none_or(|runner| runner.shield()) {
            task = task.shield();
        }
        task.field("job_id", id.0)
            .with_fields(stored_fields(&job.fields))
            .attempt(attempt_no)
            .report_key(failure.key())
            .enqueued_by(
                job.request_id
                    .as_deref()
                    .and_then(|id| RequestId::parse(id.as_bytes())),
            )
            .traceparent(job.traceparent.as_deref())
            // Runs after the task's failure was reported. When this attempt ended the job
            // (not a lost lease, nor a store error), the job type's hook runs, and the report
            // is no longer owed.
            .on_error(move |_, error| async move {
                if !reported_durable.worker.reporting().contains(&id) {
                    return Ok(());
                }
                let failure = JobFailure {
                    error: crate::chain::line(&error),
                    ..failure
                };
                failed(&reported_durable, failure).await
            })
            .schedule(async move {
                let in_flight = InFlight::new(&attempt_durable, counts);
                let stopped = HandBack(Some(stopping.clone()));
                let result = attempt(
                    &attempt_durable,
                    &stopping,
                    runner,
                    job,
                    held_until,
                    in_flight,
                )
                .await;
                stopped.disarm();
                result
            })
    };
    if scheduled.is_err() {
        // Refused (shutting down, overloaded): this claim goes back at once, without its
        // attempt; the others keep running.
        queue.in_flight.fetch_sub(1, Ordering::AcqRel);
        durable.worker.refused.store(true, Ordering::Release);
        let durable = durable.clone();
        tokio::spawn(async move {
            if durable.store.give_back(id, token).await.is_ok() {
                tracing::info!(target: "errands", job_id = id.0, "the runtime refused a durable job's attempt (its limits are full, or it is stopping): the job went back");
            }
        });
    }
}

/// The fields stored with a job, as task fields. Their keys come from the application's
/// code (`.field("payment_id", ..)`), a small set: each distinct key is kept once, for the
/// process's life, up to 256 of them; fields with keys beyond that are left out.
fn stored_fields(fields: &serde_json::Value) -> Vec<crate::task::Field> {
    static KEYS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let Some(fields) = fields.as_object() else {
        return Vec::new();
    };
    let mut keys = KEYS.lock().unwrap_or_else(PoisonError::into_inner);
    fields
        .iter()
        .filter_map(|(key, value)| {
            let known = match keys.iter().find(|known| **known == key.as_str()) {
                Some(known) => *known,
                None if keys.len() < 256 => {
                    let leaked: &'static str = Box::leak(key.clone().into_boxed_str());
                    keys.push(leaked);
                    leaked
                }
                None => return None,
            };
            Some((known, value.clone()))
        })
        .collect()
}

/// Counts an attempt in flight in its queue — `(running, writing)` — until dropped, then
/// wakes the worker. When the job's run returned, it moves to `writing` while the result is
/// written: the next claim and that write go to the database side by side (and completions
/// waiting together are written at once), and no more writes wait than the queue runs jobs.
struct InFlight<'a>(&'a Durable, (Arc<AtomicUsize>, Arc<AtomicUsize>), bool);

impl InFlight<'_> {
    fn new(durable: &Durable, counts: (Arc<AtomicUsize>, Arc<AtomicUsize>)) -> InFlight<'_> {
        InFlight(durable, counts, false)
    }

    /// The run returned: the slot frees, the result's write is counted.
    fn writing(&mut self) {
        if !self.2 {
            self.2 = true;
            (self.1).1.fetch_add(1, Ordering::AcqRel);
            (self.1).0.fetch_sub(1, Ordering::AcqRel);
            self.0.worker.wake();
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let (running, writing) = &self.1;
        if self.2 {
            writing.fetch_sub(1, Ordering::AcqRel);
        } else {
            running.fetch_sub(1, Ordering::AcqRel);
        }
        self.0.worker.wake();
    }
}

/// The job's lease was lost while it ran: another attempt owns it now.
#[derive(Debug, thiserror::Error)]
#[error("job {0}'s lease was lost while it ran; its result was not recorded")]
struct LeaseLost(JobId);

/// The job cannot run here.
#[derive(Debug, thiserror::Error)]
enum Unrunnable {
    #[error("no job type named {0:?} is registered in this process")]
    UnknownType(String),
    #[error("the stored arguments do not decode: {0}")]
    Undecodable(serde_json::Error),
}

/// Runs the attempt with heartbeats and records its result; `Err` when the job failed for
/// good (the task's failure is then its one report), or when its result could not be
/// recorded while its lease held.
async fn attempt(
    durable: &Durable,
    rt: &Runtime,
    runner: Option<Arc<dyn Runner>>,
    job: Claimed,
    mut held_until: SystemTime,
    mut in_flight: InFlight<'_>,
) -> Result<(), BoxError> {
    let (store, lease) = (&durable.store, durable.worker.lease);
    let reporting = || durable.worker.reporting().insert(job.id);
    let unrunnable = |error: Unrunnable| async {
        let text = error.to_string();
        reporting();
        let fail = || store.fail(job.id, job.token, &text, None);
        match record(store, &job, held_until, JobState::Failed, fail).await {
            Ok(()) => Err::<(), BoxError>(Box::new(error)),
            Err(not_recorded) => Err(not_recorded_error(durable, &job, not_recorded)),
        }
    };
    let Some(runner) = runner else {
        return unrunnable(Unrunnable::UnknownType(job.kind.clone())).await;
    };
    let completed = Arc::new(AtomicBool::new(false));
    let future = match runner.start(&job, completed.clone()) {
        Ok(future) => future,
        Err(error) => return unrunnable(Unrunnable::Undecodable(error)).await,
    };
    // A panic or a timeout is a failed attempt like any other: retried by the policy.
    let future = AssertUnwindSafe(future).catch_unwind().map(|result| {
        result.unwrap_or_else(|panic| {
            Err(format!("the job panicked: {}", crate::task::panic_message(panic)).into())
        })
    });
    let timeout = runner.timeout();
    let future = async move {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, future)
                .await
                .unwrap_or_else(|_| Err(format!("the attempt timed out after {limit:?}").into())),
            None => future.await,
        }
    };
    let mut future = pin!(future);
    let mut lease_lost = false;
    let result = loop {
        tokio::select! {
            result = &mut future => break result,
            () = tokio::time::sleep(lease / 3), if !lease_lost => {
                let until = SystemTime::now() + lease;
                match store.heartbeat(job.id, job.token, until).await {
                    Ok(()) => held_until = until,
                    Err(StoreError::Stale(_)) => lease_lost = true,
                    Err(_) => {}
                }
            }
        }
    };
    in_flight.writing();
    crate::faults::point("completion_write");
    let recorded = match result {
        // The job recorded its completion with its own side effect.
        Ok(()) if completed.load(Ordering::Acquire) => Ok(()),
        Ok(()) => {
            let complete = || store.complete(job.id, job.token);
            record(store, &job, held_until, JobState::Succeeded, complete).await
        }
        Err(error) => {
            let policy = runner.policy();
            let text = crate::chain::line(&*error);
            let task_error = TaskError::from_error(error);
            // The policy counts the attempts of this run (an operator's retry starts anew);
            // the store's limit holds as well.
            let retry_in = (policy.retries(job.run_attempt, &task_error)
                && job.attempt < job.max_attempts)
                .then(|| policy.delay(job.run_attempt));
            let retry_at = retry_in.map(|delay| SystemTime::now() + delay);
            if retry_at.is_none() {
                reporting();
            }
            let ended = match retry_at {
                Some(_) => JobState::Available,
                None => JobState::Failed,
            };
            let fail = || store.fail(job.id, job.token, &text, retry_at);
            match record(store, &job, held_until, ended, fail).await {
                Ok(()) if retry_at.is_some() => {
                    // Seen as an in-memory retry is: counted in the retries, its error on the
                    // dashboard, not reported.
                    if let Some(task) = TaskInfo::current() {
                        rt.emit(Event::AttemptEnded {
                            task: &task,
                            attempt: job.attempt,
                            error: Some(&task_error),
                            retry_in,
                        });
                    }
                    durable.worker.wake_at(retry_at);
                    Ok(())
                }
                Ok(()) => return Err(Box::new(task_error)),
                Err(error) => Err(error),
            }
        }
    };
    recorded.map_err(|not_recorded| not_recorded_error(durable, &job, not_recorded))
}

/// The attempt's error when its result could not be recorded. A final failure's report and
/// hook are then left to whoever ends the job: a later attempt, or the owed-report delivery.
fn not_recorded_error(durable: &Durable, job: &Claimed, error: StoreError) -> BoxError {
    durable.worker.reporting().remove(&job.id);
    match error {
        StoreError::Stale(id) => Box::new(LeaseLost(id)),
        error => Box::new(error),
    }
}

/// Writes an attempt's result, again while the database fails and the lease holds: a
/// database back within the lease loses no result, and the job does not run twice. No write
/// outlives the lease: past it, the job is another attempt's to run. A write whose answer was
/// lost with its connection may have landed: when a later try finds the token gone, the job's
/// status says whether it ended as `ended` says.
async fn record<F: Future<Output = Result<(), StoreError>>>(
    store: &AnyStore,
    job: &Claimed,
    held_until: SystemTime,
    ended: JobState,
    mut write: impl FnMut() -> F,
) -> Result<(), StoreError> {
    let left = held_until
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + left;
    let expired =
        || StoreError::Database("the job's lease ran out before its result was written".into());
    let mut backoff = Duration::from_millis(100);
    let mut unsure = false;
    loop {
        let written = tokio::time::timeout_at(deadline, write()).await;
        match written.map_err(|_| expired())? {
            Err(StoreError::Database(error))
                if tokio::time::Instant::now() + backoff < deadline =>
            {
                tracing::warn!(target: "errands", job_id = job.id.0, error = %crate::chain::line(&*error), ?backoff, "recording a durable job's result failed: retrying while its lease holds");
                unsure = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(StoreError::Stale(id)) if unsure => {
                let status = tokio::time::timeout_at(deadline, store.status(id)).await;
                return match status {
                    Ok(Ok(status)) if landed(&status, job, ended) => Ok(()),
                    _ => Err(StoreError::Stale(id)),
                };
            }
            result => return result,
        }
    }
}

/// Whether `status` shows this attempt's write as landed. While the lease holds, only that
/// write can have moved the job on; a retry may already have been claimed again.
fn landed(status: &JobStatus, job: &Claimed, ended: JobState) -> bool {
    match ended {
        JobState::Available => {
            status.attempt > job.attempt || (status.attempt == job.attempt && status.state == ended)
        }
        _ => status.attempt == job.attempt && status.state == ended,
    }
}

/// Renews this process's heartbeat (its held jobs stay held), rescues expired leases,
/// releases the held jobs of processes that died, and delivers the reports still owed. Every
/// process does this, every third of a lease: each step is one idempotent statement.
async fn maintain(durable: &Durable, rt: &Runtime) {
    let (store, now) = (&durable.store, SystemTime::now());
    let steps = async {
        store
            .alive(&durable.worker.owner, now + durable.worker.lease)
            .await?;
        let rescued = store.rescue(now).await?;
        #[cfg(feature = "metrics")]
        crate::metrics::rescued(rescued.len());
        #[cfg(not(feature = "metrics"))]
        let _ = rescued;
        let released = store.release_orphans(now).await?;
        if !released.is_empty() {
            tracing::info!(target: "errands", released = released.len(), "held durable jobs of a process that died were released");
            durable.worker.wake();
        }
        if let Some(before) = now.checked_sub(durable.retention) {
            store.prune(before).await?;
        }
        Ok::<_, StoreError>(())
    };
    match steps.await {
        Ok(()) => {
            #[cfg(feature = "metrics")]
            measure_queues(durable, now).await;
            // A report delivered is then marked delivered: a process that stops meanwhile
            // waits for both (its teardown waits for `writes`), and one that has begun to stop
            // leaves the owed reports to the next process.
            if !rt.started().is_cancelled() {
                durable
                    .writes
                    .track_future(deliver_owed_reports(durable, rt))
                    .await;
            }
        }
        Err(error) => {
            tracing::warn!(target: "errands", error = %crate::chain::line(&error), "durable job maintenance failed");
        }
    }
}

/// Sets the durable job gauges of every queue this worker runs, and of any other queue that
/// has unfinished jobs.
#[cfg(feature = "metrics")]
async fn measure_queues(durable: &Durable, now: SystemTime) {
    let Ok(mut queues) = durable.store.queues(now).await else {
        return; // the gauges keep their last values; the failure shows in the next steps
    };
    let mut measured = durable
        .worker
        .measured
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    measured.extend(queues.iter().map(|counts| counts.queue.clone()));
    let names = durable.worker.queues.iter().map(|queue| &queue.name);
    for name in names.chain(measured.iter()) {
        if !queues.iter().any(|counts| &counts.queue == name) {
            queues.push(crate::durable::QueueCounts {
                queue: name.clone(),
                ..Default::default()
            });
        }
    }
    drop(measured);
    for counts in queues {
        let lag = counts
            .oldest_due
            .and_then(|due| now.duration_since(due).ok())
            .unwrap_or_default();
        crate::metrics::queue(
            &counts.queue,
            counts.held,
            counts.available,
            counts.running,
            lag,
        );
    }
}

/// A job failed for good and its report went out: its type's hook runs, then the store
/// records the report as delivered.
async fn failed(durable: &Durable, failure: JobFailure) -> Result<(), StoreError> {
    if let Some(runner) = durable.registry.get(&failure.kind) {
        runner.on_failure(failure.clone()).await;
    }
    crate::faults::point("report_write");
    let marked = durable.store.reported(failure.id).await;
    durable.worker.reporting().remove(&failure.id);
    marked
}

/// Reports the failures the store still owes (a crash, or a rescue, came between the end and
/// its report), keyed by job id and attempt, then marks them reported.
async fn deliver_owed_reports(durable: &Durable, rt: &Runtime) {
    let claim = durable.worker.lease;
    let Ok(owed) = durable
        .store
        .unreported(SystemTime::now(), claim, 100)
        .await
    else {
        return;
    };
    for status in owed {
        // Our own attempts' failures are reported by their tasks, then marked.
        if durable.worker.reporting().contains(&status.id) {
            continue;
        }
        let skipped = status.state == JobState::Skipped;
        let failure = JobFailure {
            id: status.id,
            kind: status.kind.clone(),
            attempt: status.attempt,
            error: status.last_error.clone().unwrap_or_default(),
            request_id: status.request_id.clone(),
            fields: status.fields.clone(),
        };
        let mut report = ErrorReport::new(Origin::Task).message(format!(
            "durable job {} {} ended {} (attempt {})",
            status.kind, status.id, status.state, status.attempt
        ));
        report.request_id = status
            .request_id
            .as_deref()
            .and_then(|id| RequestId::parse(id.as_bytes()));
        report.traceparent = status.traceparent.clone();
        report.outcome = Some(if skipped {
            Outcome::Skipped
        } else {
            Outcome::Failed
        });
        report.key = Some(if skipped {
            format!("job:{}:skipped", status.id)
        } else {
            failure.key()
        });
        report.chain = status.last_error.into_iter().map(ErrorLink::text).collect();
        rt.report(report);
        let recorded = if skipped {
            crate::faults::point("report_write");
            durable.store.reported(status.id).await
        } else {
            failed(durable, failure).await
        };
        if recorded.is_ok() {
            tracing::info!(target: "errands", job_id = status.id.0, kind = %status.kind, "a report left owed by a stopped process was delivered");
        }
    }
}
