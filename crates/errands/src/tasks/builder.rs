//! Configuring one task before it is scheduled.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use super::Tasks;
use crate::exec::{Blocking, Once, Pending, Prepared, RetryHook, Retrying, Work};
use crate::lifecycle::Event;
use crate::request::RequestId;
use crate::task::{
    ErrorHandler, Field, GroupId, RetryPolicy, ScheduleError, TaskError, TaskId, TaskInfo,
    TaskMeta, TaskName, TaskResult, Timing,
};

/// Configures one task; made by [`Tasks::immediate`], [`Tasks::after_route`] or
/// [`Tasks::after_response`], finished by [`schedule`](TaskBuilder::schedule).
///
/// ```
/// use errands::Tasks;
/// use std::time::Duration;
///
/// async fn charge(payment_id: u64) -> Result<(), std::io::Error> { Ok(()) }
///
/// async fn handler(tasks: Tasks) -> Result<&'static str, errands::ScheduleError> {
///     tasks
///         .after_response()
///         .name("charge_card")
///         .shield()
///         .timeout(Duration::from_secs(30))
///         .field("payment_id", 12345)
///         .on_error(|info, error| async move {
///             tracing::error!(task = %info.name(), %error, "payment failed");
///         })
///         .schedule(charge(12345))?;
///     Ok("accepted")
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::post(handler));
/// ```
#[must_use = "a task is only scheduled by calling `.schedule(..)`"]
pub struct TaskBuilder<'a> {
    tasks: &'a Tasks,
    timing: Timing,
    name: Option<Cow<'static, str>>,
    shielded: bool,
    always: bool,
    on_error: Option<ErrorHandler>,
    timeout: Option<Duration>,
    fields: Vec<Field>,
    group: Option<&'static str>,
    report_key: Option<String>,
    enqueued_by: Option<RequestId>,
    traceparent: Option<Box<str>>,
    attempts_before: u32,
}

impl std::fmt::Debug for TaskBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("timing", &self.timing)
            .field("name", &self.name)
            .field("shielded", &self.shielded)
            .field("always", &self.always)
            .field("on_error", &self.on_error.is_some())
            .field("timeout", &self.timeout)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl<'a> TaskBuilder<'a> {
    pub(crate) fn new(tasks: &'a Tasks, timing: Timing) -> Self {
        TaskBuilder {
            tasks,
            timing,
            name: None,
            shielded: false,
            always: false,
            on_error: None,
            timeout: None,
            fields: Vec::new(),
            group: None,
            report_key: None,
            enqueued_by: None,
            traceparent: None,
            attempts_before: 0,
        }
    }

    /// Runs the task in the group `name` (declared with
    /// [`ErrandsBuilder::group`](crate::ErrandsBuilder::group)): it counts against that
    /// group's running and queued limits instead of the runtime's, so that a storm of such
    /// tasks cannot take the capacity other work needs. Scheduling with a name the runtime does
    /// not know fails with [`ScheduleError::UnknownGroup`].
    pub fn group(mut self, name: &'static str) -> Self {
        self.group = Some(name);
        self
    }

    /// Names the task in reports, logs and `settle()` failures. By default the name is derived
    /// from the scheduled function: `send_email(..)` is named `send_email`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Carries the task through shutdown: it is not cancelled with the unshielded tasks, and
    /// shutdown waits for it (with its `on_error` handler) up to the shutdown deadline.
    pub fn shield(mut self) -> Self {
        self.shielded = true;
        self
    }

    /// Runs an `after_route` or `after_response` task however the request ended: error status,
    /// handler panic or client disconnect. Immediate tasks are never skipped anyway.
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// Runs `handler` when the task ends `failed`, `panicked` or `timed_out`; it replaces the
    /// runtime's default handler for this task. See [`ErrorHandler`]. It runs at most once
    /// (after the last attempt), so it may move what it captured into its future:
    ///
    /// ```
    /// # async fn f(tasks: errands::Tasks) {
    /// let (client, webhook) = (reqwest::Client::new(), String::from("http://127.0.0.1:9/alerts"));
    /// tasks
    ///     .after_response()
    ///     .on_error(move |info, error| async move {
    ///         let alert = format!("{} failed: {error}", info.name());
    ///         client.post(webhook).body(alert).send().await?.error_for_status()?;
    ///         Ok::<_, reqwest::Error>(())
    ///     })
    ///     .schedule(async { Err::<(), _>("smtp down") })
    ///     .unwrap();
    /// # }
    /// ```
    pub fn on_error<F, Fut>(mut self, handler: F) -> Self
    where
        F: FnOnce(TaskInfo, TaskError) -> Fut + Send + 'static,
        Fut: Future<Output: TaskResult> + Send + 'static,
    {
        self.on_error = Some(ErrorHandler::once(handler));
        self
    }

    /// Uses an existing [`ErrorHandler`] — for example an
    /// [`ErrorHandlers`](crate::ErrorHandlers) registry — for this task.
    pub fn error_handler(mut self, handler: impl Into<ErrorHandler>) -> Self {
        self.on_error = Some(handler.into());
        self
    }

    /// Ends the task as `timed_out` if it runs longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Adds a context field: the only task data that reaches reports and logs. The task's
    /// arguments never do. As a value may come from the client, it is bounded like error
    /// details (strings to 256 bytes, arrays and objects to 100 entries).
    pub fn field(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.fields
            .push((key, crate::chain::bounded_json(value.into())));
        self
    }

    /// Schedules `future` as the task and returns its id.
    ///
    /// The future may output `()` or any `Result<T, E>` whose error converts into a
    /// [`BoxError`](crate::BoxError). It never delays the response.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Overloaded`] past `max_running + max_queued` unfinished tasks,
    /// [`ScheduleError::ShuttingDown`] once shutdown has drained the requests, and
    /// [`ScheduleError::NoRuntime`] outside a tokio runtime. The task is then not started and
    /// is counted as `rejected`.
    #[track_caller]
    pub fn schedule<F>(self, future: F) -> Result<TaskId, ScheduleError>
    where
        F: Future + Send + 'static,
        F::Output: TaskResult,
    {
        self.submit(
            Once(future),
            TaskName::derived(std::any::type_name::<F>(), Location::caller()),
        )
    }

    /// Runs `f` on tokio's blocking pool, under the runtime's `max_blocking` limit, so that
    /// background blocking work cannot take the threads blocking handlers need.
    ///
    /// Blocking code cannot be interrupted: a timeout, a shutdown cancellation or an abort
    /// ends the *task* (reported as usual), but the closure runs on until it returns, keeping
    /// its blocking slot. `TaskInfo::current()` is not available inside it.
    ///
    /// ```
    /// # async fn handler(tasks: errands::Tasks) -> Result<(), errands::ScheduleError> {
    /// tasks.after_response().name("resize_image").schedule_blocking(|| {
    ///     // CPU-heavy or blocking I/O work
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`schedule`](TaskBuilder::schedule).
    #[track_caller]
    pub fn schedule_blocking<F, R>(self, f: F) -> Result<TaskId, ScheduleError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: TaskResult,
    {
        self.submit(
            Blocking(f),
            TaskName::derived(std::any::type_name::<F>(), Location::caller()),
        )
    }

    /// Retries the task by `policy`: the task is then a factory, called again for every
    /// attempt. `on_error` runs once, after the final attempt; a success after retries counts
    /// once, as a success. Set the other options before this one.
    pub fn retry(self, policy: RetryPolicy) -> RetryBuilder<'a> {
        RetryBuilder {
            task: self,
            policy,
            on_retry: None,
        }
    }

    /// The handle the task is scheduled on.
    #[cfg(feature = "durable")]
    pub(crate) fn tasks(&self) -> &'a Tasks {
        self.tasks
    }

    /// When the task is due.
    #[cfg(feature = "durable")]
    pub(crate) fn timing(&self) -> Timing {
        self.timing
    }

    /// The context fields given so far.
    #[cfg(feature = "durable")]
    pub(crate) fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Its reports carry `key`, stable across processes.
    #[cfg(feature = "durable")]
    pub(crate) fn report_key(mut self, key: String) -> Self {
        self.report_key = Some(key);
        self
    }

    /// The trace of the request that enqueued a durable job (for its attempt).
    #[cfg(feature = "durable")]
    pub(crate) fn traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.traceparent = traceparent.map(Into::into);
        self
    }

    /// For a task run on behalf of the request `id` after it is gone (a durable job's
    /// attempt): its reports and logs carry the id.
    #[cfg(feature = "durable")]
    pub(crate) fn enqueued_by(mut self, id: Option<RequestId>) -> Self {
        self.enqueued_by = id;
        self
    }

    /// The task is attempt `attempt` of work that began before it (a durable job's).
    #[cfg(feature = "durable")]
    pub(crate) fn attempt(mut self, attempt: u32) -> Self {
        self.attempts_before = attempt.saturating_sub(1);
        self
    }

    /// Adds context fields, already bounded.
    #[cfg(feature = "durable")]
    pub(crate) fn with_fields(mut self, fields: Vec<Field>) -> Self {
        self.fields.extend(fields);
        self
    }

    /// In the group `name` unless one was chosen.
    #[cfg(feature = "durable")]
    pub(crate) fn default_group(mut self, name: &'static str) -> Self {
        self.group.get_or_insert(name);
        self
    }

    /// Schedules `work`, named `derived` unless a name was given.
    pub(crate) fn submit<W: Work>(
        self,
        work: W,
        derived: TaskName,
    ) -> Result<TaskId, ScheduleError> {
        let rt = self.tasks.rt();
        let name = self.name.map_or(derived, TaskName::Given);
        let group = match self.group {
            None => GroupId::default(),
            Some(group) => rt.group(group).ok_or_else(|| {
                let error = ScheduleError::UnknownGroup(group);
                rt.emit(Event::Rejected {
                    task: name.as_str(),
                    error: &error,
                });
                error
            })?,
        };
        let (id, handle) = rt.admit(&name, group)?;
        let request = self.tasks.scope();
        let info = TaskInfo {
            meta: Arc::new(TaskMeta {
                id,
                name,
                timing: self.timing,
                shielded: self.shielded,
                always: self.always,
                fields: self.fields,
                request: request.map(|scope| scope.info().clone()),
                group,
                report_key: self.report_key,
                enqueued_by: self.enqueued_by,
                traceparent: self.traceparent,
                attempts_before: self.attempts_before,
            }),
            attempt: 1,
        };
        rt.emit(Event::Scheduled(&info));
        let task = Prepared {
            rt: rt.clone(),
            handle,
            ticket: request
                .and_then(|scope| scope.watch())
                .map(|w| w.task(&info)),
            info,
            work,
            on_error: self.on_error,
            timeout: self.timeout,
        };
        match request {
            Some(scope) => scope.admit(task),
            None => task.start(),
        }
        Ok(id)
    }
}

/// A task with a [`RetryPolicy`], made by [`TaskBuilder::retry`].
///
/// ```
/// use std::time::Duration;
/// use errands::{RetryPolicy, Tasks};
///
/// async fn deliver(to: String) -> Result<(), std::io::Error> { Ok(()) }
///
/// async fn handler(tasks: Tasks) -> Result<(), errands::ScheduleError> {
///     let to = "ada@example.com".to_owned();
///     tasks
///         .after_response()
///         .name("welcome_email")
///         .retry(RetryPolicy::exponential(Duration::from_millis(500)).max_attempts(4))
///         .on_retry(|info, error| tracing::info!(attempt = info.attempt(), %error, "retrying"))
///         .schedule(move || deliver(to.clone()))?;
///     Ok(())
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::post(handler));
/// ```
#[must_use = "a task is only scheduled by calling `.schedule(..)`"]
pub struct RetryBuilder<'a> {
    task: TaskBuilder<'a>,
    policy: RetryPolicy,
    on_retry: Option<RetryHook>,
}

impl std::fmt::Debug for RetryBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("task", &self.task)
            .field("policy", &self.policy)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl RetryBuilder<'_> {
    /// Called with each failed attempt that will be retried (not with the final one, which
    /// goes to `on_error`). It must not block; a panic in it is contained and reported.
    pub fn on_retry(
        mut self,
        hook: impl Fn(&TaskInfo, &TaskError) + Send + Sync + 'static,
    ) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Schedules the task; `factory` makes each attempt's future.
    ///
    /// # Errors
    ///
    /// As for [`TaskBuilder::schedule`].
    #[track_caller]
    pub fn schedule<F, Fut>(self, factory: F) -> Result<TaskId, ScheduleError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        let work = Retrying {
            factory,
            policy: self.policy,
            on_retry: self.on_retry,
        };
        let name = TaskName::derived(std::any::type_name::<Fut>(), Location::caller());
        self.task.submit(work, name)
    }
}
