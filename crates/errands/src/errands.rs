//! [`Errands`]: the public handle to a runtime. It is made by
//! [`ErrandsBuilder`](crate::ErrandsBuilder), which also gives it `new` and `builder`.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::errors::Pipeline;
use crate::layer::ErrandsLayer;
use crate::runtime::Runtime;
use crate::shutdown::{Shutdown, ShutdownSummary};
use crate::stats::Stats;
use crate::tasks::Tasks;

/// The errands runtime: owns every background task of the service, their accounting and the
/// shutdown sequence. Cheap to clone; all clones share one runtime.
///
/// ```
/// use axum::{Router, routing::get};
/// use errands::Errands;
///
/// let errands = Errands::builder()
///     .drain_timeout(std::time::Duration::from_secs(10))
///     .shutdown_deadline(std::time::Duration::from_secs(20))
///     .build();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(errands.layer());
/// ```
#[derive(Clone)]
pub struct Errands {
    rt: Arc<Runtime>,
    pipeline: Arc<Pipeline>,
    shutdown: Arc<Shutdown>,
}

impl std::fmt::Debug for Errands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Errands")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Errands {
    pub(crate) fn from_parts(rt: Runtime, pipeline: Pipeline, shutdown: Shutdown) -> Self {
        Errands {
            rt: Arc::new(rt),
            pipeline: Arc::new(pipeline),
            shutdown: Arc::new(shutdown),
        }
    }

    /// With a durable side; its worker starts now if a tokio runtime is running, otherwise
    /// with [`Errands::jobs`] or [`Errands::serve`].
    #[cfg(feature = "durable")]
    pub(crate) fn with_durable(self, durable: Arc<crate::jobs::Durable>) -> Self {
        // First of the teardown hooks, so the application's pool is still open.
        let stop = durable.clone();
        self.shutdown.teardown_first(Box::new(move || {
            Box::pin(async move {
                crate::jobs::stop(stop)
                    .await
                    .map_err(crate::task::TaskError::from_error)
            })
        }));
        self.rt.attach(durable);
        let _ = self.jobs();
        self
    }

    /// The durable jobs of this runtime (feature `sqlite`): enqueue, status. Starts the
    /// worker if it has not started yet.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn jobs(&self) -> crate::jobs::Jobs {
        crate::jobs::Jobs::of(&self.rt)
    }

    /// The shared state behind this handle.
    pub(crate) fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    pub(crate) fn rt(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// The layer to add to the router. Add it last (outermost), so that every route, the
    /// fallback and all other middleware run inside it.
    pub fn layer(&self) -> ErrandsLayer {
        ErrandsLayer::new(self.rt.clone(), self.pipeline.clone())
    }

    /// A handle for scheduling tasks outside any request (at startup, from another task).
    /// Without a request, `after_route` and `after_response` tasks start at once.
    pub fn tasks(&self) -> Tasks {
        Tasks::for_runtime(&self.rt)
    }

    /// A snapshot of the task counters.
    pub fn stats(&self) -> Stats {
        self.rt.stats()
    }

    /// Waits until no request is inside the layer and no task is pending, queued or running.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits, and may be called again.
    pub async fn idle(&self) {
        let (requests, tasks) = (self.rt.requests(), self.rt.tasks());
        loop {
            requests.wait().await;
            tasks.wait().await;
            if requests.is_empty() && tasks.is_empty() {
                return;
            }
        }
    }

    /// Starts shutdown without waiting for it: the future of
    /// [`shutdown_started`](Errands::shutdown_started) resolves, so a server using it stops
    /// accepting connections. Call [`shutdown`](Errands::shutdown) to run the sequence.
    pub fn begin_shutdown(&self) {
        self.rt.begin_shutdown();
    }

    /// Resolves once shutdown has started: pass it to
    /// `axum::serve(..).with_graceful_shutdown(..)` when serving without [`Errands::serve`].
    pub fn shutdown_started(&self) -> impl Future<Output = ()> + Send + 'static {
        self.rt.started().clone().cancelled_owned()
    }

    /// Skips to the abort: the runtime stops accepting tasks, and every task still running
    /// stops at its next `.await` and is reported `aborted` (unshielded ones `cancelled`).
    /// This is what a second signal does; [`shutdown`](Errands::shutdown) then finishes fast.
    pub fn abort(&self) {
        self.rt.abort();
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
    ///
    /// # Cancel safety
    ///
    /// The sequence itself runs to its end only while awaited: dropping this future stops
    /// waiting for it at its current step, and a later call starts it over from the start
    /// (steps already taken, such as cancelling unshielded tasks, stay taken). Await it to the
    /// end.
    pub async fn shutdown(&self) -> ShutdownSummary {
        self.shutdown.run(&self.rt, None).await
    }

    /// The shutdown sequence, with the server's own drain as part of step 1.
    pub(crate) async fn shutdown_with(&self, server: BoxFuture<'static, ()>) -> ShutdownSummary {
        self.shutdown.run(&self.rt, Some(server)).await
    }
}
