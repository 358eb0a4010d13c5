//! The shutdown sequence. Its order is the contract:
//!
//! 1. **Drain.** Shutdown starts (a signal, or [`Errands::begin_shutdown`](crate::Errands::begin_shutdown)): the server stops
//!    accepting connections and in-flight requests finish, for at most the drain timeout.
//! 2. **Cancel.** Once no request is in flight, no new `after_*` batch can appear. The runtime
//!    stops accepting tasks ([`ScheduleError::ShuttingDown`](crate::ScheduleError)) and
//!    cancels every unshielded task; each is reported `cancelled` with its name.
//! 3. **Wait, then abort.** Shielded tasks, with their `on_error` handlers, run on until the
//!    shutdown deadline. Whatever is still running then is aborted and reported `aborted`.
//! 4. **Teardown.** Only now do the application's teardown hooks run, in order.
//!
//! [`Errands::abort`](crate::Errands::abort) (a second signal) skips straight to the abort in whatever step shutdown
//! is. Tasks stop at their next `.await`; a task that never yields cannot be stopped by any
//! async runtime, and a blocking closure runs until it returns, so the abort waits at most
//! the abort grace ([`ABORT_GRACE`] by default) for tasks to acknowledge it and reports the
//! ones that did not — blocking tasks by name.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;
use tokio::time::timeout;

use crate::report::{ErrorReport, Origin};
use crate::runtime::Runtime;
use crate::task::TaskError;

/// How long an abort waits by default for tasks to stop before shutdown goes on without them
/// ([`ErrandsBuilder::abort_grace`](crate::ErrandsBuilder::abort_grace) sets it).
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
    /// Requests still in flight when the drain timeout ran out.
    pub requests_cut: u64,
    /// Attempts of durable jobs that shutdown stopped (counted in `aborted` too): handed back
    /// to their store, to run again, so not lost.
    pub handed_back: u64,
    /// Teardown hooks that failed or panicked.
    pub teardown_failures: usize,
}

/// A teardown hook, run once at the end of shutdown.
pub(crate) type TeardownHook =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<(), TaskError>> + Send>;

/// The shutdown of one runtime: its teardown hooks, and the summary of its one run.
pub(crate) struct Shutdown {
    teardown: Mutex<Vec<TeardownHook>>,
    summary: OnceCell<ShutdownSummary>,
}

impl Shutdown {
    pub(crate) fn new(teardown: Vec<TeardownHook>) -> Self {
        Shutdown {
            teardown: Mutex::new(teardown),
            summary: OnceCell::new(),
        }
    }

    /// Runs `hook` before the application's teardown hooks.
    #[cfg(feature = "durable")]
    pub(crate) fn teardown_first(&self, hook: TeardownHook) {
        let mut hooks = self.teardown.lock().unwrap_or_else(PoisonError::into_inner);
        hooks.insert(0, hook);
    }

    /// Runs the sequence once; a second or concurrent call waits for the same run. `server`
    /// is the server's own drain, when serving.
    pub(crate) async fn run(
        &self,
        rt: &Arc<Runtime>,
        server: Option<BoxFuture<'static, ()>>,
    ) -> ShutdownSummary {
        *self
            .summary
            .get_or_init(|| run(rt.clone(), &self.teardown, server))
            .await
    }
}

async fn run(
    rt: Arc<Runtime>,
    teardown: &Mutex<Vec<TeardownHook>>,
    server: Option<BoxFuture<'static, ()>>,
) -> ShutdownSummary {
    rt.begin_shutdown();
    tracing::info!(target: "errands", requests_in_flight = rt.requests().len(), "shutdown: draining requests");
    let drain = async {
        let server = async {
            if let Some(server) = server {
                server.await;
            }
        };
        tokio::join!(rt.requests().wait(), server);
    };
    let drained = tokio::select! {
        biased;
        _ = rt.aborted().cancelled() => false,
        result = timeout(rt.drain_timeout(), drain) => result.is_ok(),
    };
    let requests_cut = if drained {
        0
    } else {
        rt.requests().len() as u64
    };
    if !drained {
        tracing::warn!(target: "errands", requests_in_flight = requests_cut, "shutdown: requests still in flight after the drain");
    }

    // A task starting now is either seen by the waits below or sees the runtime closed (see
    // `Pending::start`).
    rt.close();
    tracing::info!(target: "errands", tasks_running = rt.tasks().len(), "shutdown: cancelling unshielded tasks, waiting for shielded tasks");
    rt.cancel_unshielded();
    let completed = tokio::select! {
        biased;
        _ = rt.aborted().cancelled() => false,
        result = timeout(rt.shutdown_deadline(), rt.tasks().wait()) => result.is_ok(),
    };
    let mut unstopped = 0;
    if !completed {
        tracing::warn!(target: "errands", tasks_running = rt.tasks().len(), "shutdown: aborting tasks still running");
        rt.abort();
        if timeout(rt.abort_grace(), rt.tasks().wait()).await.is_err() {
            unstopped = rt.tasks().len() as u64;
            let blocking = rt.blocking_names();
            let message = match blocking.is_empty() {
                true => format!("{unstopped} tasks did not stop after the abort"),
                false => format!(
                    "{unstopped} tasks did not stop after the abort; still blocking: {}",
                    blocking.join(", ")
                ),
            };
            rt.report(ErrorReport::new(Origin::Runtime).message(message));
        }
    }

    let teardown_failures = run_teardown(&rt, teardown).await;
    let stats = rt.stats();
    tracing::info!(target: "errands", cancelled = stats.cancelled, aborted = stats.aborted, "shutdown: complete");
    ShutdownSummary {
        drained,
        completed,
        cancelled: stats.cancelled,
        aborted: stats.aborted,
        unstopped,
        requests_cut,
        handed_back: rt.handed_back(),
        teardown_failures,
    }
}

impl ShutdownSummary {
    /// Whether work was lost: a request was cut off at the drain timeout, a shielded task was
    /// aborted, or a task did not even stop. Cancelled unshielded tasks are not lost work —
    /// they are what unshielded means — and neither are durable jobs whose aborted attempts
    /// were handed back to their store. A process should exit non-zero then, so that its
    /// supervisor sees it.
    ///
    /// ```no_run
    /// # async fn f(errands: errands::Errands, listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    /// let summary = errands.serve(listener, app).await?;
    /// if summary.lost_work() {
    ///     std::process::exit(1);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lost_work(&self) -> bool {
        self.requests_cut > 0
            || self.aborted.saturating_sub(self.handed_back) > 0
            || self.unstopped > 0
    }
}

async fn run_teardown(rt: &Runtime, teardown: &Mutex<Vec<TeardownHook>>) -> usize {
    let hooks = std::mem::take(&mut *teardown.lock().unwrap_or_else(PoisonError::into_inner));
    let mut failures = 0;
    for hook in hooks {
        let result = AssertUnwindSafe(crate::logs::caught(async move { hook().await }))
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
                .task_error(&error),
        );
    }
    failures
}
