//! The runtime: [`Errands`] and its builder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::errors::{ApiError, Catalog, ErrorContext, Format, ScheduleError};
use crate::layer::ErrandsLayer;
use crate::live::Live;
use crate::report::{ErrorReport, Reporter, Reporters, TracingReporter};
use crate::shutdown::ShutdownSummary;
use crate::stats::{Counters, Stats};
use crate::task::{ErrorHandler, TaskError, TaskId, TaskInfo, TaskResult};
use crate::tasks::Tasks;

pub(crate) type TeardownHook =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<(), TaskError>> + Send>;

/// The errands runtime: owns every background task of the service, their accounting and the
/// shutdown sequence. Cheap to clone; all clones share one runtime.
///
/// ```
/// use axum::{Router, routing::get};
/// use errands::Errands;
///
/// let errands = Errands::builder()
///     .drain_timeout(std::time::Duration::from_secs(10))
///     .shutdown_deadline(std::time::Duration::from_secs(20))
///     .build();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(errands.layer());
/// ```
#[derive(Clone)]
pub struct Errands {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Config {
    pub(crate) max_running: usize,
    pub(crate) max_queued: usize,
    pub(crate) max_blocking: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) shutdown_deadline: Duration,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) catalog: Catalog,
    pub(crate) format: Format,
}

pub(crate) struct Inner {
    /// The task counters, which also admit tasks (capped at `max_running + max_queued`) and
    /// number them.
    pub(crate) counters: Counters,
    /// One permit per running (async) task.
    pub(crate) slots: Semaphore,
    /// One permit per running blocking task.
    pub(crate) blocking_slots: Semaphore,
    /// Every started task, and blocking closures still running after their task ended.
    pub(crate) tasks: Live,
    /// Every request inside the layer until its response is over, and open WebSocket
    /// connections.
    pub(crate) requests: Live,
    /// Shutdown has started (stop accepting connections, drain requests).
    pub(crate) started: CancellationToken,
    /// Cancels unshielded tasks (shutdown step 2); a child of `abort`.
    pub(crate) cancel: CancellationToken,
    /// Aborts every task still running (deadline reached, or a second signal).
    pub(crate) abort: CancellationToken,
    closed: AtomicBool,
    pub(crate) config: Config,
    reporters: Reporters,
    pub(crate) teardown: Mutex<Vec<TeardownHook>>,
    pub(crate) shutdown: tokio::sync::OnceCell<ShutdownSummary>,
}

impl Inner {
    /// Admits one more task, or says why not (the call is then counted `rejected`).
    pub(crate) fn admit(&self) -> Result<(TaskId, Handle), ScheduleError> {
        let admitted = || {
            if self.is_closed() {
                return Err(ScheduleError::ShuttingDown);
            }
            let handle = Handle::try_current().map_err(|_| ScheduleError::NoRuntime)?;
            let cap = self
                .config
                .max_running
                .saturating_add(self.config.max_queued) as u64;
            let id = self.counters.admit(cap).ok_or(ScheduleError::Overloaded)?;
            Ok((id, handle))
        };
        admitted().inspect_err(|_| self.counters.rejected())
    }

    /// Whether the runtime stopped accepting tasks (shutdown passed the request drain).
    /// Sequentially consistent, like the count of started tasks: see `Pending::start`.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn report(&self, report: ErrorReport) {
        self.reporters.emit(report);
    }

    pub(crate) fn reporters(&self) -> &Reporters {
        &self.reporters
    }
}

impl Default for Errands {
    fn default() -> Self {
        Errands::new()
    }
}

impl Errands {
    /// A runtime with the default configuration.
    pub fn new() -> Self {
        Errands::builder().build()
    }

    /// Starts configuring a runtime.
    pub fn builder() -> ErrandsBuilder {
        ErrandsBuilder::default()
    }

    /// The layer to add to the router. Add it last (outermost), so that every route, the
    /// fallback and all other middleware run inside it.
    pub fn layer(&self) -> ErrandsLayer {
        ErrandsLayer::new(self.inner.clone())
    }

    /// A handle for scheduling tasks outside any request (at startup, from another task).
    /// Without a request, `after_route` and `after_response` tasks start at once.
    pub fn tasks(&self) -> Tasks {
        Tasks::for_runtime(&self.inner)
    }

    /// A snapshot of the task counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(self.inner.requests.len())
    }

    /// Waits until no request is inside the layer and no task is pending, queued or running.
    pub async fn idle(&self) {
        loop {
            self.inner.requests.wait().await;
            self.inner.tasks.wait().await;
            if self.inner.requests.is_empty() && self.inner.tasks.is_empty() {
                return;
            }
        }
    }
}

/// Configures an [`Errands`] runtime.
///
/// ```
/// use std::time::Duration;
/// use errands::{Errands, TaskError, TaskInfo};
///
/// let errands = Errands::builder()
///     .drain_timeout(Duration::from_secs(15))
///     .shutdown_deadline(Duration::from_secs(25))
///     .on_task_error(|info: TaskInfo, error: TaskError| async move {
///         tracing::warn!(task = %info.name(), %error, "task failed");
///     })
///     .on_teardown(|| async { /* close pools, flush exporters */ })
///     .build();
/// # let _ = errands;
/// ```
#[must_use]
pub struct ErrandsBuilder {
    config: Config,
    reporters: Vec<Arc<dyn Reporter>>,
    default_reporter: bool,
    teardown: Vec<TeardownHook>,
}

impl Default for ErrandsBuilder {
    fn default() -> Self {
        ErrandsBuilder {
            config: Config {
                max_running: 1024,
                max_queued: 10_000,
                max_blocking: 16,
                drain_timeout: Duration::from_secs(30),
                shutdown_deadline: Duration::from_secs(30),
                on_error: None,
                catalog: Catalog::default(),
                format: Format::default(),
            },
            reporters: Vec::new(),
            default_reporter: true,
            teardown: Vec::new(),
        }
    }
}

impl ErrandsBuilder {
    /// How many tasks may run at once (default 1024; at least 1). Tasks beyond it wait,
    /// `queued`, for a slot. A task keeps its slot through its retries' backoff and its
    /// `on_error` handler.
    pub fn max_running(mut self, tasks: usize) -> Self {
        self.config.max_running = tasks.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How many more unfinished tasks — queued for a slot, or waiting for their request's
    /// `after_*` moment — are accepted beyond `max_running` (default 10 000). Past
    /// `max_running + max_queued` unfinished tasks, scheduling returns
    /// [`ScheduleError::Overloaded`](crate::ScheduleError::Overloaded), a `503 overloaded`.
    pub fn max_queued(mut self, tasks: usize) -> Self {
        self.config.max_queued = tasks;
        self
    }

    /// How many blocking tasks may run at once (default 16; at least 1), so that background
    /// blocking work never takes all of tokio's blocking threads from blocking handlers.
    /// Blocking tasks count towards `max_running + max_queued` too.
    pub fn max_blocking(mut self, tasks: usize) -> Self {
        self.config.max_blocking = tasks.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long shutdown waits for in-flight requests to finish (default 30 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// How long shutdown waits for shielded tasks, counted from the moment unshielded tasks
    /// are cancelled (default 30 s). What is still running then is aborted.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// The default `on_error` handler for tasks that have none of their own.
    pub fn on_task_error<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(TaskInfo, TaskError) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.config.on_error = Some(ErrorHandler::new(handler));
        self
    }

    /// Maps errors of type `E` — wherever they occur along an error's `source()` chain — to
    /// their public face. Mappers are tried outermost error first; for the same error, the
    /// one registered last wins, and user mappers win over the built-in ones. A mapper may
    /// attach tasks to the error response through [`ErrorContext::task`].
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use errands::{ApiError, ErrorContext, Errands};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("only {available} left")]
    /// struct InsufficientStock { available: u32 }
    ///
    /// async fn notify_purchasing(available: u32) {}
    ///
    /// let errands = Errands::builder()
    ///     .map_error(|e: &InsufficientStock, ctx: &ErrorContext| {
    ///         let _ = ctx.task().name("notify_purchasing").schedule(notify_purchasing(e.available));
    ///         ApiError::new(StatusCode::CONFLICT, "insufficient_stock", "Not enough items in stock.")
    ///             .with_details(serde_json::json!({"available": e.available}))
    ///     })
    ///     .build();
    /// # let _ = errands;
    /// ```
    pub fn map_error<E, F>(mut self, mapper: F) -> Self
    where
        E: std::error::Error + 'static,
        F: Fn(&E, &ErrorContext) -> ApiError + Send + Sync + 'static,
    {
        self.config.catalog.add(mapper);
        self
    }

    /// Renders error bodies as RFC 9457 `application/problem+json` instead of the errands
    /// schema. See [`Format`].
    pub fn problem_json(self) -> Self {
        self.format(Format::Problem)
    }

    /// Sets the error body format.
    pub fn format(mut self, format: Format) -> Self {
        self.config.format = format;
        self
    }

    /// Uses an existing [`ErrorHandler`] — for example an [`ErrorHandlers`](crate::ErrorHandlers)
    /// registry — as the default `on_error` handler.
    pub fn task_error_handler(mut self, handler: impl Into<ErrorHandler>) -> Self {
        self.config.on_error = Some(handler.into());
        self
    }

    /// Adds a reporter; every report reaches every reporter once.
    pub fn reporter(mut self, reporter: impl Reporter) -> Self {
        self.reporters.push(Arc::new(reporter));
        self
    }

    /// Removes the default [`TracingReporter`] (for example when a custom reporter logs).
    pub fn without_tracing_reporter(mut self) -> Self {
        self.default_reporter = false;
        self
    }

    /// Adds a teardown hook, run once at the very end of shutdown, after every task is
    /// terminal. Hooks run in the order they were added; a failing or panicking hook is
    /// reported and the next one still runs.
    pub fn on_teardown<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.teardown.push(Box::new(move || {
            hook().map(TaskResult::into_task_result).boxed()
        }));
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Errands {
        let mut reporters = self.reporters;
        if self.default_reporter {
            reporters.insert(0, Arc::new(TracingReporter));
        }
        // An abort also cancels, so a task waits on one token: unshielded on `cancel`,
        // shielded on `abort`.
        let abort = CancellationToken::new();
        Errands {
            inner: Arc::new(Inner {
                counters: Counters::default(),
                slots: Semaphore::new(self.config.max_running),
                blocking_slots: Semaphore::new(self.config.max_blocking),
                tasks: Live::default(),
                requests: Live::default(),
                started: CancellationToken::new(),
                cancel: abort.child_token(),
                abort,
                closed: AtomicBool::new(false),
                config: self.config,
                reporters: Reporters::new(reporters),
                teardown: Mutex::new(self.teardown),
                shutdown: tokio::sync::OnceCell::new(),
            }),
        }
    }
}
