//! The [`Tasks`] extractor: the handle through which handlers schedule work, and the
//! builders that configure each task.

mod builder;

use std::sync::Arc;

use crate::request::RequestId;
use crate::runtime::Runtime;
use crate::scope::RequestScope;
use crate::task::{ScheduleError, TaskId, TaskResult, Timing};

pub use builder::{RetryBuilder, TaskBuilder};

/// Schedules background tasks for the current request.
///
/// Extract it in a handler or in middleware that runs inside the errands layer. Three timing
/// modes are available:
///
/// | method | the task is spawned | skipped when |
/// |---|---|---|
/// | [`schedule`](Tasks::schedule) / [`immediate`](Tasks::immediate) | at the call | never |
/// | [`after_route`](Tasks::after_route) | when the handler returned its response | status ≥ 400, handler panicked, client gone before the handler completed |
/// | [`after_response`](Tasks::after_response) | when the response body was handed to the server | the same |
///
/// A task marked [`always`](TaskBuilder::always) is never skipped. Skipped tasks are reported
/// with their name and the reason. A `Tasks` is cheap to clone and may outlive its request (for
/// example inside a WebSocket): once the request is over, every task starts at once.
///
/// ```
/// use axum::{Router, routing::post};
/// use errands::{Errands, ScheduleError, Tasks};
///
/// async fn record_signup() {}
/// async fn send_welcome_email(to: String) -> Result<(), std::io::Error> { Ok(()) }
///
/// async fn signup(tasks: Tasks) -> Result<&'static str, ScheduleError> {
///     tasks.schedule(record_signup())?;
///     tasks.after_response().schedule(send_welcome_email("ada@example.com".into()))?;
///     Ok("welcome")
/// }
///
/// let errands = Errands::new();
/// let app: Router = Router::new().route("/signup", post(signup)).layer(errands.layer());
/// ```
#[derive(Clone)]
pub struct Tasks(Owner);

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("request_id", &self.request_id())
            .finish_non_exhaustive()
    }
}

/// Whose tasks these are: the runtime's, or a request's (which knows its runtime).
#[derive(Clone)]
enum Owner {
    Runtime(Arc<Runtime>),
    Request(Arc<RequestScope>),
}

impl Tasks {
    pub(crate) fn for_runtime(rt: &Arc<Runtime>) -> Self {
        Tasks(Owner::Runtime(rt.clone()))
    }

    pub(crate) fn for_request(scope: &Arc<RequestScope>) -> Self {
        Tasks(Owner::Request(scope.clone()))
    }

    pub(crate) fn rt(&self) -> &Arc<Runtime> {
        match &self.0 {
            Owner::Runtime(rt) => rt,
            Owner::Request(scope) => scope.rt(),
        }
    }

    /// The request these tasks belong to; `None` for the runtime's own handle.
    pub(crate) fn scope(&self) -> Option<&Arc<RequestScope>> {
        match &self.0 {
            Owner::Runtime(_) => None,
            Owner::Request(scope) => Some(scope),
        }
    }

    /// Schedules an immediate task with the default configuration.
    ///
    /// # Errors
    ///
    /// See [`TaskBuilder::schedule`].
    #[track_caller]
    pub fn schedule<F>(&self, future: F) -> Result<TaskId, ScheduleError>
    where
        F: Future + Send + 'static,
        F::Output: TaskResult,
    {
        self.immediate().schedule(future)
    }

    /// Configures a task spawned at the call.
    pub fn immediate(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self, Timing::Immediate)
    }

    /// Configures a task spawned when the handler has returned its response.
    pub fn after_route(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self, Timing::AfterRoute)
    }

    /// Configures a task spawned when the response body has been handed to the server.
    pub fn after_response(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self, Timing::AfterResponse)
    }

    /// The id of the request this handle belongs to; `None` for [`Errands::tasks`](crate::Errands::tasks).
    pub fn request_id(&self) -> Option<&RequestId> {
        self.scope().map(|scope| &scope.info().id)
    }
}
