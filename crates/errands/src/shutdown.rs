//! The shutdown sequence. Its order is the contract:
//!
//! 1. **Drain.** Shutdown starts (a signal, or [`Errands::begin_shutdown`]): the server stops
//!    accepting connections and in-flight requests finish, for at most the drain timeout.
//! 2. **Cancel.** Once no request is in flight, no new `after_*` batch can appear. The runtime
//!    stops accepting tasks ([`ScheduleError::ShuttingDown`](crate::ScheduleError)) and
//!    cancels every unshielded task; each is reported `cancelled` with its name.
//! 3. **Wait, then abort.** Shielded tasks, with their `on_error` handlers, run on until the
//!    shutdown deadline. Whatever is still running then is aborted and reported `aborted`.
//! 4. **Teardown.** Only now do the application's teardown hooks run, in order.
//!
//! [`Errands::abort`] (a second signal) skips straight to the abort in whatever step shutdown
//! is. Tasks stop at their next `.await`; a task that never yields cannot be stopped by any
//! async runtime, so the abort waits at most [`ABORT_GRACE`] for tasks to acknowledge it and
//! reports any that did not.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::time::timeout;

use crate::report::{ErrorReport, Origin};
use crate::runtime::{Errands, Inner};
use crate::task::TaskError;

/// How long an abort waits for tasks to stop before shutdown goes on without them.
pub const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What a shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Every in-flight request finished within the drain timeout.
    pub drained: bool,
    /// Every task became terminal before the deadline, without an abort.
    pub completed: bool,
    /// Tasks reported `cancelled`, in all.
    pub cancelled: u64,
    /// Tasks reported `aborted`, in all.
    pub aborted: u64,
    /// Tasks that had not stopped when the abort grace ran out.
    pub unstopped: u64,
    /// Teardown hooks that failed or panicked.
    pub teardown_failures: usize,
}

impl Errands {
    /// Starts shutdown without waiting for it: the future of
    /// [`shutdown_started`](Errands::shutdown_started) resolves, so a server using it stops
    /// accepting connections. Call [`shutdown`](Errands::shutdown) to run the sequence.
    pub fn begin_shutdown(&self) {
        self.inner.started.cancel();
    }

    /// Resolves once shutdown has started: pass it to
    /// `axum::serve(..).with_graceful_shutdown(..)` when serving without [`Errands::serve`].
    pub fn shutdown_started(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.started.clone().cancelled_owned()
    }

    /// Skips to the abort: the runtime stops accepting tasks, and every task still running
    /// stops at its next `.await` and is reported `aborted` (unshielded ones `cancelled`).
    /// This is what a second signal does; [`shutdown`](Errands::shutdown) then finishes fast.
    pub fn abort(&self) {
        self.inner.close();
        self.inner.started.cancel();
        self.inner.abort.cancel();
    }

    /// Runs the shutdown sequence (see the [module docs](crate::shutdown)) and returns what it
    /// did. Calling it again, or concurrently, waits for the same single run.
    ///
    /// Await it from `main` (or whatever owns the server), not from a handler or a task: the
    /// sequence waits for those to finish. From inside them, call
    /// [`begin_shutdown`](Errands::begin_shutdown) instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let errands = errands::Errands::new();
    /// errands.tasks().immediate().shield().schedule(async { /* finish the payment */ }).unwrap();
    /// let summary = errands.shutdown().await;
    /// assert!(summary.completed);
    /// assert!(errands.tasks().schedule(async {}).is_err());
    /// # }
    /// ```
    pub async fn shutdown(&self) -> ShutdownSummary {
        self.shutdown_with(None).await
    }

    pub(crate) async fn shutdown_with(
        &self,
        server: Option<BoxFuture<'static, ()>>,
    ) -> ShutdownSummary {
        let inner = self.inner.clone();
        *self.inner.shutdown.get_or_init(|| run(inner, server)).await
    }
}

async fn run(rt: Arc<Inner>, server: Option<BoxFuture<'static, ()>>) -> ShutdownSummary {
    rt.started.cancel();
    tracing::info!(target: "errands", requests_in_flight = rt.requests.len(), "shutdown: draining requests");
    let drain = async {
        let server = async {
            if let Some(server) = server {
                server.await;
            }
        };
        tokio::join!(rt.requests.wait(), server);
    };
    let drained = tokio::select! {
        biased;
        _ = rt.abort.cancelled() => false,
        result = timeout(rt.config.drain_timeout, drain) => result.is_ok(),
    };
    if !drained {
        tracing::warn!(target: "errands", requests_in_flight = rt.requests.len(), "shutdown: requests still in flight after the drain");
    }

    // A task starting now is either seen by the waits below or sees the runtime closed (see
    // `Pending::start`).
    rt.close();
    tracing::info!(target: "errands", tasks_running = rt.tasks.len(), "shutdown: cancelling unshielded tasks, waiting for shielded tasks");
    rt.cancel.cancel();
    let completed = tokio::select! {
        biased;
        _ = rt.abort.cancelled() => false,
        result = timeout(rt.config.shutdown_deadline, rt.tasks.wait()) => result.is_ok(),
    };
    let mut unstopped = 0;
    if !completed {
        tracing::warn!(target: "errands", tasks_running = rt.tasks.len(), "shutdown: aborting tasks still running");
        rt.abort.cancel();
        if timeout(ABORT_GRACE, rt.tasks.wait()).await.is_err() {
            unstopped = rt.tasks.len() as u64;
            rt.report(
                ErrorReport::new(Origin::Runtime)
                    .message(format!("{unstopped} tasks did not stop after the abort")),
            );
        }
    }

    let teardown_failures = run_teardown(&rt).await;
    let stats = rt.counters.snapshot(rt.requests.len());
    tracing::info!(target: "errands", cancelled = stats.cancelled, aborted = stats.aborted, "shutdown: complete");
    ShutdownSummary {
        drained,
        completed,
        cancelled: stats.cancelled,
        aborted: stats.aborted,
        unstopped,
        teardown_failures,
    }
}

async fn run_teardown(rt: &Inner) -> usize {
    let hooks = std::mem::take(&mut *rt.teardown.lock().unwrap_or_else(|e| e.into_inner()));
    let mut failures = 0;
    for hook in hooks {
        let result = AssertUnwindSafe(async move { hook().await })
            .catch_unwind()
            .await;
        let error = match result {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(panic) => TaskError::from_panic(panic),
        };
        failures += 1;
        rt.report(
            ErrorReport::new(Origin::Teardown)
                .message("teardown hook failed")
                .error(&error),
        );
    }
    failures
}
