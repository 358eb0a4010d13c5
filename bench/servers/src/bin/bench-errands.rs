//! The errands server: each task is one `after_response` task.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use errands::{Errands, ScheduleError, Tasks};

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the task failed on purpose")
    }
}

impl std::error::Error for Failed {}

async fn task(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        COUNTER.fetch_add(1, Relaxed);
    })?;
    Ok("ok")
}

async fn task_io(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        COUNTER.fetch_add(1, Relaxed);
    })?;
    Ok("ok")
}

async fn fail(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        COUNTER.fetch_add(1, Relaxed);
        Err::<(), _>(Failed)
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
    // The default reporter: one tracing event per failed task, into the non-blocking log.
    let errands = Errands::new();
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
