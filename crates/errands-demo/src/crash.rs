//! Crash points, for the crash tests: with `--fault-injection --crash-at POINT`, the process
//! stops at that point — it logs `crash point reached` and waits there for the test's
//! `SIGKILL`. Without both flags, every point passes at once.
//!
//! The demo's own points are `before_commit` and `after_commit` (a payment's transaction,
//! before the response), `mid_body` (the payment's response half sent), `mid_task` (the
//! provider called) and `completion_write` (the payment written, not committed); errands
//! adds `release`, `completion_write` and `report_write` (see `errands::faults`).

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Every point a test may stop at.
pub const POINTS: [&str; 7] = [
    "before_commit",
    "after_commit",
    "mid_body",
    "release",
    "mid_task",
    "completion_write",
    "report_write",
];

static AT: OnceLock<String> = OnceLock::new();

/// With several processes armed on one database: a file that the first process to reach the
/// point creates; the others, finding it, pass (so that the survivors of the kill finish).
static ONCE: OnceLock<PathBuf> = OnceLock::new();

/// Stops the process at `at` from now on; with `once`, only if no process stopped there yet.
pub fn arm(at: String, once: Option<PathBuf>) {
    let _ = AT.set(at);
    if let Some(once) = once {
        let _ = ONCE.set(once);
    }
    errands::faults::install(point);
}

/// Passes the point `name`: stops here if it is the one armed.
pub fn point(name: &'static str) {
    if AT.get().is_none_or(|at| at != name) {
        return;
    }
    if let Some(once) = ONCE.get() {
        let first = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(once);
        if first.is_err() {
            return; // another process stopped here first
        }
    }
    tracing::warn!(
        crash_point = name,
        "crash point reached: waiting for SIGKILL"
    );
    loop {
        std::thread::park();
    }
}

/// Sends the response body in two halves, passing `mid_body` between them.
pub async fn mid_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if AT.get().is_none_or(|at| at != "mid_body") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(mut head) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let tail = head.split_off(head.len() / 2);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let halves = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(head)]),
        futures_util::stream::once(async move {
            point("mid_body");
            Ok(tail)
        }),
    );
    Response::from_parts(parts, Body::from_stream(halves))
}
