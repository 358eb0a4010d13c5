//! What a task runs: one future, a retrying factory, or a blocking closure.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{RetryPolicy, TaskError, TaskInfo, TaskResult};
use crate::report::{ErrorReport, Origin};
use crate::runtime::Inner;

/// The body of a task, run once it holds a slot.
pub(crate) trait Work: Send + 'static {
    /// The slots this kind of work runs under.
    fn slots(rt: &Inner) -> &Arc<Semaphore>
    where
        Self: Sized;

    /// Runs to the final result, keeping `attempt` current. Work that outlives its task
    /// (blocking work) takes the `permit` along, so the slot is held until it is really over.
    fn run(
        self,
        rt: &Inner,
        info: &TaskInfo,
        timeout: Option<Duration>,
        attempt: &AtomicU32,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> impl Future<Output = Result<(), TaskError>> + Send;
}

/// One future, run once.
pub(crate) struct Once<F>(pub(crate) F);

impl<F> Work for Once<F>
where
    F: Future + Send + 'static,
    F::Output: TaskResult,
{
    fn slots(rt: &Inner) -> &Arc<Semaphore> {
        &rt.slots
    }

    async fn run(
        self,
        _: &Inner,
        info: &TaskInfo,
        timeout: Option<Duration>,
        _: &AtomicU32,
        _: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), TaskError> {
        info.clone().scope(guarded(|| self.0, timeout)).await
    }
}

/// A function called again to make each attempt's future; see [`RetryPolicy`].
pub(crate) struct Retrying<F> {
    pub(crate) factory: F,
    pub(crate) policy: RetryPolicy,
    pub(crate) on_retry: Option<RetryHook>,
}

/// Sees each failed attempt that will be retried.
pub(crate) type RetryHook = Arc<dyn Fn(&TaskInfo, &TaskError) + Send + Sync>;

impl<F, Fut> Work for Retrying<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskResult,
{
    fn slots(rt: &Inner) -> &Arc<Semaphore> {
        &rt.slots
    }

    async fn run(
        self,
        rt: &Inner,
        info: &TaskInfo,
        timeout: Option<Duration>,
        attempt: &AtomicU32,
        _: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), TaskError> {
        loop {
            let current = attempt.load(Ordering::Relaxed);
            let info = info.with_attempt(current);
            let result = info.clone().scope(guarded(&self.factory, timeout)).await;
            match result {
                Err(error) if self.policy.retries(current, &error) => {
                    if let Some(hook) = &self.on_retry {
                        let called =
                            std::panic::catch_unwind(AssertUnwindSafe(|| hook(&info, &error)));
                        if let Err(panic) = called {
                            rt.report(
                                ErrorReport::task(&info, super::Outcome::Panicked)
                                    .origin(Origin::ErrorHandler)
                                    .message("on_retry hook panicked")
                                    .panic(panic),
                            );
                        }
                    }
                    tokio::time::sleep(self.policy.delay(current)).await;
                    attempt.store(current + 1, Ordering::Relaxed);
                }
                result => return result,
            }
        }
    }
}

/// A closure run on tokio's blocking pool. It cannot be interrupted: a timeout, cancellation
/// or abort stops the waiting, not the thread, which keeps its blocking slot until it returns.
pub(crate) struct Blocking<F>(pub(crate) F);

impl<F, R> Work for Blocking<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: TaskResult,
{
    fn slots(rt: &Inner) -> &Arc<Semaphore> {
        &rt.blocking_slots
    }

    async fn run(
        self,
        rt: &Inner,
        _: &TaskInfo,
        timeout: Option<Duration>,
        _: &AtomicU32,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), TaskError> {
        let f = self.0;
        // The closure keeps its slot, and stays visible to shutdown, until it returns.
        let held = (permit.take(), rt.tasks.token());
        let handle = tokio::task::spawn_blocking(move || {
            let _held = held;
            f().into_task_result()
        });
        let joined = match timeout {
            Some(limit) => match tokio::time::timeout(limit, handle).await {
                Ok(joined) => joined,
                Err(_) => return Err(TaskError::TimedOut(limit)),
            },
            None => handle.await,
        };
        match joined {
            Ok(result) => result,
            Err(join) if join.is_panic() => Err(TaskError::from_panic(join.into_panic())),
            Err(_) => Err(TaskError::Panicked {
                message: "the blocking task was dropped by the tokio runtime".to_owned(),
            }),
        }
    }
}

/// Makes the future (inside the catch, so a panicking factory is caught too), applies the
/// timeout, and turns panics into [`TaskError::Panicked`].
async fn guarded<M, F>(make: M, timeout: Option<Duration>) -> Result<(), TaskError>
where
    M: FnOnce() -> F,
    F: Future,
    F::Output: TaskResult,
{
    let caught = AssertUnwindSafe(async move { make().await.into_task_result() }).catch_unwind();
    let result = match timeout {
        // Boxed: the timer stays out of the futures of tasks without a timeout.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, caught)).await {
            Ok(result) => result,
            Err(_) => return Err(TaskError::TimedOut(limit)),
        },
        None => caught.await,
    };
    result.unwrap_or_else(|panic| Err(TaskError::from_panic(panic)))
}
