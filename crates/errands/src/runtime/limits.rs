//! [`Limits`]: how much a runtime accepts and how long its shutdown waits.

use std::time::Duration;

/// A runtime's limits and deadlines, set on the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_running: usize,
    pub(crate) max_queued: usize,
    pub(crate) max_blocking: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) shutdown_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_running: 1024,
            max_queued: 10_000,
            max_blocking: 16,
            drain_timeout: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}
