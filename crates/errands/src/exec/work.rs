//! What a task runs: one future, a retrying factory, or a blocking closure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::futures::TaskLocalFuture;

use super::guarded::Guarded;
use super::slot::HeldSlot;
use crate::lifecycle::Event;
use crate::live::Member;
use crate::report::{ErrorReport, Origin};
use crate::runtime::{Runtime, SlotKind};
use crate::task::{Outcome, RetryPolicy, TaskError, TaskInfo, TaskResult};
use crate::watch::Ticket;

/// What a task's work gets when it becomes its body.
pub(crate) struct BodyCx<'a> {
    pub(crate) rt: &'a Arc<Runtime>,
    pub(crate) info: &'a TaskInfo,
    pub(crate) timeout: Option<Duration>,
    /// The attempt the task is in; work that retries keeps it current.
    pub(crate) attempt: &'a mut Attempt,
    /// The task's slot; work that outlives its task (blocking work) takes it along, so the
    /// slot is held until the work is really over.
    pub(crate) slot: &'a mut Option<SlotKind>,
}

/// The body of a task, made into its future once the task holds a slot.
pub(crate) trait Work: Send + 'static {
    /// The future that runs the work to its final result.
    type Body: Future<Output = Result<(), TaskError>> + Send + 'static;

    /// The slots this kind of work runs under.
    const SLOTS: SlotKind;

    /// Makes the body.
    fn into_body(self, cx: BodyCx<'_>) -> Self::Body;

    /// The task was skipped (it never ran): by default its report goes out and it is counted
    /// now. Work that must first record the skip elsewhere overrides this and reports when it
    /// has, keeping `ticket` (its test's watch) until then; it must emit `finished` now.
    fn skipped(
        self,
        rt: &Arc<Runtime>,
        report: ErrorReport,
        finished: Event<'_>,
        ticket: Option<Ticket>,
    ) where
        Self: Sized,
    {
        rt.report(report);
        rt.emit(finished);
        drop(ticket);
        drop(self);
    }
}

/// The attempt a task is in: always 1, unless its work retries and shares a counter.
#[derive(Default)]
pub(crate) struct Attempt(Option<Arc<AtomicU32>>);

impl Attempt {
    pub(crate) fn get(&self) -> u32 {
        self.0
            .as_ref()
            .map_or(1, |attempt| attempt.load(Ordering::Relaxed))
    }

    /// The counter, shared with the work that advances it.
    fn shared(&mut self) -> Arc<AtomicU32> {
        self.0
            .get_or_insert_with(|| Arc::new(AtomicU32::new(1)))
            .clone()
    }
}

/// One future, run once.
pub(crate) struct Once<F>(pub(crate) F);

impl<F> Work for Once<F>
where
    F: Future + Send + 'static,
    F::Output: TaskResult,
{
    type Body = TaskLocalFuture<TaskInfo, Guarded<F>>;

    const SLOTS: SlotKind = SlotKind::Running;

    fn into_body(self, cx: BodyCx<'_>) -> Self::Body {
        cx.info.clone().scope(Guarded::new(self.0, cx.timeout))
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
    // Boxed: retrying tasks are rare, and their loop stays out of the task's own future.
    type Body = BoxFuture<'static, Result<(), TaskError>>;

    const SLOTS: SlotKind = SlotKind::Running;

    fn into_body(self, cx: BodyCx<'_>) -> Self::Body {
        let (rt, info, attempt) = (cx.rt.clone(), cx.info.clone(), cx.attempt.shared());
        let timeout = cx.timeout;
        Box::pin(async move {
            loop {
                let current = attempt.load(Ordering::Relaxed);
                let info = info.with_attempt(current);
                // The factory runs inside the catch, so a panicking factory is caught too.
                let made = crate::logs::catch(&self.factory);
                let result = match made {
                    Ok(future) => info.clone().scope(Guarded::new(future, timeout)).await,
                    Err(panic) => Err(TaskError::from_panic(panic)),
                };
                match result {
                    Err(error) if self.policy.retries(current, &error) => {
                        let delay = self.policy.delay(current);
                        rt.emit(Event::AttemptEnded {
                            task: &info,
                            attempt: current,
                            error: Some(&error),
                            retry_in: Some(delay),
                        });
                        if let Some(hook) = &self.on_retry {
                            let called = crate::logs::catch(|| hook(&info, &error));
                            if let Err(panic) = called {
                                rt.report(
                                    ErrorReport::task(&info, Outcome::Panicked)
                                        .origin(Origin::ErrorHandler)
                                        .message("on_retry hook panicked")
                                        .panic(panic),
                                );
                            }
                        }
                        tokio::time::sleep(delay).await;
                        attempt.store(current + 1, Ordering::Relaxed);
                    }
                    result => return result,
                }
            }
        })
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
    type Body = BoxFuture<'static, Result<(), TaskError>>;

    const SLOTS: SlotKind = SlotKind::Blocking;

    fn into_body(self, cx: BodyCx<'_>) -> Self::Body {
        let (f, rt, timeout) = (self.0, cx.rt, cx.timeout);
        // The closure keeps its slot, and stays visible to shutdown, until it returns.
        let slot = cx
            .slot
            .take()
            .map(|_| HeldSlot::new(rt, Runtime::blocking_slots));
        let held = (
            slot,
            Member::new(rt, Runtime::tasks),
            rt.blocking_started(cx.info),
        );
        Box::pin(async move {
            let handle = tokio::task::spawn_blocking(move || {
                let _held = held;
                crate::logs::catching(|| f().into_task_result())
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
        })
    }
}
