//! `on_error` handlers.

use std::fmt;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{TaskError, TaskInfo, TaskResult};

type HandlerFn =
    dyn Fn(TaskInfo, TaskError) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync;

/// A handler that runs when a task ends `failed`, `panicked` or `timed_out`, with the task's
/// [`TaskInfo`] and the original [`TaskError`].
///
/// Set one per task with [`TaskBuilder::on_error`](crate::TaskBuilder::on_error), or a default
/// for every task with [`ErrandsBuilder::on_task_error`](crate::ErrandsBuilder::on_task_error);
/// a task's own handler replaces the default. The handler runs inside the task, so shutdown
/// waits for the handlers of shielded tasks. If the handler itself fails or panics, that is
/// reported once and nothing else is affected.
///
/// A handler may return `()` or a `Result`:
///
/// ```
/// use errands::{ErrorHandler, TaskError, TaskInfo};
///
/// let alert = ErrorHandler::new(|info: TaskInfo, error: TaskError| async move {
///     tracing::warn!(task = %info.name(), %error, "alerting on-call");
///     Ok::<_, std::io::Error>(())
/// });
/// # let _ = alert;
/// ```
#[derive(Clone)]
pub struct ErrorHandler(Arc<HandlerFn>);

impl ErrorHandler {
    /// Wraps an async function of the task's info and error.
    pub fn new(handler: impl OnError) -> Self {
        handler.into_handler()
    }

    /// Wraps a handler that runs at most once, so that it may move what it captured into its
    /// future without cloning it first (a task's own handler runs once, after its last
    /// attempt).
    pub(crate) fn once<F, Fut>(handler: F) -> Self
    where
        F: FnOnce(TaskInfo, TaskError) -> Fut + Send + 'static,
        Fut: Future<Output: TaskResult> + Send + 'static,
    {
        let slot = std::sync::Mutex::new(Some(handler));
        ErrorHandler(Arc::new(move |info, error| {
            let handler = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match handler {
                Some(handler) => handler(info, error)
                    .map(TaskResult::into_task_result)
                    .boxed(),
                None => futures_util::future::ready(Ok(())).boxed(),
            }
        }))
    }

    pub(crate) fn call(
        &self,
        info: TaskInfo,
        error: TaskError,
    ) -> BoxFuture<'static, Result<(), TaskError>> {
        (self.0)(info, error)
    }
}

impl fmt::Debug for ErrorHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorHandler")
    }
}

mod sealed {
    pub trait Sealed {}
}

impl<F: Fn(TaskInfo, TaskError) -> Fut, Fut> sealed::Sealed for F {}

/// What an `on_error` handler is: an async function of the task's [`TaskInfo`] and its
/// [`TaskError`], whose output is `()` or a `Result` (see [`TaskResult`]). Any such closure
/// or function implements it; it names the bound the shared `on_error` methods take.
///
/// ```
/// use errands::{OnError, TaskError, TaskInfo};
///
/// fn alert(handler: impl OnError) -> errands::ErrorHandler {
///     errands::ErrorHandler::new(handler)
/// }
/// let handler = alert(|info: TaskInfo, error: TaskError| async move {
///     tracing::warn!(task = %info.name(), %error, "alerting on-call");
/// });
/// # let _ = handler;
/// ```
pub trait OnError:
    Fn(TaskInfo, TaskError) -> Self::Future + Send + Sync + 'static + sealed::Sealed
{
    /// The future the handler returns.
    type Future: Future<Output: TaskResult> + Send + 'static;

    /// Wraps the function as an [`ErrorHandler`].
    fn into_handler(self) -> ErrorHandler;
}

impl<F, Fut> OnError for F
where
    F: Fn(TaskInfo, TaskError) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskResult,
{
    type Future = Fut;

    fn into_handler(self) -> ErrorHandler {
        ErrorHandler(Arc::new(move |info, error| {
            self(info, error).map(TaskResult::into_task_result).boxed()
        }))
    }
}
