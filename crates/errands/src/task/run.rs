//! Running one task: limits, containment, cancellation, `on_error` and exactly one report.
//!
//! The contract of this module, which every path below keeps:
//!
//! * A started task ends in exactly one terminal [`Outcome`], counted once in the stats —
//!   even if the tokio runtime drops it or user code panics while being dropped.
//! * Every outcome other than `succeeded` is reported once, before `on_error` runs, so a
//!   handler that hangs or is aborted never hides the failure.
//! * Panics in the task or its handler are caught here; nothing escapes to tokio, so nothing
//!   is lost with a dropped `JoinHandle`.
//! * A task waits for a slot (`queued`) before it runs (`running`); at most `max_running`
//!   hold one at a time (blocking tasks: `max_blocking`).
//! * An unshielded task stops when shutdown cancels it (`cancelled`); any task, with its
//!   handler, stops when shutdown aborts (`aborted`). Both take effect at the task's next
//!   `.await` — or, queued, at once — as cancellation does everywhere in async Rust.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering, fence};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

use super::work::Work;
use super::{ErrorHandler, Outcome, SkipReason, TaskError, TaskInfo};
use crate::report::{ErrorReport, Origin};
use crate::runtime::Inner;

/// A task that is ready to start, or to be skipped: queued in a request's batch as
/// `Box<dyn Pending>`, or started at once without boxing.
pub(crate) trait Pending: Send {
    fn info(&self) -> &TaskInfo;

    fn start(self)
    where
        Self: Sized;

    fn skip(self, reason: SkipReason)
    where
        Self: Sized;

    fn start_boxed(self: Box<Self>);

    fn skip_boxed(self: Box<Self>, reason: SkipReason);
}

pub(crate) struct Prepared<W> {
    pub(crate) rt: Arc<Inner>,
    pub(crate) handle: Handle,
    pub(crate) info: TaskInfo,
    pub(crate) work: W,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) timeout: Option<Duration>,
}

impl<W: Work> Pending for Prepared<W> {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn start(self) {
        let runtime_token = self.rt.tasks.token();
        // Pairs with the fence in shutdown: either shutdown's wait sees this task, or this
        // task sees that the runtime closed and is skipped instead of outliving teardown.
        fence(Ordering::SeqCst);
        if self.rt.is_closed() {
            return self.skip(SkipReason::ShuttingDown);
        }
        self.rt.counters.queued();
        // Created before the spawn: a future tokio drops without polling is counted too.
        let guard = Unfinished::new(self.rt.clone(), self.info.clone());
        let request_token = (self.info.meta.request.as_ref())
            .and_then(|r| r.watch.as_ref())
            .map(|w| w.tracker.token());
        let span = tracing::debug_span!(
            target: "errands",
            "task",
            task.id = self.info.id().as_u64(),
            task.name = %self.info.name(),
            task.timing = %self.info.timing(),
            request_id = self.info.request_id().map(|id| id.as_str()),
        );
        let handle = self.handle.clone();
        let task = self.run(guard, (runtime_token, request_token));
        // The span is `DEBUG`: usually disabled, and then not worth wrapping the task in.
        if span.is_disabled() {
            handle.spawn(task);
        } else {
            handle.spawn(task.instrument(span));
        }
    }

    fn skip(self, reason: SkipReason) {
        let Prepared { rt, info, work, .. } = self;
        rt.report(
            ErrorReport::task(&info, Outcome::Skipped)
                .message(format!("task skipped: {reason}"))
                .skip_reason(reason),
        );
        rt.counters.finished(Outcome::Skipped, false);
        finish(&rt, &info);
        // The work never runs; a panicking `Drop` in it must not escape into the caller,
        // which may be releasing the rest of a batch.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(work)));
    }

    fn start_boxed(self: Box<Self>) {
        (*self).start()
    }

    fn skip_boxed(self: Box<Self>, reason: SkipReason) {
        (*self).skip(reason)
    }
}

enum Stop {
    /// Shutdown stopped the task: `Cancelled` or `Aborted`.
    Stopped(Outcome),
    Error(TaskError),
}

impl<W: Work> Prepared<W> {
    /// The whole life of a started task. `finished` counts the outcome when dropped, then the
    /// `tokens` let `idle()` and `settle()` see the task gone.
    async fn run(self, finished: Unfinished, tokens: (TaskTrackerToken, Option<TaskTrackerToken>)) {
        let Prepared {
            rt,
            handle: _,
            info,
            work,
            on_error,
            timeout,
        } = self;
        let attempt = AtomicU32::new(1);
        let (stop, stopped) = if info.is_shielded() {
            (&rt.abort, Outcome::Aborted)
        } else {
            (&rt.cancel, Outcome::Cancelled)
        };
        // An async task keeps its slot through its `on_error` handler.
        let mut slot = acquire(W::slots(&rt), stop).await;
        let result = match slot {
            None => Err(Stop::Stopped(stopped)),
            Some(_) => {
                rt.counters.now_running();
                finished.running.store(true, Ordering::Relaxed);
                // The body is polled first: a task that completes in its first poll never
                // registers with the shutdown token. A task started after the cancel never
                // gets here (`start` skips it once the runtime is closed).
                tokio::select! {
                    biased;
                    result = work.run(&rt, &info, timeout, &attempt, &mut slot) => result.map_err(Stop::Error),
                    _ = stop.cancelled() => Err(Stop::Stopped(stopped)),
                }
            }
        };
        let info = info.with_attempt(attempt.load(Ordering::Relaxed));
        let outcome = match result {
            Ok(()) => Outcome::Succeeded,
            Err(Stop::Stopped(Outcome::Cancelled)) => {
                rt.report(
                    ErrorReport::task(&info, Outcome::Cancelled)
                        .message("task cancelled by shutdown"),
                );
                Outcome::Cancelled
            }
            Err(Stop::Stopped(_)) => {
                rt.report(
                    ErrorReport::task(&info, Outcome::Aborted)
                        .message("task aborted: still running at the shutdown deadline"),
                );
                Outcome::Aborted
            }
            Err(Stop::Error(error)) => {
                let outcome = error.outcome();
                let handler = on_error.or_else(|| rt.config.on_error.clone());
                rt.report(
                    ErrorReport::task(&info, outcome)
                        .message(match outcome {
                            Outcome::Panicked => "task panicked",
                            Outcome::TimedOut => "task timed out",
                            _ => "task failed",
                        })
                        .error(&error)
                        .handled(handler.is_some()),
                );
                if let Some(handler) = handler {
                    // Boxed: the rare path stays out of every task's future.
                    Box::pin(run_handler(&rt, &info, handler, error)).await;
                }
                outcome
            }
        };
        finished.outcome.store(outcome as u8 + 1, Ordering::Relaxed);
        drop(slot);
        drop(finished);
        drop(tokens);
    }
}

/// Counts a started task's outcome when it is dropped, so a task can never vanish uncounted:
/// if `run` did not get to set the outcome (the tokio runtime dropped the task, or user code
/// panicked while being dropped), the task is reported and counted `aborted`.
struct Unfinished {
    rt: Arc<Inner>,
    info: TaskInfo,
    running: AtomicBool,
    /// `Outcome as u8 + 1`, or 0 while unset.
    outcome: AtomicU8,
}

impl Unfinished {
    fn new(rt: Arc<Inner>, info: TaskInfo) -> Self {
        Unfinished {
            rt,
            info,
            running: AtomicBool::new(false),
            outcome: AtomicU8::new(0),
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let outcome =
            Outcome::from_index(self.outcome.load(Ordering::Relaxed)).unwrap_or_else(|| {
                self.rt
                .report(ErrorReport::task(&self.info, Outcome::Aborted).message(
                "task dropped before it finished (runtime shut down, or a panic while dropping it)",
            ));
                Outcome::Aborted
            });
        let running = self.running.load(Ordering::Relaxed);
        self.rt.counters.finished(outcome, running);
        finish(&self.rt, &self.info);
    }
}

/// A slot: at once when one is free (no future to build or poll), otherwise in line — unless
/// shutdown stops the task first (`None`).
async fn acquire(slots: &Arc<Semaphore>, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    // Boxed: waiting in line is the rare path, kept out of every task's future.
    Box::pin(async {
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            permit = slots.clone().acquire_owned() => permit.ok(),
        }
    })
    .await
}

/// Frees what the task held in the runtime and its request.
fn finish(rt: &Inner, info: &TaskInfo) {
    rt.release_admission();
    if let Some(request) = &info.meta.request {
        request.task_ended(info.id());
    }
}

/// Runs an `on_error` handler, contained: its failure, panic or abort is reported once.
async fn run_handler(rt: &Inner, info: &TaskInfo, handler: ErrorHandler, error: TaskError) {
    let call = {
        let info = info.clone();
        AssertUnwindSafe(async move { handler.call(info, error).await }).catch_unwind()
    };
    let failure = tokio::select! {
        biased;
        _ = rt.abort.cancelled() => Some((Outcome::Aborted, None)),
        result = call => match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some((error.outcome(), Some(error))),
            Err(panic) => Some((Outcome::Panicked, Some(TaskError::from_panic(panic)))),
        },
    };
    if let Some((outcome, error)) = failure {
        let mut report = ErrorReport::task(info, outcome)
            .origin(Origin::ErrorHandler)
            .message(format!("on_error handler of task {}", outcome));
        if let Some(error) = &error {
            report = report.error(error);
        }
        rt.report(report);
    }
}
