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
    pub(crate) abort_grace: Duration,
    pub(crate) serving: Serving,
}

/// What [`Errands::serve`](crate::Errands::serve) allows its clients.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Serving {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_running: 1024,
            max_queued: 10_000,
            max_blocking: 16,
            drain_timeout: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(30),
            abort_grace: Duration::from_secs(5),
            serving: Serving::default(),
        }
    }
}
