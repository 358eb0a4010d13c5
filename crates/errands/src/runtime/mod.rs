//! [`Runtime`]: the state every handle of one errands runtime shares — its limits, slots,
//! what is in flight, its shutdown signals and its [`Lifecycle`] — with the only methods that
//! read or change it. [`Errands`](crate::Errands) is the public handle to it.
//!
//! The contract of this state, which its users keep through these methods:
//!
//! * A task is admitted ([`admit`](Runtime::admit)) before it exists; at most
//!   `max_running + max_queued` are unfinished at once, and a refusal is counted.
//! * A started task is in [`tasks`](Runtime::tasks) until it is terminal, and a request is in
//!   [`requests`](Runtime::requests) until its response is over; shutdown and `idle()` wait
//!   for both to reach zero.
//! * Once [`close`](Runtime::close)d, no task is admitted, and a task about to start finds the
//!   runtime closed (sequentially consistent with the count of started tasks), so a task never
//!   starts unseen by shutdown.
//! * Shutdown has three signals: `started` (stop accepting, drain), `cancel` (unshielded tasks
//!   stop), `abort` (every task stops). An abort also cancels.

mod group;
mod limits;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{Event, Lifecycle};
use crate::live::Live;
use crate::report::{ErrorReport, Reporters};
use crate::stats::Stats;
use crate::task::{ErrorHandler, ScheduleError, TaskId, TaskInfo, TaskName};

pub(crate) use group::{Group, GroupId};
pub(crate) use limits::{Limits, Serving};

/// Which limit a slot counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// `max_running`: async tasks.
    Running,
    /// `max_blocking`: blocking tasks.
    Blocking,
}

/// The shared state of one errands runtime.
pub(crate) struct Runtime {
    limits: Limits,
    /// The level of the request and task spans.
    span_level: tracing::Level,
    /// The default `on_error` handler, for tasks without their own.
    on_error: Option<ErrorHandler>,
    lifecycle: Lifecycle,
    /// The task groups, the default one first: each with its running slots and its cap.
    groups: Vec<Group>,
    /// One permit per running blocking task.
    blocking_slots: Semaphore,
    /// The blocking closures running now, by task: at most `max_blocking`. Named when an
    /// abort cannot stop them.
    blocking: std::sync::Mutex<Vec<(TaskId, String)>>,
    /// Every started task, and blocking closures still running after their task ended.
    tasks: Live,
    /// Every request inside the layer until its response is over, and open WebSocket
    /// connections.
    requests: Live,
    /// Shutdown has started (stop accepting connections, drain requests).
    started: CancellationToken,
    /// Cancels unshielded tasks (shutdown step 2); a child of `abort`.
    cancel: CancellationToken,
    /// Aborts every task still running (deadline reached, or a second signal).
    abort: CancellationToken,
    closed: AtomicBool,
    /// Durable jobs' attempts stopped by shutdown: handed back to their store.
    handed_back: AtomicU64,
    /// What a higher layer keeps with the runtime (its durable side), for the handles that
    /// only know the runtime.
    #[cfg(feature = "durable")]
    attached: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Runtime {
    pub(crate) fn new(
        limits: Limits,
        groups: Vec<Group>,
        span_level: tracing::Level,
        on_error: Option<ErrorHandler>,
        reporters: Reporters,
    ) -> Self {
        let default = Group::new("default", limits.max_running, limits.max_queued);
        let groups = std::iter::once(default).chain(groups).collect();
        // An abort also cancels, so a task waits on one token: unshielded on `cancel`,
        // shielded on `abort`.
        let abort = CancellationToken::new();
        Runtime {
            groups,
            blocking_slots: Semaphore::new(limits.max_blocking),
            blocking: std::sync::Mutex::default(),
            limits,
            span_level,
            on_error,
            lifecycle: Lifecycle::new(reporters),
            tasks: Live::default(),
            requests: Live::default(),
            started: CancellationToken::new(),
            cancel: abort.child_token(),
            abort,
            closed: AtomicBool::new(false),
            handed_back: AtomicU64::new(0),
            #[cfg(feature = "durable")]
            attached: std::sync::OnceLock::new(),
        }
    }

    /// `count` more durable jobs' attempts were stopped by shutdown, and so handed back.
    #[cfg(feature = "durable")]
    pub(crate) fn hand_back(&self, count: u64) {
        self.handed_back.fetch_add(count, Ordering::Relaxed);
    }

    /// How many durable jobs were handed back to their store at shutdown.
    pub(crate) fn handed_back(&self) -> u64 {
        self.handed_back.load(Ordering::Relaxed)
    }

    /// Keeps `value` with the runtime, once; a second call is ignored.
    #[cfg(feature = "durable")]
    pub(crate) fn attach<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        let _ = self.attached.set(value);
    }

    /// What was attached, if it is a `T`.
    #[cfg(feature = "durable")]
    pub(crate) fn attached<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.attached.get()?.clone().downcast().ok()
    }

    /// The level of the request and task spans.
    pub(crate) fn span_level(&self) -> tracing::Level {
        self.span_level
    }

    /// The default `on_error` handler.
    pub(crate) fn on_error(&self) -> Option<&ErrorHandler> {
        self.on_error.as_ref()
    }

    /// Admits one more task, named `task`, into `group`, or says why not (emitting
    /// [`Event::Rejected`]).
    pub(crate) fn admit(
        &self,
        task: &TaskName,
        group: GroupId,
    ) -> Result<(TaskId, Handle), ScheduleError> {
        let admitted = || {
            if self.is_closed() {
                return Err(ScheduleError::ShuttingDown);
            }
            let handle = Handle::try_current().map_err(|_| ScheduleError::NoRuntime)?;
            if !self.groups[group.0].admit() {
                return Err(ScheduleError::Overloaded);
            }
            Ok((self.lifecycle.admit(), handle))
        };
        admitted().inspect_err(|error| {
            self.emit(Event::Rejected {
                task: task.as_str(),
                error,
            });
        })
    }

    /// The group called `name`.
    pub(crate) fn group(&self, name: &str) -> Option<GroupId> {
        self.groups.iter().position(|g| g.name == name).map(GroupId)
    }

    /// Passes an event through the lifecycle seam; a finished task leaves its group.
    #[inline]
    pub(crate) fn emit(&self, event: Event<'_>) {
        if let Event::Finished { task, .. } = &event {
            self.groups[task.meta.group.0].release();
        }
        self.lifecycle.emit(event);
    }

    /// Reports once, through the lifecycle seam.
    pub(crate) fn report(&self, report: ErrorReport) {
        self.lifecycle.report(report);
    }

    /// The recent history the dashboard shows.
    #[cfg(feature = "dashboard")]
    pub(crate) fn recent(&self) -> &crate::recent::Recent {
        self.lifecycle.recent()
    }

    pub(crate) fn reporters(&self) -> &Reporters {
        self.lifecycle.reporters()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lifecycle.stats(self.requests.len())
    }

    /// The semaphore of one kind of slot: a running slot is `group`'s.
    pub(crate) fn slots(&self, kind: SlotKind, group: GroupId) -> &Semaphore {
        match kind {
            SlotKind::Running => &self.groups[group.0].slots,
            SlotKind::Blocking => self.blocking_slots(),
        }
    }

    /// The semaphore of blocking slots, shared by every group.
    pub(crate) fn blocking_slots(&self) -> &Semaphore {
        &self.blocking_slots
    }

    /// Started tasks not terminal yet.
    pub(crate) fn tasks(&self) -> &Live {
        &self.tasks
    }

    /// Requests whose response is not over, and open WebSocket connections.
    pub(crate) fn requests(&self) -> &Live {
        &self.requests
    }

    /// Whether the runtime stopped accepting tasks (shutdown passed the request drain).
    /// Sequentially consistent, like the count of started tasks: see `Pending::start`.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops accepting tasks.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// The token that stops a task: `abort` for a shielded task, `cancel` otherwise.
    pub(crate) fn stop_token(&self, shielded: bool) -> &CancellationToken {
        if shielded { &self.abort } else { &self.cancel }
    }

    /// Cancelled once shutdown has started.
    pub(crate) fn started(&self) -> &CancellationToken {
        &self.started
    }

    /// Cancelled once shutdown aborts every task.
    pub(crate) fn aborted(&self) -> &CancellationToken {
        &self.abort
    }

    /// Starts shutdown: stop accepting connections, drain requests.
    pub(crate) fn begin_shutdown(&self) {
        self.started.cancel();
    }

    /// Shutdown step 2: unshielded tasks stop.
    pub(crate) fn cancel_unshielded(&self) {
        self.cancel.cancel();
    }

    /// Every task stops, and no task is accepted any more.
    pub(crate) fn abort(&self) {
        self.close();
        self.started.cancel();
        self.abort.cancel();
    }

    /// How long shutdown drains requests.
    pub(crate) fn drain_timeout(&self) -> Duration {
        self.limits.drain_timeout
    }

    /// How long shutdown waits for shielded tasks.
    pub(crate) fn shutdown_deadline(&self) -> Duration {
        self.limits.shutdown_deadline
    }

    /// Records that `task`'s blocking closure runs, until the returned guard is dropped.
    pub(crate) fn blocking_started(self: &Arc<Self>, task: &TaskInfo) -> BlockingRun {
        let entry = (
            task.id(),
            format!("{} (task {})", task.name(), task.id().as_u64()),
        );
        self.blocking_list().push(entry);
        BlockingRun {
            rt: self.clone(),
            id: task.id(),
        }
    }

    /// The blocking closures running now, by name.
    pub(crate) fn blocking_names(&self) -> Vec<String> {
        self.blocking_list()
            .iter()
            .map(|(_, name)| name.clone())
            .collect()
    }

    fn blocking_list(&self) -> std::sync::MutexGuard<'_, Vec<(TaskId, String)>> {
        self.blocking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long an abort waits for tasks to stop.
    pub(crate) fn abort_grace(&self) -> Duration {
        self.limits.abort_grace
    }

    /// What `serve` allows its clients.
    pub(crate) fn serving(&self) -> Serving {
        self.limits.serving
    }
}

/// A blocking closure of a task, running: see [`Runtime::blocking_started`].
pub(crate) struct BlockingRun {
    rt: Arc<Runtime>,
    id: TaskId,
}

impl Drop for BlockingRun {
    fn drop(&mut self) {
        self.rt.blocking_list().retain(|(id, _)| *id != self.id);
    }
}
