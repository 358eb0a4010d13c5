//! errands' durable jobs on SQLite, for the side-by-side jobs benchmark (bench/harness.py,
//! which runs the apalis side, bench/jobs/apalis, the same way). Prints one JSON object.
//!
//! Every measure gets a fresh database file in `--dir`, in WAL mode with the `--synchronous`
//! setting, through a pool of sqlx's default size. The job is trivial: it counts itself and
//! records its pickup latency, so what is measured is the queue's machinery.
//!
//! 1. `enqueue`: an axum handler, behind the errands layer and served by `Errands::serve`,
//!    enqueues one job per request (`errands.jobs().enqueue(job)`), driven by wrk against
//!    127.0.0.1 (2xx responses per second). The worker runs but drains nothing: a job that
//!    never ends holds the only slot of its queue.
//! 2. `one_at_a_time`: `--jobs` jobs stored beforehand, then a runtime whose queue runs one
//!    job at a time (`job_queue("default", 1)`: each claim takes one job); jobs per second
//!    from the runtime's start until the last job ran.
//! 3. `batched`: the same with the default concurrency of 16 (claims of up to 16 jobs).
//! 4. `pickup`: an idle worker; jobs enqueued one at a time at `--rate` per second for
//!    `--latency-seconds`; each job's start minus its enqueue time, p50 and p99.
//! 5. CPU per job: user + system time of the whole process during 2 and 3 (getrusage),
//!    divided by the jobs run.

#[path = "../../shared/measure.rs"]
mod measure;
#[path = "../../shared/sqlite.rs"]
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use errands::durable::{NewJob, SqliteStore};
use errands::jobs::{Job, JobContext};
use errands::{BoxError, Errands};
use measure::{Probe, cpu_us, drained, now_us};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlite::{ALL_RAN_MINUTES, Options, connect_options, fresh};
use sqlx::sqlite::SqlitePool;
use tokio::sync::Notify;

const SUCCEEDED: &str = "SELECT count(*) FROM errands_jobs WHERE state = 'succeeded'";

/// The measured job: when it was enqueued, in microseconds since the Unix epoch.
#[derive(Serialize, Deserialize)]
struct Bench {
    sent_us: u64,
}

impl Job for Bench {
    const NAME: &'static str = "bench";
    type State = Probe;

    async fn run(self, cx: JobContext<Probe>) -> Result<(), BoxError> {
        cx.state().ran(self.sent_us);
        Ok(())
    }
}

/// Holds the only slot of the queue during the enqueue measure, so that nothing drains.
#[derive(Serialize, Deserialize)]
struct Hold;

impl Job for Hold {
    const NAME: &'static str = "hold";
    type State = Arc<Notify>;

    async fn run(self, cx: JobContext<Arc<Notify>>) -> Result<(), BoxError> {
        cx.state().notify_one();
        std::future::pending().await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = sqlite::options("errands");
    std::fs::create_dir_all(&o.store.dir).unwrap();
    let enqueue = enqueue_from_requests(&o).await;
    let one = drain(&o, "one-at-a-time", Some(1)).await;
    let batched = drain(&o, "batched", None).await;
    let pickup = pickup(&o).await;
    let result = json!({
        "system": "errands",
        "sqlx": "0.9",
        "synchronous": format!("{:?}", o.store.synchronous).to_lowercase(),
        "enqueue": enqueue,
        "one_at_a_time": one,
        "batched": batched,
        "pickup": pickup,
    });
    println!("{result}");
}

async fn pool(o: &Options, name: &str) -> (SqlitePool, PathBuf) {
    let path = fresh(o, name);
    let options = connect_options(o, &path);
    (SqlitePool::connect_with(options).await.unwrap(), path)
}

/// 1: enqueues per second from HTTP requests, the worker holding still.
async fn enqueue_from_requests(o: &Options) -> Value {
    let (pool, _) = pool(o, "enqueue").await;
    let store = SqliteStore::new(pool.clone()).await.unwrap();
    let held = Arc::new(Notify::new());
    let errands = Errands::builder()
        .shutdown_deadline(Duration::from_millis(100))
        .durable(store)
        .job::<Bench>(Probe::new(u64::MAX))
        .job::<Hold>(held.clone())
        .job_queue("default", 1)
        .build();
    errands.jobs().enqueue(Hold).await.unwrap();
    held.notified().await;

    async fn handler(State(errands): State<Errands>) -> errands::Result<StatusCode> {
        let sent_us = now_us();
        errands.jobs().enqueue(Bench { sent_us }).await?;
        Ok(StatusCode::ACCEPTED)
    }
    let app = Router::new()
        .route("/enqueue", post(handler))
        .with_state(errands.clone())
        .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/enqueue", listener.local_addr().unwrap());
    let server = tokio::spawn({
        let errands = errands.clone();
        async move { errands.serve(listener, app).await }
    });
    if o.wrk_warmup > 0 {
        measure::wrk(o, &url, o.wrk_warmup).await;
    }
    let mut result = measure::wrk(o, &url, o.wrk_seconds).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM errands_jobs WHERE kind = 'bench'")
        .fetch_one(&pool)
        .await
        .unwrap();
    result["stored"] = json!(stored);
    errands.begin_shutdown();
    let _ = server.await;
    pool.close().await;
    result
}

/// 2 and 3: `--jobs` stored jobs run by a fresh runtime with the queue's concurrency.
async fn drain(o: &Options, name: &str, concurrency: Option<usize>) -> Value {
    let (pool, _) = pool(o, name).await;
    let store = SqliteStore::new(pool.clone()).await.unwrap();
    // The rows `errands.jobs().enqueue(Bench { .. })` writes, stored in one transaction
    // before any worker exists.
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..o.jobs {
        let args = serde_json::to_value(Bench { sent_us: now_us() }).unwrap();
        let job = NewJob::new(Bench::NAME, args)
            .queue(Bench::QUEUE)
            .max_attempts(Bench::retry_policy().attempts());
        SqliteStore::enqueue_in(&mut tx, job).await.unwrap();
    }
    tx.commit().await.unwrap();

    let probe = Probe::new(o.jobs);
    let (cpu, began) = (cpu_us(), Instant::now());
    let mut builder = Errands::builder()
        .shutdown_deadline(Duration::from_secs(5))
        .durable(store)
        .job::<Bench>(probe.clone());
    if let Some(concurrency) = concurrency {
        builder = builder.job_queue(Bench::QUEUE, concurrency);
    }
    let errands = builder.build();
    let _ = errands.jobs(); // starts the worker, if `build` has not
    probe.all_ran(ALL_RAN_MINUTES).await;
    let (elapsed, cpu) = (began.elapsed(), cpu_us() - cpu);
    let recorded = sqlite::recorded(&pool, SUCCEEDED, o.jobs, began).await;
    errands.shutdown().await;
    pool.close().await;
    drained(o.jobs, elapsed, cpu, recorded)
}

/// 4: pickup latency of an idle worker, jobs enqueued one at a time at a steady rate.
async fn pickup(o: &Options) -> Value {
    let (pool, _) = pool(o, "pickup").await;
    let store = SqliteStore::new(pool.clone()).await.unwrap();
    let count = o.rate * o.latency_seconds;
    let probe = Probe::new(count);
    let errands = Errands::builder()
        .shutdown_deadline(Duration::from_secs(5))
        .durable(store)
        .job::<Bench>(probe.clone())
        .build();
    let jobs = errands.jobs();
    // The worker's first claim has found nothing: it is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / o.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticks.tick().await;
        jobs.enqueue(Bench { sent_us: now_us() }).await.unwrap();
    }
    probe.all_ran(ALL_RAN_MINUTES).await;
    errands.shutdown().await;
    pool.close().await;
    probe.latencies(count)
}
