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
//! * A task takes a slot before it runs (`running`), at once when one is free, otherwise it
//!   waits for one (`queued`); at most `max_running` hold one at a time (blocking tasks:
//!   `max_blocking`).
//! * An unshielded task stops when shutdown cancels it (`cancelled`); any task, with its
//!   handler, stops when shutdown aborts (`aborted`). Both take effect at the task's next
//!   `.await` — or, queued, at once — as cancellation does everywhere in async Rust.
//!
//! The spawned future is [`Run`], a small hand-written state machine: it holds the task's
//! [`Task`] record and the work's own future, and nothing for the rare paths (waiting for a
//! slot, the shutdown token, `on_error`) until they are taken.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tokio::runtime::Handle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

use super::slot;
use super::work::{Attempt, BodyCx, Work};
use crate::lifecycle::Event;
use crate::report::{ErrorReport, Origin};
use crate::runtime::{Runtime, SlotKind};
use crate::task::{ErrorHandler, Outcome, SkipReason, TaskError, TaskInfo};
use crate::watch::Ticket;

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
    pub(crate) rt: Arc<Runtime>,
    pub(crate) handle: Handle,
    pub(crate) info: TaskInfo,
    pub(crate) work: W,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) timeout: Option<Duration>,
    /// Set when a test watches the task's request.
    pub(crate) ticket: Option<Ticket>,
}

impl<W: Work> Pending for Prepared<W> {
    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn start(self) {
        // Counted before the check, both sequentially consistent, as shutdown closes the
        // runtime before it waits for the count: either shutdown's wait sees this task, or this
        // task sees that the runtime closed and is skipped instead of outliving teardown.
        self.rt.tasks().enter();
        if self.rt.is_closed() {
            // Counted and reported before it leaves the count, so that shutdown, if it saw
            // the task, also sees it terminal before teardown.
            let rt = self.rt.clone();
            self.skip(SkipReason::ShuttingDown);
            return rt.tasks().exit();
        }
        let Prepared {
            rt,
            handle,
            info,
            work,
            on_error,
            timeout,
            ticket,
        } = self;
        let span = crate::logs::span_at!(
            rt.span_level(),
            target: "errands",
            "task",
            task.id = info.id().as_u64(),
            task.name = info.name(),
            task.timing = %info.timing(),
            request_id = info.request_id().map(|id| id.as_str()),
        );
        // Made before the spawn: a future tokio drops without polling is counted too.
        let task = Task {
            rt,
            info,
            on_error,
            timeout,
            attempt: Attempt::default(),
            slot: None,
            running: false,
            due: Instant::now(),
            started: None,
            outcome: None,
            ticket,
        };
        let task = Run::new(task, work);
        // The span is `DEBUG`: usually disabled, and then not worth wrapping the task in.
        if span.is_disabled() {
            handle.spawn(task);
        } else {
            handle.spawn(task.instrument(span));
        }
    }

    fn skip(self, reason: SkipReason) {
        let Prepared {
            rt,
            info,
            work,
            ticket,
            ..
        } = self;
        let report = ErrorReport::task(&info, Outcome::Skipped)
            .message(format!("task skipped: {reason}"))
            .skip_reason(reason);
        let finished = Event::Finished {
            task: &info,
            outcome: Outcome::Skipped,
            queued: false,
            ran: None,
        };
        // The work never runs; a panicking `Drop` in it must not escape into the caller,
        // which may be releasing the rest of a batch.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            work.skipped(&rt, report, finished, ticket)
        }));
    }

    fn start_boxed(self: Box<Self>) {
        (*self).start()
    }

    fn skip_boxed(self: Box<Self>, reason: SkipReason) {
        self.skip(reason)
    }
}

/// A started task's record: what it needs besides its work, and its accounting. Dropping it
/// counts the outcome, so a task can never vanish uncounted: if the outcome was not set (the
/// tokio runtime dropped the task, or user code panicked while being dropped), the task is
/// reported and counted `aborted`. Then it leaves the runtime's started tasks (and its test
/// request's watch), so `idle()`, shutdown and `settle()` see it gone.
struct Task {
    rt: Arc<Runtime>,
    info: TaskInfo,
    on_error: Option<ErrorHandler>,
    timeout: Option<Duration>,
    attempt: Attempt,
    /// The task's slot while it holds one: an async task keeps it through `on_error`, blocking
    /// work takes it along.
    slot: Option<SlotKind>,
    /// The task got a slot: it counts as running, not queued.
    running: bool,
    /// When it was due (scheduled, or released by its request), and when it got its slot.
    due: Instant,
    started: Option<Instant>,
    outcome: Option<Outcome>,
    ticket: Option<Ticket>,
}

impl Task {
    /// The token that stops this task: `abort` for a shielded task, `cancel` otherwise.
    fn stop_token(&self) -> &CancellationToken {
        self.rt.stop_token(self.info.is_shielded())
    }

    /// The task got its slot: from now on it counts as running.
    fn hold(&mut self, slot: SlotKind, queued: bool) {
        self.slot = Some(slot);
        self.running = true;
        let now = Instant::now();
        self.started = Some(now);
        self.rt.emit(Event::Started {
            task: &self.info,
            queued,
            waited: now.saturating_duration_since(self.due),
        });
    }

    /// Shutdown stopped the task, queued or at an `.await`: it is `cancelled`, or — shielded —
    /// `aborted`.
    fn stopped(&mut self) {
        let (outcome, message) = if self.info.is_shielded() {
            (
                Outcome::Aborted,
                "task aborted: still running at the shutdown deadline",
            )
        } else {
            (Outcome::Cancelled, "task cancelled by shutdown")
        };
        let info = self.info.with_attempt(self.attempt.get());
        if self.running {
            self.rt.emit(Event::AttemptEnded {
                task: &info,
                attempt: info.attempt(),
                error: Some(&TaskError::Cancelled),
                retry_in: None,
            });
        }
        self.rt
            .report(ErrorReport::task(&info, outcome).message(message));
        self.outcome = Some(outcome);
    }

    /// The work ended with `error`: it is reported and its outcome settled, then the
    /// `on_error` handler (the task's own, or the runtime's default) is returned to run.
    fn failed(&mut self, error: TaskError) -> Option<BoxFuture<'static, ()>> {
        let outcome = error.outcome();
        let info = self.info.with_attempt(self.attempt.get());
        let handler = self.on_error.take().or_else(|| self.rt.on_error().cloned());
        self.rt.report(
            ErrorReport::task(&info, outcome)
                .message(match outcome {
                    Outcome::Panicked => "task panicked",
                    Outcome::TimedOut => "task timed out",
                    _ => "task failed",
                })
                .task_error(&error)
                .handled(handler.is_some()),
        );
        // Settled now: if the task is dropped while its handler runs, it stays `outcome`,
        // already reported.
        self.outcome = Some(outcome);
        let handler = handler?;
        Some(Box::pin(run_handler(self.rt.clone(), info, handler, error)))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(kind) = self.slot.take() {
            slot::give_back(self.rt.slots(kind, self.info.meta.group));
        }
        let outcome = self.outcome.unwrap_or_else(|| {
            self.rt
                .report(ErrorReport::task(&self.info, Outcome::Aborted).message(
                "task dropped before it finished (runtime shut down, or a panic while dropping it)",
            ));
            Outcome::Aborted
        });
        self.rt.emit(Event::Finished {
            task: &self.info,
            outcome,
            queued: !self.running,
            ran: self.started.map(|started| started.elapsed()),
        });
        self.rt.tasks().exit();
        drop(self.ticket.take());
    }
}

pin_project! {
    /// The future of a started task, spawned on tokio.
    ///
    /// It moves through `Stage`s: `Queued` (waiting for a slot; only when none was free at
    /// the start) → `Running` (the work) → `Handling` (its `on_error`, after a failure) →
    /// `Done`. Shutdown can stop it while queued or running. `Task` keeps the accounting and
    /// counts the outcome when dropped.
    struct Run<W: Work> {
        // Fields drop in order: the work (and anything it holds) goes before `task` gives
        // back the slot and leaves the count.
        #[pin]
        stage: Stage<W>,
        // The shutdown token, registered only once the work has had to wait: a task that
        // completes in its first poll never touches it.
        #[pin]
        stop: Option<WaitForCancellationFutureOwned>,
        task: Task,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<W: Work> {
        /// Waiting for a slot, unless shutdown stops the task first (`false`).
        Queued {
            work: Option<W>,
            slot: BoxFuture<'static, bool>,
        },
        /// The work runs, holding its slot.
        Running {
            #[pin]
            body: W::Body,
        },
        /// The work failed, its outcome is settled, and its `on_error` handler runs.
        Handling {
            handler: BoxFuture<'static, ()>,
        },
        /// Over; the outcome is in the `Task`.
        Done,
    }
}

impl<W: Work> Run<W> {
    /// Takes a slot at once when one is free; otherwise the task starts `queued`.
    fn new(mut task: Task, work: W) -> Self {
        let group = task.info.meta.group;
        let stage = if slot::try_take(task.rt.slots(W::SLOTS, group)) {
            task.hold(W::SLOTS, false);
            Stage::running(&mut task, work)
        } else {
            task.rt.emit(Event::Queued(&task.info));
            // Boxed: waiting in line is the rare path, kept out of every task's future.
            let (rt, stop) = (task.rt.clone(), task.stop_token().clone());
            let slot = Box::pin(async move {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => false,
                    taken = slot::take(rt.slots(W::SLOTS, group)) => taken,
                }
            });
            Stage::Queued {
                work: Some(work),
                slot,
            }
        };
        Run {
            stage,
            stop: None,
            task,
        }
    }
}

impl<W: Work> Stage<W> {
    /// Drops what the stage holds — user code, whose `Drop` may panic: contained here, like
    /// everything else a task runs.
    fn end(mut stage: Pin<&mut Self>) {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done)));
    }

    fn running(task: &mut Task, work: W) -> Self {
        let body = work.into_body(BodyCx {
            rt: &task.rt,
            info: &task.info,
            timeout: task.timeout,
            attempt: &mut task.attempt,
            slot: &mut task.slot,
        });
        Stage::Running { body }
    }
}

impl<W: Work> Future for Run<W> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let task = this.task;
        loop {
            match this.stage.as_mut().project() {
                StageProj::Queued { work, slot } => {
                    if !ready!(slot.as_mut().poll(cx)) {
                        Stage::end(this.stage.as_mut());
                        task.stopped();
                        return Poll::Ready(());
                    }
                    let work = work.take().expect("a queued task has its work");
                    task.hold(W::SLOTS, true);
                    this.stage.set(Stage::running(task, work));
                }
                StageProj::Running { body } => {
                    // The body is polled first, so it wins a tie with shutdown.
                    let result = match body.poll(cx) {
                        Poll::Ready(result) => result,
                        Poll::Pending => {
                            if this.stop.is_none() {
                                let stop = task.stop_token().clone().cancelled_owned();
                                this.stop.set(Some(stop));
                            }
                            let stop = this.stop.as_mut().as_pin_mut();
                            ready!(stop.expect("registered above").poll(cx));
                            Stage::end(this.stage.as_mut());
                            task.stopped();
                            return Poll::Ready(());
                        }
                    };
                    Stage::end(this.stage.as_mut());
                    task.rt.emit(Event::AttemptEnded {
                        task: &task.info,
                        attempt: task.attempt.get(),
                        error: result.as_ref().err(),
                        retry_in: None,
                    });
                    let Err(error) = result else {
                        task.outcome = Some(Outcome::Succeeded);
                        return Poll::Ready(());
                    };
                    match task.failed(error) {
                        Some(handler) => this.stage.set(Stage::Handling { handler }),
                        None => return Poll::Ready(()),
                    }
                }
                StageProj::Handling { handler } => {
                    ready!(handler.as_mut().poll(cx));
                    Stage::end(this.stage.as_mut());
                    return Poll::Ready(());
                }
                StageProj::Done => return Poll::Ready(()),
            }
        }
    }
}

/// Runs an `on_error` handler, contained: its failure, panic or abort is reported once.
async fn run_handler(rt: Arc<Runtime>, info: TaskInfo, handler: ErrorHandler, error: TaskError) {
    let call = {
        let info = info.clone();
        AssertUnwindSafe(crate::logs::caught(handler.call(info, error))).catch_unwind()
    };
    let failure = tokio::select! {
        biased;
        _ = rt.aborted().cancelled() => Some((Outcome::Aborted, None)),
        result = call => match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some((error.outcome(), Some(error))),
            Err(panic) => Some((Outcome::Panicked, Some(TaskError::from_panic(panic)))),
        },
    };
    if let Some((outcome, error)) = failure {
        let mut report = ErrorReport::task(&info, outcome)
            .origin(Origin::ErrorHandler)
            .message(format!("on_error handler of task {}", outcome));
        if let Some(error) = &error {
            report = report.task_error(error);
        }
        rt.report(report);
    }
}
