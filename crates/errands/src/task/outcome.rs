//! How tasks end: [`Outcome`], [`TaskError`], [`SkipReason`] and [`TaskResult`].

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// A boxed error, the form in which task errors are returned.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A shared error, the form in which a failed task's error travels to its `on_error` handler
/// and to reporters.
pub type SharedError = std::sync::Arc<dyn StdError + Send + Sync + 'static>;

/// The terminal state of a scheduled task. Every scheduled task ends in exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The task returned `()` or `Ok`.
    Succeeded,
    /// The task returned `Err`.
    Failed,
    /// The task panicked.
    Panicked,
    /// The task ran past its [timeout](crate::TaskBuilder::timeout).
    TimedOut,
    /// Shutdown cancelled the (unshielded) task.
    Cancelled,
    /// The (shielded) task was still running at the shutdown deadline, or a second signal came.
    Aborted,
    /// The task never started; see [`SkipReason`].
    Skipped,
}

impl Outcome {
    /// The stable name used in reports and logs, such as `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Panicked => "panicked",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::Aborted => "aborted",
            Outcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an `after_route` or `after_response` task was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The response had a status of 400 or above.
    ErrorStatus(StatusCode),
    /// The handler panicked.
    HandlerPanicked,
    /// The client went away before the handler completed, so the handler was dropped.
    ClientDisconnected,
    /// The runtime had stopped accepting tasks when the batch was due.
    ShuttingDown,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ErrorStatus(s) => write!(f, "the response status was {}", s.as_u16()),
            SkipReason::HandlerPanicked => f.write_str("the handler panicked"),
            SkipReason::ClientDisconnected => {
                f.write_str("the client disconnected before the handler completed")
            }
            SkipReason::ShuttingDown => f.write_str("the runtime was shutting down"),
        }
    }
}

/// The error a task ended with, given to `on_error` handlers.
///
/// A [`Failed`](TaskError::Failed) error displays as the error the task returned, and its
/// `source()` is that error's source (it is transparent).
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// The task returned `Err`.
    Failed {
        /// The error the task returned (see [`TaskError::error`] for the error an
        /// `anyhow::Error` holds).
        error: SharedError,
        /// The Rust type name of the error the task returned.
        type_name: &'static str,
    },
    /// The task panicked.
    Panicked {
        /// The panic message, when the payload was a string.
        message: String,
    },
    /// The task ran past its timeout.
    TimedOut(Duration),
    /// Shutdown cancelled the task.
    Cancelled,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed { error, .. } => fmt::Display::fmt(error, f),
            TaskError::Panicked { message } => write!(f, "task panicked: {message}"),
            TaskError::TimedOut(limit) => write!(f, "task timed out after {limit:?}"),
            TaskError::Cancelled => f.write_str("task cancelled by shutdown"),
        }
    }
}

impl StdError for TaskError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            TaskError::Failed { error, .. } => error.source(),
            _ => None,
        }
    }
}

impl TaskError {
    /// The outcome this error stands for.
    pub fn outcome(&self) -> Outcome {
        match self {
            TaskError::Failed { .. } => Outcome::Failed,
            TaskError::Panicked { .. } => Outcome::Panicked,
            TaskError::TimedOut(_) => Outcome::TimedOut,
            TaskError::Cancelled => Outcome::Cancelled,
        }
    }

    /// The error the task returned, for [`Failed`](TaskError::Failed).
    pub fn error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            TaskError::Failed { error, .. } => Some(crate::chain::open(&**error)),
            _ => None,
        }
    }

    /// The first error of type `E` along the returned error's `source()` chain.
    ///
    /// ```
    /// use errands::TaskError;
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("smtp down")]
    /// struct SmtpDown;
    ///
    /// let err = TaskError::from_error(SmtpDown);
    /// assert!(err.find::<SmtpDown>().is_some());
    /// ```
    pub fn find<E: StdError + 'static>(&self) -> Option<&E> {
        crate::chain::find(self.error()?)
    }

    /// Wraps an error the way a task returning `Err(error)` does.
    pub fn from_error<E: Into<BoxError> + 'static>(error: E) -> Self {
        TaskError::Failed {
            error: crate::chain::boxed(error).into(),
            type_name: std::any::type_name::<E>(),
        }
    }

    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        TaskError::Panicked {
            message: panic_message(payload),
        }
    }
}

/// What a task (or an `on_error` handler) may return: `()`, an [`errands::Result`](crate::Result),
/// or any `Result<T, E>` whose error converts into a [`BoxError`] (including `anyhow::Error`,
/// which type matching sees through with the `anyhow` feature).
pub trait TaskResult: Send + 'static {
    /// Converts the output into success or a [`TaskError::Failed`].
    fn into_task_result(self) -> Result<(), TaskError>;
}

impl TaskResult for () {
    fn into_task_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<T: Send + 'static, E: Into<BoxError> + Send + 'static> TaskResult for Result<T, E> {
    fn into_task_result(self) -> Result<(), TaskError> {
        self.map(drop).map_err(TaskError::from_error)
    }
}

/// The text of a panic payload (`panic!` with a message gives a `String` or a `&str`).
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(non-string panic payload)".to_owned(),
        },
    };
    crate::chain::bounded(message, crate::chain::MAX_MESSAGE)
}
