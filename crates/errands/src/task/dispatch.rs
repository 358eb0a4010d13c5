//! [`ErrorHandlers`]: routing task errors to handlers by error type.

use std::error::Error as StdError;

use super::{ErrorHandler, OnError, TaskError, TaskInfo};

type Matcher = Box<dyn Fn(&TaskError) -> bool + Send + Sync>;

/// Routes a task's error to a handler chosen by the error's type, with a fallback: the
/// type-dispatching error handler registry, as a first-class [`ErrorHandler`].
///
/// Routes are tried in the order they were added; the first that matches handles the error.
/// [`on::<E>`](ErrorHandlers::on) matches a failure with an `E` anywhere along its `source()`
/// chain. Without a matching route the [`fallback`](ErrorHandlers::fallback) runs, if any.
/// Use the result per task ([`TaskBuilder::error_handler`](crate::TaskBuilder::error_handler))
/// or as the runtime's default
/// ([`ErrandsBuilder::task_error_handler`](crate::ErrandsBuilder::task_error_handler)).
///
/// ```
/// use errands::{ErrorHandler, ErrorHandlers, TaskError, TaskInfo};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("connection refused")]
/// struct ConnectionRefused;
///
/// let handlers: ErrorHandler = ErrorHandlers::new()
///     .on::<ConnectionRefused>(|info: TaskInfo, _: TaskError| async move {
///         tracing::warn!(task = info.name(), "upstream down; paging nobody");
///     })
///     .on_panic(|info: TaskInfo, error: TaskError| async move {
///         tracing::error!(task = info.name(), %error, "bug: paging the owner");
///     })
///     .fallback(|info: TaskInfo, error: TaskError| async move {
///         tracing::error!(task = info.name(), %error, "task failed");
///     })
///     .into();
/// # let _ = handlers;
/// ```
#[must_use]
#[derive(Default)]
pub struct ErrorHandlers {
    routes: Vec<(Matcher, ErrorHandler)>,
    fallback: Option<ErrorHandler>,
}

impl std::fmt::Debug for ErrorHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorHandlers")
            .field("routes", &self.routes.len())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl ErrorHandlers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles failures whose error chain contains an `E`.
    pub fn on<E>(self, handler: impl OnError) -> Self
    where
        E: StdError + 'static,
    {
        self.route(|error| error.find::<E>().is_some(), handler)
    }

    /// Handles panics.
    pub fn on_panic(self, handler: impl OnError) -> Self {
        self.route(|error| matches!(error, TaskError::Panicked { .. }), handler)
    }

    /// Handles timeouts.
    pub fn on_timeout(self, handler: impl OnError) -> Self {
        self.route(|error| matches!(error, TaskError::TimedOut(_)), handler)
    }

    /// Handles whatever no route matched.
    pub fn fallback(mut self, handler: impl OnError) -> Self {
        self.fallback = Some(ErrorHandler::new(handler));
        self
    }

    fn route(mut self, matches: fn(&TaskError) -> bool, handler: impl OnError) -> Self {
        self.routes
            .push((Box::new(matches), ErrorHandler::new(handler)));
        self
    }
}

impl From<ErrorHandlers> for ErrorHandler {
    fn from(registry: ErrorHandlers) -> Self {
        ErrorHandler::new(move |info: TaskInfo, error: TaskError| {
            let chosen = registry
                .routes
                .iter()
                .find(|(matches, _)| matches(&error))
                .map(|(_, handler)| handler)
                .or(registry.fallback.as_ref())
                .cloned();
            async move {
                match chosen {
                    Some(handler) => handler.call(info, error).await,
                    None => Ok(()),
                }
            }
        })
    }
}
