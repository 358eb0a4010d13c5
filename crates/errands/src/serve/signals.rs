//! The signals `serve` listens to: the first begins shutdown, the second aborts.

use std::io;

use crate::errands::Errands;

/// SIGTERM and SIGINT; installed before the server starts so no signal is missed.
pub(super) struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// First signal: begin shutdown. Second signal: abort.
    pub(super) async fn watch(mut self, errands: Errands) {
        self.next().await;
        tracing::info!(target: "errands", "shutdown signal received");
        errands.begin_shutdown();
        self.next().await;
        tracing::warn!(target: "errands", "second shutdown signal received: aborting");
        errands.abort();
    }
}
