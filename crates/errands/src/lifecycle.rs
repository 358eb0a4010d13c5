//! The lifecycle seam: every event of a task or a request passes through
//! [`Lifecycle::emit`], and only there is it counted, reported or observed.
//!
//! A task moves through these events, each emitted once by the code that makes it happen:
//!
//! ```text
//! admit ─► Scheduled ─┬─────────────► Queued ─► Started ─► AttemptEnded… ─► Finished
//!   │                 ├─► Held ─► Released ─┘   (or Started at once)        (any outcome)
//!   └─► Rejected      └─────────────────────────────────────────────────► Finished (skipped)
//! ```
//!
//! and a request through `RequestStarted` and `RequestFinished` (with its status and
//! delivery). Every report — about a task, a request, a handler of either, teardown or the
//! runtime itself — is the event `Reported`.
//!
//! The consumers live here too: the counters behind [`Stats`](crate::Stats), the metrics
//! (feature `metrics`, [`crate::metrics`]) and the registered reporters. Each event is built from borrowed values and matched inline, so an
//! event nobody consumes costs nothing.

use std::time::Duration;

use crate::report::{ErrorReport, Reporters};
use crate::request::RequestInfo;
use crate::stats::{Counters, Stats};
use crate::task::{Outcome, ScheduleError, TaskError, TaskId, TaskInfo};

/// One event of a task's or a request's life.
///
/// The counters read only which event it is; the payloads are there for the consumers that
/// need to know which task or request it was about (metrics, the dashboard, durable jobs).
#[derive(Debug)]
#[allow(dead_code)]
// An event lives on the stack for one `emit`: a boxed report would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Event<'a> {
    /// A schedule call for the task named `task` was refused; the task never existed.
    Rejected {
        task: &'a str,
        error: &'a ScheduleError,
    },
    /// A task was admitted (counted by [`Lifecycle::admit`]) and described.
    Scheduled(&'a TaskInfo),
    /// The task waits for its request's `after_route` or `after_response` moment.
    Held(&'a TaskInfo),
    /// Its moment came: the task leaves the held ones, to start or be skipped.
    Released(&'a TaskInfo),
    /// The task is due and waits for a free slot.
    Queued(&'a TaskInfo),
    /// The task holds a slot and runs; `queued` if it had to wait for one. `waited`: from
    /// the moment it was due (scheduled, or released) until it got its slot.
    Started {
        task: &'a TaskInfo,
        queued: bool,
        waited: Duration,
    },
    /// One attempt ended: with `error`, or successfully; `retry_in` when another follows. A
    /// durable job's attempt whose failure left its retry in the store emits that failure
    /// (with `retry_in`) before its task's own end, as its task is one attempt of the job.
    AttemptEnded {
        task: &'a TaskInfo,
        attempt: u32,
        error: Option<&'a TaskError>,
        retry_in: Option<Duration>,
    },
    /// The task is terminal; `queued` if it ended while waiting for a slot (shutdown).
    /// `ran`: how long it held its slot, if it got one.
    Finished {
        task: &'a TaskInfo,
        outcome: Outcome,
        queued: bool,
        ran: Option<Duration>,
    },
    /// A request entered the layer.
    RequestStarted(&'a RequestInfo),
    /// A request's response is over (or the request was dropped): its status and delivery
    /// are in the request's info. Emitted before its `after_route` and `after_response`
    /// tasks are released.
    RequestFinished(&'a RequestInfo),
    /// The server answered or closed a connection by itself before a request existed: a
    /// malformed request, a head too large, or a head not received in time.
    RejectedByServer,
    /// An error or a non-successful task, for the reporters.
    Reported(ErrorReport),
}

/// The one place events pass through, with their consumers.
pub(crate) struct Lifecycle {
    counters: Counters,
    reporters: Reporters,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Metrics,
    #[cfg(feature = "dashboard")]
    recent: crate::recent::Recent,
}

impl Lifecycle {
    pub(crate) fn new(reporters: Reporters) -> Self {
        Lifecycle {
            counters: Counters::default(),
            reporters,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Metrics::new(),
            #[cfg(feature = "dashboard")]
            recent: crate::recent::Recent::default(),
        }
    }

    /// Counts one more task, which its group admitted, and hands out its id (a refusal is
    /// counted by the [`Rejected`](Event::Rejected) event the caller emits).
    pub(crate) fn admit(&self) -> TaskId {
        self.counters.admit()
    }

    /// Passes one event to its consumers.
    #[inline]
    pub(crate) fn emit(&self, event: Event<'_>) {
        #[cfg(feature = "metrics")]
        self.measure(&event);
        #[cfg(feature = "dashboard")]
        self.remember(&event);
        let counters = &self.counters;
        match event {
            Event::Rejected { .. } => counters.rejected(),
            Event::RejectedByServer => counters.rejected_by_server(),
            Event::Held(_) => counters.pending_added(),
            Event::Released(_) => counters.pending_removed(),
            Event::Queued(_) => counters.queued(),
            Event::Started { queued: true, .. } => counters.dequeued(),
            Event::Finished {
                outcome, queued, ..
            } => counters.finished(outcome, queued),
            Event::Reported(report) => self.reporters.emit(report),
            Event::Scheduled(_)
            | Event::Started { queued: false, .. }
            | Event::AttemptEnded { .. }
            | Event::RequestStarted(_)
            | Event::RequestFinished(_) => {}
        }
    }

    /// The metrics' share of `event`.
    #[cfg(feature = "metrics")]
    fn measure(&self, event: &Event<'_>) {
        fn name(task: &TaskInfo) -> &str {
            task.meta.name.as_str()
        }
        let metrics = &self.metrics;
        match event {
            Event::Rejected { task, error } => metrics.rejected(task, error),
            Event::Scheduled(task) => metrics.scheduled(name(task), task.meta.timing),
            Event::Held(_) => metrics.held(),
            Event::Released(_) => metrics.released(),
            Event::Queued(_) => metrics.queued(),
            Event::Started {
                task,
                queued,
                waited,
            } => metrics.started(name(task), task.meta.timing, *queued, *waited),
            Event::AttemptEnded {
                task,
                retry_in: Some(_),
                ..
            } => metrics.retried(name(task), task.meta.timing),
            Event::AttemptEnded { .. } => {}
            Event::Finished {
                task,
                outcome,
                queued,
                ran,
            } => metrics.finished(name(task), task.meta.timing, *outcome, *queued, *ran),
            Event::RequestStarted(_) => metrics.request_started(),
            Event::RequestFinished(_) => metrics.request_finished(),
            Event::RejectedByServer => metrics.rejected_by_server(),
            Event::Reported(report) => metrics.reported(report),
        }
    }

    /// The recent history's share of `event`.
    #[cfg(feature = "dashboard")]
    fn remember(&self, event: &Event<'_>) {
        use crate::recent::TaskState;
        let recent = &self.recent;
        match event {
            Event::Scheduled(task) => recent.scheduled(task),
            Event::Held(task) => recent.state(task, TaskState::Pending),
            Event::Released(task) => recent.state(task, TaskState::Running),
            Event::Queued(task) => recent.state(task, TaskState::Queued),
            Event::Started { task, .. } => recent.started(task),
            Event::AttemptEnded {
                task,
                attempt,
                error: Some(error),
                retry_in,
            } => recent.attempt_ended(task, *attempt, error, *retry_in),
            Event::Finished { task, outcome, .. } => recent.finished(task, *outcome),
            Event::RequestFinished(request) => recent.request_finished(request),
            Event::Reported(report) => recent.reported(report),
            Event::Rejected { .. }
            | Event::AttemptEnded { error: None, .. }
            | Event::RequestStarted(_)
            | Event::RejectedByServer => {}
        }
    }

    /// The recent history the dashboard shows.
    #[cfg(feature = "dashboard")]
    pub(crate) fn recent(&self) -> &crate::recent::Recent {
        &self.recent
    }

    /// Reports `report`: the event [`Reported`](Event::Reported).
    pub(crate) fn report(&self, report: ErrorReport) {
        self.emit(Event::Reported(report));
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self, requests_in_flight: usize) -> Stats {
        self.counters.snapshot(requests_in_flight)
    }

    pub(crate) fn reporters(&self) -> &Reporters {
        &self.reporters
    }
}
