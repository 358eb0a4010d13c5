//! [`ErrandsBuilder`]: configures a runtime.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Semaphore;

use crate::errands::Errands;
use crate::errors::{ApiError, ErrorContext, Format, Pipeline};
use crate::report::{Reporter, Reporters, TracingReporter};
use crate::runtime::{Group, Limits, Runtime};
use crate::shutdown::{Shutdown, TeardownHook};
use crate::task::{ErrorHandler, OnError, TaskResult};

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
    limits: Limits,
    groups: Vec<Group>,
    span_level: tracing::Level,
    on_error: Option<ErrorHandler>,
    pipeline: Pipeline,
    reporters: Vec<Arc<dyn Reporter>>,
    default_reporter: bool,
    teardown: Vec<TeardownHook>,
    #[cfg(feature = "durable")]
    durable: Option<(crate::durable::AnyStore, crate::jobs::Registry)>,
    #[cfg(feature = "durable")]
    job_queues: Vec<(String, usize)>,
    #[cfg(feature = "durable")]
    job_lease: Duration,
    #[cfg(feature = "durable")]
    job_retention: Duration,
}

impl Default for ErrandsBuilder {
    fn default() -> Self {
        ErrandsBuilder {
            limits: Limits::default(),
            groups: Vec::new(),
            span_level: tracing::Level::INFO,
            on_error: None,
            pipeline: Pipeline::default(),
            reporters: Vec::new(),
            default_reporter: true,
            teardown: Vec::new(),
            #[cfg(feature = "durable")]
            durable: None,
            #[cfg(feature = "durable")]
            job_queues: Vec::new(),
            #[cfg(feature = "durable")]
            job_lease: crate::jobs::LEASE,
            #[cfg(feature = "durable")]
            job_retention: crate::jobs::RETENTION,
        }
    }
}

impl std::fmt::Debug for ErrandsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrandsBuilder")
            .field("limits", &self.limits)
            .field("span_level", &self.span_level)
            .field("format", &self.pipeline.format)
            .field("custom_renderer", &self.pipeline.renderer.is_some())
            .field("reporters", &self.reporters.len())
            .field("default_reporter", &self.default_reporter)
            .field("teardown_hooks", &self.teardown.len())
            .finish_non_exhaustive()
    }
}

impl ErrandsBuilder {
    /// How many tasks may run at once (default 1024; at least 1). Tasks beyond it wait,
    /// `queued`, for a slot. A task keeps its slot through its retries' backoff and its
    /// `on_error` handler.
    pub fn max_running(mut self, tasks: usize) -> Self {
        self.limits.max_running = tasks.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How many more unfinished tasks — queued for a slot, or waiting for their request's
    /// `after_*` moment — are accepted beyond `max_running` (default 10 000). Past
    /// `max_running + max_queued` unfinished tasks, scheduling returns
    /// [`ScheduleError::Overloaded`](crate::ScheduleError::Overloaded), a `503 overloaded`.
    pub fn max_queued(mut self, tasks: usize) -> Self {
        self.limits.max_queued = tasks;
        self
    }

    /// How many blocking tasks may run at once (default 16; at least 1), so that background
    /// blocking work never takes all of tokio's blocking threads from blocking handlers.
    /// Blocking tasks count towards `max_running + max_queued` too.
    pub fn max_blocking(mut self, tasks: usize) -> Self {
        self.limits.max_blocking = tasks.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long shutdown waits for in-flight requests to finish (default 30 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.limits.drain_timeout = timeout;
        self
    }

    /// How long shutdown waits for shielded tasks, counted from the moment unshielded tasks
    /// are cancelled (default 30 s). What is still running then is aborted.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.limits.shutdown_deadline = deadline;
        self
    }

    /// Declares the task group `name`, with running and queued limits of its own: tasks
    /// scheduled with [`TaskBuilder::group`](crate::TaskBuilder::group) count against these
    /// instead of the runtime's `max_running` and `max_queued`, so a storm of them — one
    /// client starting hour-long exports, say — stops at the group's limits (`503
    /// overloaded`) and leaves the rest of the capacity to everything else. Blocking tasks
    /// share `max_blocking` whatever their group. Declaring a name again replaces it.
    ///
    /// ```
    /// # async fn build_export() {}
    /// # async fn handler(tasks: errands::Tasks) -> Result<(), errands::ScheduleError> {
    /// tasks.immediate().group("exports").schedule(build_export())?;
    /// # Ok(()) }
    /// let errands = errands::Errands::builder().group("exports", 2, 8).build();
    /// # let _ = errands;
    /// ```
    pub fn group(mut self, name: &'static str, max_running: usize, max_queued: usize) -> Self {
        self.groups.retain(|group| group.name != name);
        self.groups.push(Group::new(name, max_running, max_queued));
        self
    }

    /// How long an abort waits for tasks to stop (default 5 s) before shutdown goes on without
    /// them and reports them; blocking closures cannot be interrupted and are named in the
    /// report.
    pub fn abort_grace(mut self, grace: Duration) -> Self {
        self.limits.abort_grace = grace;
        self
    }

    /// How many connections [`Errands::serve`] serves at once (default 1024); beyond it, new
    /// connections wait in the listen backlog until one closes. Keep it below the process's
    /// file descriptor limit, with room for the database and outgoing connections.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.serving.max_connections = connections.max(1);
        self
    }

    /// How long [`Errands::serve`] waits for each request head (default 30 s), counted from
    /// when the connection opens or the previous response ends: it bounds slow clients and
    /// idle keep-alive connections alike. A load balancer that keeps idle connections to the
    /// service should close them sooner than this.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.serving.header_read_timeout = timeout;
        self
    }

    /// How long [`Errands::serve`] lets a client pause while sending a request body
    /// (default 30 s); then reading the body fails with [`BodyTimedOut`](crate::BodyTimedOut),
    /// which the errands extractors answer with `408 request_timeout`.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.serving.body_read_timeout = timeout;
        self
    }

    /// The largest request head [`Errands::serve`] reads (default 64 KiB, at least 8 KiB);
    /// a larger one is answered `431`.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.limits.serving.max_header_bytes = bytes.max(8 * 1024);
        self
    }

    /// The level of the spans errands opens per request and per task (default `INFO`, so
    /// that with the usual `info` filter the application's own lines inside a handler or a
    /// task carry the request id and the task's name). `DEBUG` makes them free unless
    /// `errands=debug` is enabled. See [`logs`](crate::logs).
    pub fn span_level(mut self, level: tracing::Level) -> Self {
        self.span_level = level;
        self
    }

    /// The default `on_error` handler for tasks that have none of their own.
    pub fn on_task_error(mut self, handler: impl OnError) -> Self {
        self.on_error = Some(handler.into_handler());
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
        self.pipeline.catalog.add(mapper);
        self
    }

    /// Declares `E` an error that stands for another one, the way thiserror's
    /// `#[error(transparent)]` variants do: their `source()` skips the wrapped error, so no
    /// type match could find it. With the declaration, every type match — mappers,
    /// [`RetryPolicy::retry_on`](crate::RetryPolicy::retry_on),
    /// [`ErrorHandlers::on`](crate::ErrorHandlers::on), `find` — sees the `E` and then the
    /// error `inner` returns. The declaration is process-wide, as a type's shape is.
    ///
    /// `anyhow::Error` (with the `anyhow` feature) and an [`Error`](crate::Error) returned
    /// by a task need no declaration.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use errands::{ApiError, Errands};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("connection refused")]
    /// struct ConnectionError;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// enum AppError {
    ///     #[error(transparent)]
    ///     Connection(#[from] ConnectionError),
    ///     #[error("out of stock")]
    ///     OutOfStock,
    /// }
    ///
    /// let errands = Errands::builder()
    ///     .transparent(|e: &AppError| match e {
    ///         AppError::Connection(inner) => Some(inner),
    ///         AppError::OutOfStock => None,
    ///     })
    ///     .map_error(|_: &ConnectionError, _: &_| {
    ///         ApiError::new(StatusCode::BAD_GATEWAY, "upstream", "The upstream is unreachable.")
    ///     })
    ///     .build();
    /// # let _ = errands;
    /// ```
    pub fn transparent<E: std::error::Error + 'static>(
        self,
        inner: fn(&E) -> Option<&(dyn std::error::Error + 'static)>,
    ) -> Self {
        crate::chain::register(inner);
        self
    }

    /// Renders error bodies as RFC 9457 `application/problem+json` instead of the errands
    /// schema. See [`Format`].
    pub fn problem_json(self) -> Self {
        self.format(Format::Problem)
    }

    /// Sets the error body format.
    pub fn format(mut self, format: Format) -> Self {
        self.pipeline.format = format;
        self
    }

    /// Renders every error body with `render` instead of a built-in [`Format`], for a
    /// service with an error contract of its own. Everything else stays: the catalog decides
    /// the [`ApiError`], every error is reported once, mappers' tasks run, and the
    /// `x-request-id` header is set on the response. `render` sees only the public face —
    /// never the original error — so a 5xx body still cannot carry internal text. If it
    /// panics, that is reported and the body falls back to the configured [`Format`]. Keep
    /// the status of the `ApiError`: reports and the skip rules use the status it says.
    ///
    /// ```
    /// use axum::{Json, response::IntoResponse};
    /// use errands::{ApiError, Errands, RequestId};
    /// use serde_json::json;
    ///
    /// let errands = Errands::builder()
    ///     .render_errors(|error: &ApiError, id: &RequestId| {
    ///         let body = json!({
    ///             "errors": [{"status": error.status().as_u16(), "code": error.code(),
    ///                         "title": error.message(), "meta": error.details()}],
    ///             "trace_id": id.as_str(),
    ///         });
    ///         (error.status(), Json(body)).into_response()
    ///     })
    ///     .build();
    /// # let _ = errands;
    /// ```
    pub fn render_errors<F>(mut self, render: F) -> Self
    where
        F: Fn(&ApiError, &crate::request::RequestId) -> axum::response::Response
            + Send
            + Sync
            + 'static,
    {
        self.pipeline.renderer = Some(Arc::new(render));
        self
    }

    /// Uses an existing [`ErrorHandler`] — for example an [`ErrorHandlers`](crate::ErrorHandlers)
    /// registry — as the default `on_error` handler.
    pub fn task_error_handler(mut self, handler: impl Into<ErrorHandler>) -> Self {
        self.on_error = Some(handler.into());
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

    /// Keeps durable jobs in `store` — a `SqliteStore` (feature `sqlite`) or a `PgStore`
    /// (feature `postgres`): see [`jobs`](crate::jobs). Register each job type with
    /// [`job`](Self::job).
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn durable(mut self, store: impl Into<crate::durable::AnyStore>) -> Self {
        let registry = self.durable.take().map(|(_, r)| r).unwrap_or_default();
        self.durable = Some((store.into(), registry));
        self
    }

    /// Registers the job type `J`, run with `state` (after [`durable`](Self::durable)).
    ///
    /// # Panics
    ///
    /// If no store was given with [`durable`](Self::durable) before: a programming error,
    /// found at startup.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn job<J: crate::jobs::Job>(mut self, state: J::State) -> Self {
        let (_, registry) = self
            .durable
            .as_mut()
            .expect("ErrandsBuilder::job needs a store: call ErrandsBuilder::durable first");
        registry.add::<J>(state);
        self
    }

    /// Runs at most `concurrency` jobs of the queue `name` at once in this process (default
    /// 16 for every queue a registered job type uses): a queue of slow jobs cannot hold up
    /// the others. See [`Job::QUEUE`](crate::jobs::Job::QUEUE).
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn job_queue(mut self, name: impl Into<String>, concurrency: usize) -> Self {
        let name = name.into();
        self.job_queues.retain(|(queue, _)| *queue != name);
        self.job_queues.push((name, concurrency));
        self
    }

    /// How long a claimed job is leased (default 30 s), renewed every third of it while the
    /// job runs; also how long this process's held jobs outlive its last heartbeat. A job
    /// whose worker died runs again after at most this long; a shorter lease rescues sooner
    /// and writes more often.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn job_lease(mut self, lease: Duration) -> Self {
        self.job_lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long finished durable jobs (succeeded, failed, cancelled, discarded, skipped) are
    /// kept, for status queries and operators, before they are pruned (default: a week). A job
    /// whose report is still owed is kept until it is delivered.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn job_retention(mut self, retention: Duration) -> Self {
        self.job_retention = retention;
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Errands {
        let mut reporters = self.reporters;
        if self.default_reporter {
            reporters.insert(0, Arc::new(TracingReporter));
        }
        #[allow(unused_mut)]
        let mut groups = self.groups;
        #[cfg(feature = "durable")]
        if self.durable.is_some() {
            groups.push(Group::new(crate::jobs::GROUP, 16, 100_000));
        }
        let rt = Runtime::new(
            self.limits,
            groups,
            self.span_level,
            self.on_error,
            Reporters::new(reporters),
        );
        #[cfg(feature = "durable")]
        let durable = self.durable.map(|(store, registry)| {
            Arc::new(crate::jobs::Durable::new(
                store,
                registry,
                self.job_queues,
                self.job_lease,
                self.job_retention,
            ))
        });
        let errands = Errands::from_parts(rt, self.pipeline, Shutdown::new(self.teardown));
        #[cfg(feature = "durable")]
        let errands = match durable {
            Some(durable) => errands.with_durable(durable),
            None => errands,
        };
        errands
    }
}
