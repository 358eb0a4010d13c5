//! The floor: plain axum, each task a bare `tokio::spawn`. With `--request-id`, the same
//! server also sets and echoes `x-request-id` (UUIDs) through tower-http's request-id layers,
//! as a production service does: the like-for-like comparison for errands, which always
//! echoes a request id.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

static SCHEDULED: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn spawn<F: Future<Output = Result<(), &'static str>> + Send + 'static>(task: F) {
    SCHEDULED.fetch_add(1, Relaxed);
    tokio::spawn(async move {
        if let Err(error) = task.await {
            tracing::error!(error, "task failed");
        }
        FINISHED.fetch_add(1, Relaxed);
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let _logs = errands_bench_servers::logs();
    let mut app = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route(
            "/task",
            post(|| async {
                spawn(async {
                    COUNTER.fetch_add(1, Relaxed);
                    Ok(())
                });
                "ok"
            }),
        )
        .route(
            "/task-io",
            post(|| async {
                spawn(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    COUNTER.fetch_add(1, Relaxed);
                    Ok(())
                });
                "ok"
            }),
        )
        .route(
            "/fail",
            post(|| async {
                spawn(async {
                    COUNTER.fetch_add(1, Relaxed);
                    Err("the task failed on purpose")
                });
                "ok"
            }),
        )
        .route(
            "/stats",
            get(|| async {
                let (s, f, c) = (
                    SCHEDULED.load(Relaxed),
                    FINISHED.load(Relaxed),
                    COUNTER.load(Relaxed),
                );
                Json(errands_bench_servers::stats(s, f, c))
            }),
        );
    if std::env::args().any(|a| a == "--request-id") {
        app = app
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    }
    let listener = tokio::net::TcpListener::bind(errands_bench_servers::addr())
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
