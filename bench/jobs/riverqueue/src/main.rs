//! River's Rust client (the `riverqueue` crate) on PostgreSQL, for the side-by-side jobs
//! benchmark (bench/harness.py, which runs bench/jobs/errands-postgres and
//! bench/jobs/apalis-postgres the same way). Prints one JSON object.
//!
//! Every measure gets its own database on the server (`--server`), created for it and dropped
//! after it, set up by River's own migrations, through a pool of sqlx's default size; the
//! database server's side of each measure (WAL, CPU, dead tuples) is taken as
//! ../shared/postgres.rs describes. The job is trivial: it counts itself and records its
//! pickup latency, so what is measured is the queue's machinery.
//!
//! River paces its fetches by a cooldown (100 ms by default, "throughput is limited by this
//! value", also the window in which its insert notifications are skipped): the client here
//! runs with the smallest one River allows, 1 ms (`BENCH_RIVER_FETCH_COOLDOWN_MS` sets
//! another), so that the cooldown is not what is measured. Everything else is River's
//! default: leader election and maintenance, a fetch poll of one second, completions
//! written in batches.
//!
//! 1. `enqueue`: an axum handler inserts one job per request (`client.insert(args)`), driven
//!    by wrk against 127.0.0.1 (2xx responses per second); the client works no queue.
//! 2. `one_at_a_time`: `--jobs` jobs stored beforehand (`insert_many`), then a client working
//!    its queue with one worker (`QueueConfig::new(1)`); jobs per second from the client's
//!    start until the last job ran.
//! 3. `batched`: the same with 16 workers, errands' default (River claims up to the free
//!    workers at each fetch).
//! 4. `pickup`: an idle client; jobs inserted one at a time at `--rate` per second for
//!    `--latency-seconds`; each job's start minus its insert time, p50 and p99.
//! 5. CPU per job: user + system time of the whole process during 2 and 3 (getrusage),
//!    divided by the jobs run.

#[path = "../../shared/measure.rs"]
mod measure;
#[path = "../../shared/postgres.rs"]
mod shared;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use measure::{Probe, cpu_us, drained, now_us};
use riverqueue::migrate::PostgresMigrator;
use riverqueue::{BoxError, Client, Job, JobArgs, QueueConfig, WorkContext, WorkOutcome, Workers};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{ALL_RAN_MINUTES, Db, Options, Server};
use sqlx::PgPool;

const COMPLETED: &str = "SELECT count(*) FROM river_job WHERE state = 'completed'";

/// The measured job: when it was inserted, in microseconds since the Unix epoch.
#[derive(Clone, Serialize, Deserialize, JobArgs)]
#[river(kind = "bench")]
struct Bench {
    sent_us: u64,
}

fn fetch_cooldown() -> Duration {
    let ms = std::env::var("BENCH_RIVER_FETCH_COOLDOWN_MS")
        .ok()
        .map_or(1, |v| v.parse().expect("milliseconds"));
    Duration::from_millis(ms)
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
        "system": "riverqueue",
        "postgres": server.version,
        "postgres_settings": server.settings,
        "fetch_cooldown_ms": fetch_cooldown().as_millis() as u64,
        "enqueue": enqueue,
        "one_at_a_time": one,
        "batched": batched,
        "pickup": pickup,
    });
    println!("{result}");
}

/// A fresh database set up by River's own migrations, and a pool on it.
async fn database(server: &Server, measure: &str) -> (Db, PgPool) {
    let db = server.create("river", measure).await;
    let pool = db.pool().await;
    PostgresMigrator::new(pool.clone())
        .migrate_up()
        .await
        .unwrap();
    db.checkpoint().await;
    (db, pool)
}

/// A client working the default queue with `workers` workers, each job reporting to `probe`.
fn worker_client(pool: &PgPool, probe: &Probe, workers: usize) -> Client {
    let mut registry = Workers::new();
    let probe = probe.clone();
    registry
        .add_fn(move |_: WorkContext, job: Job<Bench>| {
            let probe = probe.clone();
            async move {
                probe.ran(job.args.sent_us);
                Ok::<_, BoxError>(WorkOutcome::Complete)
            }
        })
        .unwrap();
    Client::builder(pool.clone())
        .workers(registry)
        .queue("default", QueueConfig::new(workers))
        .fetch_cooldown(fetch_cooldown())
        .build()
        .unwrap()
}

/// 1: inserts per second from HTTP requests; the client works no queue.
async fn enqueue_from_requests(o: &Options, server: &Server) -> Value {
    let (db, pool) = database(server, "enqueue").await;
    let client = Client::builder(pool.clone())
        .fetch_cooldown(fetch_cooldown())
        .build()
        .unwrap();

    async fn handler(State(client): State<Client>) -> StatusCode {
        let sent_us = now_us();
        match client.insert(Bench { sent_us }).await {
            Ok(_) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app = Router::new()
        .route("/enqueue", post(handler))
        .with_state(client.clone());
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
    let before = db.count("SELECT count(*) FROM river_job").await;
    let mark = db.mark().await;
    let mut result = measure::wrk(o, &url, o.wrk_seconds).await;
    let stored = db.count("SELECT count(*) FROM river_job").await;
    result["pg"] = db.since(&mark, (stored - before) as u64).await;
    result["stored"] = json!(stored);
    let _ = stop.send(());
    let _ = server.await;
    drop(client);
    shared::close(&pool).await;
    db.drop().await;
    result
}

/// 2 and 3: `--jobs` stored jobs run by a fresh client.
async fn drain(o: &Options, server: &Server, name: &str, workers: usize) -> Value {
    let (db, pool) = database(server, name).await;
    // Stored in one transaction before any worker exists, by a client that works nothing.
    let stored = db.mark().await;
    let inserter = Client::builder(pool.clone()).build().unwrap();
    inserter
        .insert_many((0..o.jobs).map(|_| Bench { sent_us: now_us() }))
        .await
        .unwrap();
    drop(inserter);
    let store_pg = db.since(&stored, o.jobs).await;

    let probe = Probe::new(o.jobs);
    let mark = db.mark().await;
    let (cpu, began) = (cpu_us(), Instant::now());
    let client = worker_client(&pool, &probe, workers);
    let mut run = client.start().unwrap();
    probe.all_ran(ALL_RAN_MINUTES).await;
    let (elapsed, cpu) = (began.elapsed(), cpu_us() - cpu);
    let recorded = db.recorded(COMPLETED, o.jobs, began).await;
    let pg = db.since(&mark, o.jobs).await;
    run.stop().await.unwrap();
    drop((run, client));
    shared::close(&pool).await;
    let tables = db.tables(o.jobs).await;
    db.drop().await;
    let mut result = drained(o.jobs, elapsed, cpu, recorded);
    result["store"] = store_pg;
    result["pg"] = pg;
    result["tables"] = tables;
    result
}

/// 4: pickup latency of an idle client, jobs inserted one at a time at a steady rate; also
/// the database's side of that steady insert-and-run.
async fn pickup(o: &Options, server: &Server) -> Value {
    let (db, pool) = database(server, "pickup").await;
    let count = o.rate * o.latency_seconds;
    let probe = Probe::new(count);
    let client = worker_client(&pool, &probe, 16);
    let mut run = client.start().unwrap();
    run.wait_ready().await.unwrap();
    // The client's first fetch has found nothing: it is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mark = db.mark().await;
    let began = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / o.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticks.tick().await;
        client.insert(Bench { sent_us: now_us() }).await.unwrap();
    }
    probe.all_ran(ALL_RAN_MINUTES).await;
    db.recorded(COMPLETED, count, began).await;
    let pg = db.since(&mark, count).await;
    run.stop().await.unwrap();
    drop((run, client));
    shared::close(&pool).await;
    let tables = db.tables(count).await;
    db.drop().await;
    let mut result = probe.latencies(count);
    result["pg"] = pg;
    result["tables"] = tables;
    result
}
