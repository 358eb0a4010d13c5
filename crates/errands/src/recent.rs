//! Recent history, for the dashboard (feature `dashboard`): the tasks not finished yet, the
//! last tasks that finished with their attempts, the last reports, and the last requests —
//! each buffer bounded, the oldest entries dropped first. Fed by the lifecycle seam.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};

use crate::report::{ErrorLink, ErrorReport};
use crate::request::{RequestId, RequestInfo};
use crate::task::{Outcome, TaskError, TaskId, TaskInfo};

/// Unfinished tasks followed at once; beyond, tasks are counted but not followed.
pub(crate) const MAX_LIVE: usize = 10_000;
/// Finished tasks kept.
pub(crate) const MAX_FINISHED: usize = 1_000;
/// Reports kept.
pub(crate) const MAX_ERRORS: usize = 500;
/// Finished requests kept.
pub(crate) const MAX_REQUESTS: usize = 1_000;
/// Attempts kept per task (the last ones).
pub(crate) const MAX_ATTEMPTS: usize = 20;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Waiting for its request's `after_route` or `after_response` moment.
    Pending,
    /// Due, waiting for a slot.
    Queued,
    /// Holding a slot (or about to).
    Running,
    /// Terminal.
    Finished(Outcome),
}

impl TaskState {
    /// `pending`, `queued`, `running`, or the outcome's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Finished(outcome) => outcome.as_str(),
        }
    }
}

/// One attempt of a task that ended with an error.
#[derive(Clone, Debug)]
pub(crate) struct AttemptRecord {
    /// The attempt's number, from 1.
    pub(crate) attempt: u32,
    /// When it ended.
    pub(crate) ended_at: SystemTime,
    /// Its error chain, outermost first.
    pub(crate) chain: Vec<ErrorLink>,
    /// When another attempt followed, after how long.
    pub(crate) retry_in: Option<Duration>,
}

/// A task as the dashboard shows it. Its arguments are never kept (a task has none the
/// runtime can see); its fields are.
#[derive(Clone, Debug)]
pub(crate) struct TaskRecord {
    /// Name, timing, fields, and the request that scheduled it.
    pub(crate) info: TaskInfo,
    /// Where it is.
    pub(crate) state: TaskState,
    /// When it was scheduled, got its slot, and finished.
    pub(crate) scheduled_at: SystemTime,
    /// When it got its slot.
    pub(crate) started_at: Option<SystemTime>,
    /// When it became terminal.
    pub(crate) finished_at: Option<SystemTime>,
    /// The attempts that ended with an error, oldest first (the last [`MAX_ATTEMPTS`]).
    pub(crate) attempts: Vec<AttemptRecord>,
}

/// A request whose response is over.
#[derive(Clone, Debug)]
pub(crate) struct RequestRecord {
    /// Its id.
    pub(crate) id: RequestId,
    /// Its method.
    pub(crate) method: Method,
    /// Its matched route.
    pub(crate) route: Option<String>,
    /// The status sent.
    pub(crate) status: Option<StatusCode>,
    /// When its response was over.
    pub(crate) finished_at: SystemTime,
}

/// A report, and when it was made.
#[derive(Clone, Debug)]
pub(crate) struct ErrorRecord {
    /// When.
    pub(crate) at: SystemTime,
    /// The report.
    pub(crate) report: ErrorReport,
}

#[derive(Default)]
struct Tasks {
    live: HashMap<TaskId, TaskRecord>,
    finished: VecDeque<TaskRecord>,
}

/// The buffers.
#[derive(Default)]
pub(crate) struct Recent {
    tasks: Mutex<Tasks>,
    errors: Mutex<VecDeque<ErrorRecord>>,
    requests: Mutex<VecDeque<RequestRecord>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn push_bounded<T>(buffer: &mut VecDeque<T>, value: T, limit: usize) {
    if buffer.len() == limit {
        buffer.pop_front();
    }
    buffer.push_back(value);
}

impl Recent {
    pub(crate) fn scheduled(&self, task: &TaskInfo) {
        let mut tasks = lock(&self.tasks);
        if tasks.live.len() < MAX_LIVE {
            let record = TaskRecord {
                info: task.clone(),
                state: TaskState::Running,
                scheduled_at: SystemTime::now(),
                started_at: None,
                finished_at: None,
                attempts: Vec::new(),
            };
            tasks.live.insert(task.id(), record);
        }
    }

    fn update(&self, task: &TaskInfo, change: impl FnOnce(&mut TaskRecord)) {
        if let Some(record) = lock(&self.tasks).live.get_mut(&task.id()) {
            change(record);
        }
    }

    pub(crate) fn state(&self, task: &TaskInfo, state: TaskState) {
        self.update(task, |record| record.state = state);
    }

    pub(crate) fn started(&self, task: &TaskInfo) {
        self.update(task, |record| {
            record.state = TaskState::Running;
            record.started_at = Some(SystemTime::now());
        });
    }

    pub(crate) fn attempt_ended(
        &self,
        task: &TaskInfo,
        attempt: u32,
        error: &TaskError,
        retry_in: Option<Duration>,
    ) {
        let chain = crate::report::chain_of(error);
        self.update(task, |record| {
            if record.attempts.len() == MAX_ATTEMPTS {
                record.attempts.remove(0);
            }
            record.attempts.push(AttemptRecord {
                attempt,
                ended_at: SystemTime::now(),
                chain,
                retry_in,
            });
        });
    }

    pub(crate) fn finished(&self, task: &TaskInfo, outcome: Outcome) {
        let mut tasks = lock(&self.tasks);
        if let Some(mut record) = tasks.live.remove(&task.id()) {
            record.state = TaskState::Finished(outcome);
            record.finished_at = Some(SystemTime::now());
            push_bounded(&mut tasks.finished, record, MAX_FINISHED);
        }
    }

    pub(crate) fn request_finished(&self, request: &RequestInfo) {
        let record = RequestRecord {
            id: request.id.clone(),
            method: request.method.clone(),
            route: request.route().map(str::to_owned),
            status: request.status(),
            finished_at: SystemTime::now(),
        };
        push_bounded(&mut lock(&self.requests), record, MAX_REQUESTS);
    }

    pub(crate) fn reported(&self, report: &ErrorReport) {
        let record = ErrorRecord {
            at: SystemTime::now(),
            report: report.clone(),
        };
        push_bounded(&mut lock(&self.errors), record, MAX_ERRORS);
    }

    /// The tasks followed: unfinished first (newest first), then finished (newest first).
    pub(crate) fn tasks(&self) -> Vec<TaskRecord> {
        let tasks = lock(&self.tasks);
        let mut live: Vec<TaskRecord> = tasks.live.values().cloned().collect();
        live.sort_by_key(|record| std::cmp::Reverse(record.info.id()));
        live.extend(tasks.finished.iter().rev().cloned());
        live
    }

    /// The task `id`, if it is followed.
    pub(crate) fn task(&self, id: TaskId) -> Option<TaskRecord> {
        let tasks = lock(&self.tasks);
        tasks
            .live
            .get(&id)
            .or_else(|| tasks.finished.iter().find(|record| record.info.id() == id))
            .cloned()
    }

    /// How many reports are kept.
    pub(crate) fn errors_len(&self) -> usize {
        lock(&self.errors).len()
    }

    /// The reports kept, newest first.
    pub(crate) fn errors(&self) -> Vec<ErrorRecord> {
        lock(&self.errors).iter().rev().cloned().collect()
    }

    /// The finished request `id`, if it is kept.
    pub(crate) fn request(&self, id: &str) -> Option<RequestRecord> {
        lock(&self.requests)
            .iter()
            .rev()
            .find(|record| record.id.as_str() == id)
            .cloned()
    }
}
