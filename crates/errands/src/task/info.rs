//! What a task knows about itself: [`TaskInfo`], [`TaskId`] and [`Timing`].

use std::fmt;
use std::sync::Arc;

use http::{Method, StatusCode};
use tokio::task::futures::TaskLocalFuture;

use super::name::TaskName;
use crate::request::{Delivery, RequestId, RequestInfo};

/// A task's id, unique within one [`Errands`](crate::Errands) runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When a task is spawned, relative to the request that scheduled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timing {
    /// Spawned at the call.
    Immediate,
    /// Spawned when the handler has returned its response, before the response goes to the server.
    AfterRoute,
    /// Spawned when the response is over: its body was handed to the server completely, or
    /// dropped early because the client went away (see [`TaskInfo::delivery`]).
    AfterResponse,
}

impl Timing {
    /// The stable name used in reports and logs: `immediate`, `after_route`, `after_response`.
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Immediate => "immediate",
            Timing::AfterRoute => "after_route",
            Timing::AfterResponse => "after_response",
        }
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A context field of a task: an explicit key and value set with
/// [`TaskBuilder::field`](crate::TaskBuilder::field).
pub type Field = (&'static str, serde_json::Value);

/// Everything known about a task: given to `on_error` handlers, carried by every report, and
/// available inside the task through [`TaskInfo::current`].
///
/// Only the values set explicitly as [`fields`](TaskInfo::fields) describe the task's data;
/// the task's own arguments are never recorded.
///
/// Cloning is cheap (one reference count).
#[derive(Clone)]
pub struct TaskInfo {
    pub(crate) meta: Arc<TaskMeta>,
    pub(crate) attempt: u32,
}

pub(crate) struct TaskMeta {
    pub(crate) id: TaskId,
    pub(crate) name: TaskName,
    pub(crate) timing: Timing,
    pub(crate) shielded: bool,
    pub(crate) always: bool,
    pub(crate) fields: Vec<Field>,
    pub(crate) request: Option<Arc<RequestInfo>>,
    /// The task's group.
    pub(crate) group: GroupId,
    /// Attempts made before this task (by earlier processes, for a durable job's attempt).
    pub(crate) attempts_before: u32,
    /// The request that enqueued it, for a durable job's attempt, which runs without one.
    pub(crate) enqueued_by: Option<RequestId>,
    /// The stable key of its reports ([`ErrorReport::key`](crate::ErrorReport::key)).
    pub(crate) report_key: Option<String>,
    /// The W3C `traceparent` of the request that enqueued it, for a durable job's attempt.
    pub(crate) traceparent: Option<Box<str>>,
}

/// Which group a task belongs to: an index into the runtime's groups, the default one first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupId(pub(crate) usize);

tokio::task_local! {
    static CURRENT: TaskInfo;
}

impl TaskInfo {
    /// The info of the task the caller runs in, if it runs inside an errands task.
    ///
    /// ```
    /// # async fn f() {
    /// if let Some(info) = errands::TaskInfo::current() {
    ///     tracing::info!(task = %info.name(), "working");
    /// }
    /// # }
    /// ```
    pub fn current() -> Option<TaskInfo> {
        CURRENT.try_with(Clone::clone).ok()
    }

    pub(crate) fn with_attempt(&self, attempt: u32) -> TaskInfo {
        TaskInfo {
            meta: self.meta.clone(),
            attempt,
        }
    }

    pub(crate) fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<TaskInfo, F> {
        CURRENT.scope(self, fut)
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.meta.id
    }

    /// The task's name: set with [`TaskBuilder::name`](crate::TaskBuilder::name), or derived
    /// from the scheduled function.
    pub fn name(&self) -> &str {
        self.meta.name.as_str()
    }

    /// When the task was spawned relative to its request.
    pub fn timing(&self) -> Timing {
        self.meta.timing
    }

    /// Whether the task is carried through shutdown.
    pub fn is_shielded(&self) -> bool {
        self.meta.shielded
    }

    /// Whether the task runs however its request ended.
    pub fn is_always(&self) -> bool {
        self.meta.always
    }

    /// The attempt number, starting at 1; with a [`RetryPolicy`](crate::RetryPolicy), the
    /// attempt the task is in (or, in reports, ended in). For a durable job's attempt, the
    /// job's attempt, counted across processes.
    pub fn attempt(&self) -> u32 {
        self.attempt + self.meta.attempts_before
    }

    /// The explicit context fields, in the order they were set.
    pub fn fields(&self) -> &[Field] {
        &self.meta.fields
    }

    /// The context fields as one JSON object, as reports and logs show them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let errands = errands::Errands::new();
    /// errands.tasks().immediate().field("order_id", 7).schedule(async {
    ///     let info = errands::TaskInfo::current().unwrap();
    ///     assert_eq!(info.fields_json(), serde_json::json!({"order_id": 7}));
    /// }).unwrap();
    /// # errands.idle().await;
    /// # assert_eq!(errands.stats().succeeded, 1);
    /// # }
    /// ```
    pub fn fields_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .meta
            .fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        serde_json::Value::Object(map)
    }

    /// The value of one context field.
    pub fn field(&self, key: &str) -> Option<&serde_json::Value> {
        self.meta
            .fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The id of the request that scheduled the task; `None` for tasks scheduled outside a request.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self.meta.request.as_deref() {
            Some(request) => Some(&request.id),
            None => self.meta.enqueued_by.as_ref(),
        }
    }

    /// The W3C `traceparent` of the request that scheduled the task (or enqueued its durable
    /// job), when that request carried a valid one: the trace the task's work belongs to.
    pub fn traceparent(&self) -> Option<&str> {
        match self.meta.request.as_deref() {
            Some(request) => request.traceparent(),
            None => self.meta.traceparent.as_deref(),
        }
    }

    /// The HTTP method of the request that scheduled the task.
    pub fn method(&self) -> Option<&Method> {
        self.meta.request.as_deref().map(|r| &r.method)
    }

    /// The matched route (for example `/orders/{id}`) of the request that scheduled the task.
    pub fn route(&self) -> Option<&str> {
        self.meta.request.as_deref().and_then(RequestInfo::route)
    }

    /// The status of the response of the request, once the handler has returned it.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.meta.request.as_deref().and_then(RequestInfo::status)
    }

    /// Whether the response body reached the server completely, once the response is over.
    pub fn delivery(&self) -> Option<Delivery> {
        self.meta.request.as_deref().and_then(RequestInfo::delivery)
    }
}

impl fmt::Debug for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskInfo")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("timing", &self.timing())
            .field("shielded", &self.is_shielded())
            .field("always", &self.is_always())
            .field("attempt", &self.attempt)
            .field("fields", &self.fields())
            .field("request_id", &self.request_id())
            .field("route", &self.route())
            .finish()
    }
}
