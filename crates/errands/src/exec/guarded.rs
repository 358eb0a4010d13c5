//! [`Guarded`]: one attempt of a task's future, with its panics caught and its timeout applied.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::task::{TaskError, TaskResult};

pin_project! {
    /// Polls a task's future, turning its output into a result and its panics into
    /// [`TaskError::Panicked`]; past the timeout (counted from the first poll) it ends with
    /// [`TaskError::TimedOut`]. The future is polled before the timer, as with
    /// `tokio::time::timeout`.
    pub(crate) struct Guarded<F> {
        #[pin]
        future: F,
        limit: Option<Duration>,
        // Boxed, and made at the first poll: the timer stays out of tasks without a timeout.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(future: F, limit: Option<Duration>) -> Self {
        Guarded {
            future,
            limit,
            timer: None,
        }
    }
}

impl<F> Future for Guarded<F>
where
    F: Future,
    F::Output: TaskResult,
{
    type Output = Result<(), TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(limit) = *this.limit else {
            return poll_caught(this.future, cx);
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if let Poll::Ready(result) = poll_caught(this.future, cx) {
            return Poll::Ready(result);
        }
        timer
            .as_mut()
            .poll(cx)
            .map(|()| Err(TaskError::TimedOut(limit)))
    }
}

fn poll_caught<F>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Result<(), TaskError>>
where
    F: Future,
    F::Output: TaskResult,
{
    crate::logs::catch(|| future.poll(cx).map(TaskResult::into_task_result))
        .unwrap_or_else(|panic| Poll::Ready(Err(TaskError::from_panic(panic))))
}
