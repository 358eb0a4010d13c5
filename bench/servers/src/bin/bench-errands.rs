//! The errands server: each task is one `after_response` task.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use errands::{Errands, ScheduleError, Tasks};

#[path = "../errands_endpoints.rs"]
mod endpoints;

use endpoints::{COUNTER, fail, task};

async fn task_io(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        COUNTER.fetch_add(1, Relaxed);
    })?;
    Ok("ok")
}

async fn stats(State(errands): State<Errands>) -> Json<serde_json::Value> {
    let s = errands.stats();
    let finished = s.succeeded + s.failed + s.panicked + s.timed_out;
    Json(errands_bench_servers::stats(
        s.scheduled,
        finished,
        COUNTER.load(Relaxed),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let _logs = errands_bench_servers::logs();
    // With the `metrics` feature, a Prometheus recorder, installed before the runtime.
    let _metrics = errands_bench_servers::metrics();
    // The default reporter: one tracing event per failed task, into the non-blocking log.
    // Request and task spans at DEBUG, below the log's INFO: plain axum opens no span per
    // request either (as tower-http's `TraceLayer` defaults to DEBUG). errands' default, INFO,
    // puts the request id on every line and costs what the subscriber spends per span.
    let errands = Errands::builder().span_level(tracing::Level::DEBUG).build();
    let app = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/task", post(task))
        .route("/task-io", post(task_io))
        .route("/fail", post(fail))
        .route("/stats", get(stats))
        .with_state(errands.clone())
        .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind(errands_bench_servers::addr())
        .await
        .unwrap();
    errands.serve(listener, app).await.unwrap();
}
