//! apalis on PostgreSQL (apalis-postgres), for the side-by-side jobs benchmark
//! (bench/harness.py, which runs bench/jobs/errands-postgres and bench/jobs/riverqueue the
//! same way). Prints one JSON object.
//!
//! Every measure gets its own database on the server (`--server`), created for it and dropped
//! after it, set up by apalis' own migrations, through a pool of sqlx's default size; the
//! database server's side of each measure (WAL, CPU, dead tuples) is taken as
//! ../shared/postgres.rs describes. The job is trivial: it counts itself and records its
//! pickup latency, so what is measured is the queue's machinery. The worker is woken by
//! apalis' listener (`Pubsub`: LISTEN on the channel its insert trigger notifies), and also
//! polls every second.
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
#[path = "../../shared/postgres.rs"]
mod shared;

use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use futures::StreamExt;
use measure::{Probe, cpu_us, drained, now_us};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{ALL_RAN_MINUTES, Db, Options, Server};
use sqlx::PgPool;

const QUEUE: &str = "bench";
const DONE: &str = "SELECT count(*) FROM apalis.jobs WHERE status = 'Done'";

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
    let o = shared::options();
    let server = Server::connect(&o).await;
    let enqueue = enqueue_from_requests(&o, &server).await;
    let one = drain(&o, &server, "one_at_a_time", 1).await;
    let batched = drain(&o, &server, "batched", 16).await;
    let pickup = pickup(&o, &server).await;
    let result = json!({
        "system": "apalis",
        "postgres": server.version,
        "postgres_settings": server.settings,
        "enqueue": enqueue,
        "one_at_a_time": one,
        "batched": batched,
        "pickup": pickup,
    });
    println!("{result}");
}

/// A fresh database set up by apalis' own `setup`, and a pool on it.
async fn database(server: &Server, measure: &str) -> (Db, PgPool) {
    let db = server.create("apalis", measure).await;
    let pool = db.pool().await;
    PostgresStorage::setup(&pool).await.unwrap();
    db.checkpoint().await;
    (db, pool)
}

fn storage(pool: &PgPool, batch_size: usize) -> PostgresStorage<Bench> {
    PostgresStorage::new(pool).with_config(Config::default().queue(QUEUE).batch_size(batch_size))
}

/// Runs a worker woken by apalis' listener (and an interval) until `stop` fires.
fn spawn_worker(
    pool: &PgPool,
    probe: &Probe,
    batch_size: usize,
    concurrency: usize,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = Pubsub::new(pool.clone(), QUEUE.to_string()).ready_chunks(batch_size);
    let strategy = Strategy::new()
        .stream(listener)
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
async fn enqueue_from_requests(o: &Options, server: &Server) -> Value {
    let (db, pool) = database(server, "enqueue").await;

    async fn handler(State(mut storage): State<PostgresStorage<Bench>>) -> StatusCode {
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
    let before = db.count("SELECT count(*) FROM apalis.jobs").await;
    let mark = db.mark().await;
    let mut result = measure::wrk(o, &url, o.wrk_seconds).await;
    let stored = db.count("SELECT count(*) FROM apalis.jobs").await;
    result["pg"] = db.since(&mark, (stored - before) as u64).await;
    result["stored"] = json!(stored);
    let _ = stop.send(());
    let _ = server.await;
    shared::close(&pool).await;
    db.drop().await;
    result
}

/// 2 and 3: `--jobs` stored jobs run by a fresh worker.
async fn drain(o: &Options, server: &Server, name: &str, size: usize) -> Value {
    let (db, pool) = database(server, name).await;
    // Stored in one transaction before any worker exists.
    let stored = db.mark().await;
    let jobs = (0..o.jobs).map(|_| Bench { sent_us: now_us() }).collect();
    storage(&pool, size).push_bulk(jobs).await.unwrap();
    let store_pg = db.since(&stored, o.jobs).await;

    let probe = Probe::new(o.jobs);
    let mark = db.mark().await;
    let (cpu, began) = (cpu_us(), Instant::now());
    let (stop, worker) = spawn_worker(&pool, &probe, size, size);
    probe.all_ran(ALL_RAN_MINUTES).await;
    let (elapsed, cpu) = (began.elapsed(), cpu_us() - cpu);
    let recorded = db.recorded(DONE, o.jobs, began).await;
    let pg = db.since(&mark, o.jobs).await;
    let _ = stop.send(());
    let _ = worker.await;
    shared::close(&pool).await;
    let tables = db.tables(o.jobs).await;
    db.drop().await;
    let mut result = drained(o.jobs, elapsed, cpu, recorded);
    result["store"] = store_pg;
    result["pg"] = pg;
    result["tables"] = tables;
    result
}

/// 4: pickup latency of an idle worker, jobs pushed one at a time at a steady rate; also the
/// database's side of that steady push-and-run.
async fn pickup(o: &Options, server: &Server) -> Value {
    let (db, pool) = database(server, "pickup").await;
    let count = o.rate * o.latency_seconds;
    let probe = Probe::new(count);
    let (stop, worker) = spawn_worker(&pool, &probe, 16, 16);
    let mut pusher = storage(&pool, 16);
    // The worker's first fetch has found nothing: it is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mark = db.mark().await;
    let began = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / o.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticks.tick().await;
        pusher.push(Bench { sent_us: now_us() }).await.unwrap();
    }
    probe.all_ran(ALL_RAN_MINUTES).await;
    db.recorded(DONE, count, began).await;
    let pg = db.since(&mark, count).await;
    let _ = stop.send(());
    let _ = worker.await;
    drop(pusher);
    shared::close(&pool).await;
    let tables = db.tables(count).await;
    db.drop().await;
    let mut result = probe.latencies(count);
    result["pg"] = pg;
    result["tables"] = tables;
    result
}
