//! apalis on SQLite (apalis-sqlite), for the side-by-side jobs benchmark (bench/harness.py,
//! which runs errands' side, bench/jobs/errands, the same way). Prints one JSON object.
//!
//! Every measure gets a fresh database file in `--dir`, in WAL mode with the `--synchronous`
//! setting, through a pool of sqlx's default size, with apalis' own migrations. The job is
//! trivial: it counts itself and records its pickup latency, so what is measured is the
//! queue's machinery. The worker's storage is apalis' event-driven one (SQLite's update hook
//! wakes it on an insert through its pool), also polling every second.
//!
//! 1. `enqueue`: an axum handler pushes one job per request (`storage.push(job)`), driven by
//!    wrk against 127.0.0.1 (2xx responses per second); no worker runs.
//! 2. `one_at_a_time`: `--jobs` jobs stored beforehand, then a worker fetching one job at a
//!    time and running one at a time (`batch_size(1)`, `concurrency(1)`); jobs per second
//!    from the worker's start until the last job ran.
//! 3. `batched`: the same with batches of 16 and 16 at once, errands' default.
//! 4. `pickup`: an idle worker; jobs pushed one at a time at `--rate` per second for
//!    `--latency-seconds`; each job's start minus its push time, p50 and p99.
//! 5. CPU per job: user + system time of the whole process during 2 and 3 (getrusage),
//!    divided by the jobs run.

#[path = "../../shared/measure.rs"]
mod measure;
#[path = "../../shared/sqlite.rs"]
mod sqlite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_sqlite::{Config, SqliteStorage};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use futures::StreamExt;
use measure::{Probe, cpu_us, drained, now_us};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlite::{ALL_RAN_MINUTES, Options, connect_options, fresh};
use sqlx::sqlite::SqlitePool;

const QUEUE: &str = "bench";
const DONE: &str = "SELECT count(*) FROM Jobs WHERE status = 'Done'";

/// The measured job: when it was pushed, in microseconds since the Unix epoch.
#[derive(Serialize, Deserialize)]
struct Bench {
    sent_us: u64,
}

async fn run(job: Bench, probe: Data<Probe>) -> Result<(), BoxDynError> {
    probe.ran(job.sent_us);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = sqlite::options("apalis");
    std::fs::create_dir_all(&o.store.dir).unwrap();
    let enqueue = enqueue_from_requests(&o).await;
    let one = drain(&o, "one-at-a-time", 1).await;
    let batched = drain(&o, "batched", 16).await;
    let pickup = pickup(&o).await;
    let result = json!({
        "system": "apalis",
        "apalis": "1.0.0",
        "apalis_sqlite": "1.0.0",
        "sqlx": "0.9",
        "synchronous": format!("{:?}", o.store.synchronous).to_lowercase(),
        "enqueue": enqueue,
        "one_at_a_time": one,
        "batched": batched,
        "pickup": pickup,
    });
    println!("{result}");
}

/// A fresh database set up by apalis' own `setup`, and a plain pool on it.
///
/// `setup` migrates and sets pragmas on the connection it runs on: WAL mode and
/// `PRAGMA optimize` stay with the file, while its per-connection ones (among them
/// `synchronous = OFF`) go with that connection, closed here, so that both systems write
/// with the same settings.
async fn database(o: &Options, name: &str) -> (SqlitePool, PathBuf) {
    let path = fresh(o, name);
    let setup = SqlitePool::connect_with(connect_options(o, &path))
        .await
        .unwrap();
    SqliteStorage::setup(&setup).await.unwrap();
    setup.close().await;
    let pool = SqlitePool::connect_with(connect_options(o, &path))
        .await
        .unwrap();
    (pool, path)
}

/// A pool whose inserts into apalis' table wake the worker (apalis' event-driven storage).
fn hooked_pool(
    o: &Options,
    path: &Path,
) -> (SqlitePool, apalis_sqlite::callback::HookCallbackListener) {
    let url = format!("sqlite://{}", path.display());
    let (pool, listener) = SqliteStorage::connect_with_callback(&url).unwrap();
    pool.set_connect_options(connect_options(o, path));
    (pool, listener)
}

fn storage(pool: &SqlitePool, batch_size: usize) -> SqliteStorage<Bench> {
    SqliteStorage::new(pool).with_config(Config::default().queue(QUEUE).batch_size(batch_size))
}

/// Runs a worker with the event-driven storage on `pool` until `stop` fires.
fn spawn_worker(
    pool: &SqlitePool,
    listener: apalis_sqlite::callback::HookCallbackListener,
    probe: &Probe,
    batch_size: usize,
    concurrency: usize,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let strategy = Strategy::new()
        .stream(listener.ready_chunks(batch_size))
        .interval(Duration::from_secs(1));
    let backend = storage(pool, batch_size).poll_with_strategy(strategy);
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(probe.clone())
        .concurrency(concurrency)
        .build(run);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run_until(async move { stopped.await.map_err(std::io::Error::other) })
            .await
            .unwrap();
    });
    (stop, handle)
}

/// 1: pushes per second from HTTP requests; no worker.
async fn enqueue_from_requests(o: &Options) -> Value {
    let (pool, _) = database(o, "enqueue").await;

    async fn handler(State(mut storage): State<SqliteStorage<Bench>>) -> StatusCode {
        let sent_us = now_us();
        match storage.push(Bench { sent_us }).await {
            Ok(()) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app = Router::new()
        .route("/enqueue", post(handler))
        .with_state(storage(&pool, 16));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/enqueue", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    if o.wrk_warmup > 0 {
        measure::wrk(o, &url, o.wrk_warmup).await;
    }
    let mut result = measure::wrk(o, &url, o.wrk_seconds).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM Jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    result["stored"] = json!(stored);
    let _ = stop.send(());
    let _ = server.await;
    pool.close().await;
    result
}

/// 2 and 3: `--jobs` stored jobs run by a fresh worker.
async fn drain(o: &Options, name: &str, size: usize) -> Value {
    let (pool, path) = database(o, name).await;
    // Stored in one transaction before any worker exists, through a pool without the hook.
    let jobs = (0..o.jobs).map(|_| Bench { sent_us: now_us() }).collect();
    storage(&pool, size).push_bulk(jobs).await.unwrap();
    pool.close().await;

    let probe = Probe::new(o.jobs);
    let (cpu, began) = (cpu_us(), Instant::now());
    let (pool, listener) = hooked_pool(o, &path);
    let (stop, worker) = spawn_worker(&pool, listener, &probe, size, size);
    probe.all_ran(ALL_RAN_MINUTES).await;
    let (elapsed, cpu) = (began.elapsed(), cpu_us() - cpu);
    let recorded = sqlite::recorded(&pool, DONE, o.jobs, began).await;
    let _ = stop.send(());
    let _ = worker.await;
    pool.close().await;
    drained(o.jobs, elapsed, cpu, recorded)
}

/// 4: pickup latency of an idle worker, jobs pushed one at a time at a steady rate.
async fn pickup(o: &Options) -> Value {
    let (pool, path) = database(o, "pickup").await;
    pool.close().await;
    let count = o.rate * o.latency_seconds;
    let probe = Probe::new(count);
    let (pool, listener) = hooked_pool(o, &path);
    let (stop, worker) = spawn_worker(&pool, listener, &probe, 16, 16);
    let mut pusher = storage(&pool, 16);
    // The worker's first fetch has found nothing: it is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / o.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticks.tick().await;
        pusher.push(Bench { sent_us: now_us() }).await.unwrap();
    }
    probe.all_ran(ALL_RAN_MINUTES).await;
    let _ = stop.send(());
    let _ = worker.await;
    pool.close().await;
    probe.latencies(count)
}
