//! Reports: every error and every non-successful task ends up here, exactly once.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, StatusCode};
use tracing::{Level, field};

use crate::request::{RequestId, RequestInfo};
use crate::task::{Outcome, SharedError, SkipReason, TaskError, TaskInfo};

/// Where a reported error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A request handler: an error it returned, an error status, or a panic.
    Handler,
    /// The request was rejected before or instead of a handler: invalid input, unknown route,
    /// wrong method, unsupported media type, body too large.
    Rejection,
    /// A background task: failed, panicked, timed out, cancelled, aborted or skipped.
    Task,
    /// A task's `on_error` handler failed, panicked or was aborted, or an error mapper of the
    /// catalog panicked.
    ErrorHandler,
    /// A teardown hook failed or panicked during shutdown.
    Teardown,
    /// A WebSocket connection of [`ws::Hub`](crate::ws) closed abnormally: too slow, silent,
    /// over the size limit, a protocol error, or a handler panic.
    WebSocket,
    /// A reporter panicked or the runtime itself could not finish something.
    Runtime,
}

impl Origin {
    /// The stable name used in logs: `handler`, `rejection`, `task`, `error_handler`,
    /// `teardown`, `websocket`, `runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Handler => "handler",
            Origin::Rejection => "rejection",
            Origin::Task => "task",
            Origin::ErrorHandler => "error_handler",
            Origin::Teardown => "teardown",
            Origin::WebSocket => "websocket",
            Origin::Runtime => "runtime",
        }
    }
}

/// One link of an error's `source()` chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLink {
    /// The Rust type name, where it is known (the outermost error of a task's `Err`).
    pub type_name: Option<&'static str>,
    /// The error's `Display` text.
    pub message: String,
}

impl ErrorLink {
    /// A link for a text that stands for an error (a replaced error body), bounded.
    pub(crate) fn text(message: String) -> Self {
        ErrorLink {
            type_name: None,
            message: crate::chain::bounded(message, crate::chain::MAX_MESSAGE),
        }
    }

    /// The links of `error` and its sources (at most 32, each message at most 4 KiB); the
    /// outermost one's type name may be known.
    pub(crate) fn chain(
        error: &(dyn std::error::Error + 'static),
        type_name: Option<&'static str>,
    ) -> Vec<ErrorLink> {
        crate::chain::walk(error)
            .enumerate()
            .map(|(i, e)| ErrorLink {
                type_name: if i == 0 { type_name } else { None },
                message: crate::chain::bounded(e.to_string(), crate::chain::MAX_MESSAGE),
            })
            .collect()
    }
}

/// The chain of a task's error, outermost first: the error it returned, or what happened.
#[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
pub(crate) fn chain_of(error: &TaskError) -> Vec<ErrorLink> {
    match error {
        TaskError::Failed { error, type_name } => ErrorLink::chain(&**error, Some(type_name)),
        other => ErrorLink::chain(other, None),
    }
}

/// One reported error, given to every [`Reporter`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ErrorReport {
    /// Where the error came from.
    pub origin: Origin,
    /// For task reports, the task's terminal state; for error-handler reports, how the
    /// handler ended.
    pub outcome: Option<Outcome>,
    /// Why a task was skipped.
    pub skip_reason: Option<SkipReason>,
    /// For task reports, whether an `on_error` handler took care of the error; for request
    /// reports, whether a catalog mapping matched (or the handler's own body was kept).
    pub handled: bool,
    /// A one-line summary.
    pub message: Cow<'static, str>,
    /// The error chain, outermost first. Empty for outcomes without an error (cancelled,
    /// aborted, skipped).
    pub chain: Vec<ErrorLink>,
    /// The task, for reports about a task.
    pub task: Option<TaskInfo>,
    /// The request's id.
    pub request_id: Option<RequestId>,
    /// The W3C `traceparent` the request carried (for a durable job: the request that
    /// enqueued it), when it was a valid one.
    pub traceparent: Option<String>,
    /// The request's method.
    pub method: Option<Method>,
    /// The request's matched route.
    pub route: Option<String>,
    /// The response status, where one was sent.
    pub status: Option<StatusCode>,
    /// The stable error code sent in the body, for errors rendered by the pipeline.
    pub code: Option<String>,
    /// A key that stays the same when the same end is reported again, so that a reporter can
    /// de-duplicate: a durable job's report may be delivered again by the next process after
    /// a crash. Durable jobs' failures carry `job:{id}:{attempt}`, their skips
    /// `job:{id}:skipped`; other reports have none.
    pub key: Option<String>,
    /// The original error, for [`ErrorReport::error`].
    original: Option<SharedError>,
}

impl ErrorReport {
    pub(crate) fn new(origin: Origin) -> Self {
        ErrorReport {
            origin,
            outcome: None,
            skip_reason: None,
            handled: false,
            message: Cow::Borrowed(""),
            chain: Vec::new(),
            task: None,
            request_id: None,
            traceparent: None,
            method: None,
            route: None,
            status: None,
            code: None,
            key: None,
            original: None,
        }
    }

    pub(crate) fn task(info: &TaskInfo, outcome: Outcome) -> Self {
        let mut report = ErrorReport::new(Origin::Task);
        report.outcome = Some(outcome);
        if let Some(request) = &info.meta.request {
            report = report.request(request);
        }
        if report.request_id.is_none() {
            report.request_id = info.meta.enqueued_by.clone();
            report.traceparent = info.meta.traceparent.as_deref().map(str::to_owned);
        }
        report.task = Some(info.clone());
        report.key = info.meta.report_key.clone();
        report
    }

    /// Fills in the request's id, method, route and status.
    pub(crate) fn request(mut self, request: &RequestInfo) -> Self {
        self.request_id = Some(request.id.clone());
        self.traceparent = request.traceparent().map(str::to_owned);
        self.method = Some(request.method.clone());
        self.route = request.route().map(str::to_owned);
        self.status = request.status();
        self
    }

    /// Sets the status and code sent to the client.
    pub(crate) fn public(mut self, status: StatusCode, code: &str) -> Self {
        self.status = Some(status);
        self.code = Some(code.to_owned());
        self
    }

    pub(crate) fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub(crate) fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    pub(crate) fn skip_reason(mut self, reason: SkipReason) -> Self {
        self.skip_reason = Some(reason);
        self
    }

    pub(crate) fn handled(mut self, handled: bool) -> Self {
        self.handled = handled;
        self
    }

    pub(crate) fn task_error(mut self, error: &TaskError) -> Self {
        match error {
            TaskError::Failed { error, type_name } => return self.original(error, type_name),
            other => self.chain = ErrorLink::chain(other, None),
        }
        self
    }

    /// Sets the chain from the original error, and keeps the error itself.
    pub(crate) fn original(mut self, error: &SharedError, type_name: &'static str) -> Self {
        self.chain = ErrorLink::chain(&**error, Some(type_name));
        self.original = Some(error.clone());
        self
    }

    /// The original error object, when the report is about one: the error a handler returned
    /// (an [`Error`](crate::Error) or anything converted into it) or the `Err` a task returned
    /// — for an `anyhow::Error`, the error it holds. Give it to an error tracker that walks
    /// `source()` itself, or `downcast_ref` it. Panics, timeouts, cancellations, skips and
    /// error statuses without an error object have none; their [`chain`](Self::chain) says
    /// what happened.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.original.as_deref().map(crate::chain::open)
    }

    /// Sets the chain to a panic's message.
    pub(crate) fn panic(self, payload: Box<dyn std::any::Any + Send>) -> Self {
        self.panic_message(crate::task::panic_message(payload))
    }

    /// Sets the chain to a panic's message (already bounded).
    pub(crate) fn panic_message(mut self, message: String) -> Self {
        self.chain = vec![ErrorLink {
            type_name: None,
            message,
        }];
        self
    }

    /// The severity: `ERROR` for 5xx responses, task failures, panics, timeouts, aborts and
    /// broken handlers; `WARN` for cancellations and abnormally closed WebSocket connections;
    /// `INFO` for client errors (4xx) and skipped tasks.
    pub fn level(&self) -> Level {
        match (self.origin, self.outcome) {
            (Origin::Task, Some(Outcome::Skipped)) => Level::INFO,
            (Origin::Task, Some(Outcome::Cancelled)) => Level::WARN,
            (Origin::WebSocket, _) => Level::WARN,
            (Origin::Handler | Origin::Rejection, _)
                if self.status.is_some_and(|s| s.is_client_error()) =>
            {
                Level::INFO
            }
            _ => Level::ERROR,
        }
    }

    /// The error chain as one line: `outer: inner: root`; a message already part of the one
    /// before it (an error whose `Display` includes its source's) is not repeated.
    pub fn chain_text(&self) -> String {
        crate::chain::texts(self.chain.iter().map(|link| link.message.as_str()))
    }
}

/// Receives every [`ErrorReport`]. Reporters are called inline, so they must not block:
/// hand the report to a channel or a non-blocking writer. A reporter that panics is contained.
///
/// Any `Fn(&ErrorReport)` is a reporter. Forwarding to an error tracker, through a bounded
/// channel so that a slow tracker never slows requests or tasks:
///
/// ```
/// use errands::{Errands, ErrorReport};
/// use tokio::sync::mpsc;
///
/// #[derive(Debug)]
/// struct TrackerEvent { request_id: Option<String>, task: Option<String>, error: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, mut rx) = mpsc::channel::<TrackerEvent>(1024);
/// let errands = Errands::builder()
///     .reporter(move |report: &ErrorReport| {
///         // try_send: when the tracker falls behind, drop rather than block.
///         let _ = tx.try_send(TrackerEvent {
///             request_id: report.request_id.as_ref().map(|id| id.to_string()),
///             task: report.task.as_ref().map(|t| t.name().to_owned()),
///             error: report.chain_text(),
///         });
///     })
///     .build();
/// tokio::spawn(async move {
///     while let Some(event) = rx.recv().await {
///         // send `event` to the tracker's API here
///         let _ = event;
///     }
/// });
/// errands.tasks().schedule(async { Err::<(), _>("smtp timeout") }).unwrap();
/// errands.idle().await;
/// # }
/// ```
pub trait Reporter: Send + Sync + 'static {
    /// Handles one report.
    fn report(&self, report: &ErrorReport);
}

impl<F: Fn(&ErrorReport) + Send + Sync + 'static> Reporter for F {
    fn report(&self, report: &ErrorReport) {
        self(report)
    }
}

/// The default reporter: one structured `tracing` event per report, target `errands`.
///
/// The event carries the origin, outcome, task id, name, timing and fields (as JSON), the
/// request id, method, route and status, and the error chain. Task arguments are never part
/// of it. Values from a closed set or validated (origin, outcome, timing, request id, method)
/// are recorded as plain text; free text (names, routes, codes, error messages) as escaped
/// strings, so that it cannot forge log lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingReporter;

macro_rules! report_event {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => tracing::error!($($rest)+),
            Level::WARN => tracing::warn!($($rest)+),
            _ => tracing::info!($($rest)+),
        }
    };
}

impl Reporter for TracingReporter {
    fn report(&self, r: &ErrorReport) {
        let task = r.task.as_ref();
        let fields = task
            .filter(|t| !t.fields().is_empty())
            .map(|t| t.fields_json().to_string());
        report_event!(
            r.level(),
            target: "errands",
            origin = %r.origin.as_str(),
            outcome = r.outcome.map(|o| field::display(o.as_str())),
            handled = r.handled,
            task.id = task.map(|t| t.id().as_u64()),
            task.name = task.map(|t| t.name()),
            task.timing = task.map(|t| field::display(t.timing().as_str())),
            task.shielded = task.map(|t| t.is_shielded()),
            task.attempt = task.map(|t| t.attempt()),
            task.fields = fields.as_deref(),
            request_id = r.request_id.as_ref().map(|id| field::display(id.as_str())),
            method = r.method.as_ref().map(|m| field::display(m.as_str())),
            route = r.route.as_deref(),
            status = r.status.map(|s| s.as_u16()),
            code = r.code.as_deref(),
            skip_reason = r.skip_reason.map(field::display),
            error = (!r.chain.is_empty()).then(|| r.chain_text()).as_deref(),
            "{}",
            r.message,
        );
    }
}

/// The most recent reports, kept for tests; bounded, oldest dropped first.
pub(crate) struct Capture {
    reports: Mutex<VecDeque<ErrorReport>>,
}

impl Capture {
    pub(crate) const LIMIT: usize = 10_000;

    pub(crate) fn snapshot(&self) -> Vec<ErrorReport> {
        let reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        reports.iter().cloned().collect()
    }

    fn push(&self, report: ErrorReport) {
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        if reports.len() == Self::LIMIT {
            reports.pop_front();
        }
        reports.push_back(report);
    }
}

/// The registered reporters, plus the optional capture used by [`crate::testing`].
pub(crate) struct Reporters {
    list: Vec<Arc<dyn Reporter>>,
    capture: std::sync::OnceLock<Capture>,
}

impl Reporters {
    pub(crate) fn new(list: Vec<Arc<dyn Reporter>>) -> Self {
        Reporters {
            list,
            capture: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn capture(&self) -> &Capture {
        self.capture.get_or_init(|| Capture {
            reports: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn emit(&self, report: ErrorReport) {
        for reporter in &self.list {
            let delivered = std::panic::catch_unwind(AssertUnwindSafe(|| reporter.report(&report)));
            if delivered.is_err() {
                tracing::error!(target: "errands", origin = "runtime", "a reporter panicked while handling a report");
            }
        }
        if let Some(capture) = self.capture.get() {
            capture.push(report);
        }
    }
}
