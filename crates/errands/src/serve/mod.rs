//! Serving with signals wired to the shutdown sequence.

use std::io;

use axum::Router;
use futures_util::FutureExt;
use tokio::net::TcpListener;

mod body;
mod server;
mod signals;

use tokio_util::sync::CancellationToken;

use signals::Signals;

use crate::errands::Errands;
use crate::shutdown::ShutdownSummary;

impl Errands {
    /// Serves `app` on `listener` until SIGTERM or SIGINT (Ctrl-C), then runs the
    /// [shutdown sequence](crate::shutdown): the server stops accepting, requests drain,
    /// unshielded tasks are cancelled, shielded tasks finish or are aborted at the deadline,
    /// and teardown hooks run. A second signal skips to the abort. Returns once teardown ran.
    ///
    /// It speaks HTTP/1.1 (with upgrades, for WebSockets), with limits and timeouts that slow
    /// or abusive clients cannot get around — see
    /// [`max_connections`](crate::ErrandsBuilder::max_connections),
    /// [`header_read_timeout`](crate::ErrandsBuilder::header_read_timeout),
    /// [`body_read_timeout`](crate::ErrandsBuilder::body_read_timeout) and
    /// [`max_header_bytes`](crate::ErrandsBuilder::max_header_bytes), and the semantics page,
    /// "Serving". For HTTP/2, put a proxy that speaks it in front, or serve with another
    /// server as described below.
    ///
    /// The router must include [`Errands::layer`]. `serve` puts a guard outside every layer,
    /// so that the response of a layer the application put outside its errands layer —
    /// tower-http's `TimeoutLayer` answering 408, `RequestBodyLimitLayer` answering 413 —
    /// still gets the error schema, the request id and its one report, and the request's
    /// tasks are skipped for that status rather than for a client that never left. Routes
    /// outside the errands layer stay untracked; only an error response of theirs is rendered
    /// and reported. To serve another way, apply [`Errands::layer`] last, pass [`Errands::shutdown_started`] to
    /// `axum::serve(..).with_graceful_shutdown(..)`, and call [`Errands::shutdown`] after
    /// triggering it.
    ///
    /// ```no_run
    /// use axum::{Router, routing::get};
    ///
    /// #[tokio::main]
    /// async fn main() -> std::io::Result<()> {
    ///     let errands = errands::Errands::new();
    ///     let app = Router::new().route("/", get(|| async { "hi" })).layer(errands.layer());
    ///     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    ///     let summary = errands.serve(listener, app).await?;
    ///     println!("{summary:?}");
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// If the router has no errands layer (checked before the first connection is accepted,
    /// with a request that reaches no handler), if the signal handlers cannot be installed, or
    /// if the server fails before shutdown; in
    /// the latter case the shutdown sequence still runs first, so no task is lost silently.
    pub async fn serve(&self, listener: TcpListener, app: Router) -> io::Result<ShutdownSummary> {
        if !crate::layer::Probe::finds_layer(&app).await {
            return Err(io::Error::other(
                "the router has no errands layer: add `.layer(errands.layer())` to it, last",
            ));
        }
        #[cfg(feature = "durable")]
        let _ = self.jobs(); // starts the durable worker, if it has not started
        let signals = Signals::install()?;
        let watcher = tokio::spawn(signals.watch(self.clone()));
        tracing::info!(target: "errands", "server: accepting connections; SIGTERM or SIGINT starts the shutdown");
        let guard = crate::layer::OuterLayer::new(self.pipeline().clone());
        let stop = CancellationToken::new();
        let server = server::run(self.rt().clone(), listener, app.layer(guard), stop.clone());
        let stopping = self.shutdown_started();
        tokio::spawn(async move {
            stopping.await;
            stop.cancel();
        });
        let mut server = tokio::spawn(server);
        // `biased`: once shutdown started, the server finishing too is part of the drain.
        let stopped_on_its_own = tokio::select! {
            biased;
            _ = self.shutdown_started() => None,
            result = &mut server => Some(result),
        };
        // The watcher stays alive through the whole sequence, so a second signal aborts.
        let summary = match stopped_on_its_own {
            None => {
                let server_done = async move {
                    match server.await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::error!(target: "errands", %error, "server failed while draining")
                        }
                        Err(error) => {
                            tracing::error!(target: "errands", %error, "server task failed while draining")
                        }
                    }
                };
                self.shutdown_with(server_done.boxed()).await
            }
            Some(_) => self.shutdown().await,
        };
        watcher.abort();
        if let Some(result) = stopped_on_its_own {
            result.map_err(io::Error::other)??;
        }
        Ok(summary)
    }
}
