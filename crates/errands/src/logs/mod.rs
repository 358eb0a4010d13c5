//! errands and the application's log output: the spans errands opens, a panic hook that keeps
//! logs whole, and (feature `json-logs`) a JSON line format.
//!
//! * **Spans.** errands opens a span per request (`request`: `request_id`, `method`,
//!   `route`) and per task (`task`: `task.id`, `task.name`, `task.timing`, `request_id`) at
//!   `INFO` by default ([`ErrandsBuilder::span_level`](crate::ErrandsBuilder::span_level)),
//!   so that with the usual `info` filter every line the application logs inside a handler
//!   or a task carries the request id and the task's name.
//! * **Panics.** Rust's standard panic hook writes several plain-text lines to stderr, which
//!   break JSON logs and interleave with other threads' lines. [`panic_hook`] writes one
//!   `tracing` event instead: at `DEBUG` for a panic that errands catches (in a handler, a
//!   task, an `on_error` handler, a mapper, a renderer or a WebSocket handler — its report is
//!   the record), at `ERROR` for any other panic, whose event is then the only record.
//! * **JSON lines** (feature `json-logs`): `JsonLines`, a `tracing-subscriber` event
//!   format whose lines are flat JSON objects with the fields of the enclosing spans, and
//!   with errands' JSON-valued fields (`task.fields`) nested as objects instead of strings.

#[cfg(feature = "json-logs")]
mod json;

use std::cell::Cell;
use std::panic::PanicHookInfo;

#[cfg(feature = "json-logs")]
#[cfg_attr(docsrs, doc(cfg(feature = "json-logs")))]
pub use json::JsonLines;

thread_local! {
    /// How many errands frames that catch panics are on this thread's stack.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// `std::panic::catch_unwind` for code whose panics errands reports.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| catching(f)))
}

/// Runs `f` as code whose panics errands catches and reports.
pub(crate) fn catching<T>(f: impl FnOnce() -> T) -> T {
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get() - 1));
        }
    }
    CATCHING.with(|c| c.set(c.get() + 1));
    let _exit = Exit;
    f()
}

pin_project_lite::pin_project! {
    /// A future whose panics errands catches and reports: see [`catching`].
    pub(crate) struct Catching<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Catching<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let future = self.project().future;
        catching(|| future.poll(cx))
    }
}

/// `future`, polled as code whose panics errands catches and reports.
pub(crate) fn caught<F: Future>(future: F) -> Catching<F> {
    Catching { future }
}

/// Whether a panic on this thread now would be caught and reported by errands.
fn caught_by_errands() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

/// A panic hook that logs each panic as one `tracing` event (target `panic`, with the
/// location, and a backtrace when `RUST_BACKTRACE` asks for one): `DEBUG` when errands
/// catches and reports the panic, `ERROR` otherwise. Install it once, after the subscriber:
///
/// ```
/// std::panic::set_hook(errands::logs::panic_hook());
/// # let _ = std::panic::take_hook();
/// ```
pub fn panic_hook() -> Box<dyn Fn(&PanicHookInfo<'_>) + Send + Sync + 'static> {
    Box::new(|info| {
        let message = info
            .payload_as_str()
            .unwrap_or("(non-string panic payload)");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
            .then(|| backtrace.to_string());
        if caught_by_errands() {
            tracing::debug!(target: "panic", location, backtrace, "panicked: {message}");
        } else {
            tracing::error!(target: "panic", location, backtrace, "panicked: {message}");
        }
    })
}

/// A span at a level chosen at run time (`tracing`'s macros need a constant level).
macro_rules! span_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            tracing::Level::ERROR => tracing::error_span!($($rest)+),
            tracing::Level::WARN => tracing::warn_span!($($rest)+),
            tracing::Level::INFO => tracing::info_span!($($rest)+),
            tracing::Level::DEBUG => tracing::debug_span!($($rest)+),
            _ => tracing::trace_span!($($rest)+),
        }
    };
}
pub(crate) use span_at;
