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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use errands::durable::{NewJob, SqliteStore};
use errands::jobs::{Job, JobContext};
use errands::{BoxError, Errands};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use tokio::sync::Notify;

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

/// What the jobs report: how many ran, their pickup latencies, and when the last one ran.
#[derive(Clone)]
struct Probe(Arc<ProbeInner>);

struct ProbeInner {
    target: u64,
    ran: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    done: Notify,
}

impl Probe {
    fn new(target: u64) -> Self {
        Probe(Arc::new(ProbeInner {
            target,
            ran: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            done: Notify::new(),
        }))
    }

    fn ran(&self, sent_us: u64) {
        let latency = now_us().saturating_sub(sent_us);
        self.0.latencies_us.lock().unwrap().push(latency);
        if self.0.ran.fetch_add(1, Ordering::AcqRel) + 1 == self.0.target {
            self.0.done.notify_one();
        }
    }

    /// Waits until `target` jobs ran.
    async fn all_ran(&self) {
        tokio::time::timeout(Duration::from_secs(600), self.0.done.notified())
            .await
            .expect("every job ran within 10 minutes");
    }
}

struct Options {
    dir: PathBuf,
    jobs: u64,
    synchronous: SqliteSynchronous,
    wrk_seconds: u64,
    wrk_warmup: u64,
    wrk_connections: u64,
    wrk_cpu: Option<String>,
    rate: u64,
    latency_seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        dir: PathBuf::from("target/bench-jobs-data/errands"),
        jobs: 20_000,
        synchronous: SqliteSynchronous::Normal,
        wrk_seconds: 10,
        wrk_warmup: 2,
        wrk_connections: 64,
        wrk_cpu: None,
        rate: 200,
        latency_seconds: 5,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            panic!("options come as `--name value` pairs");
        };
        let number = || value.parse::<u64>().expect("a whole number");
        match key.as_str() {
            "--dir" => o.dir = PathBuf::from(value),
            "--jobs" => o.jobs = number(),
            "--synchronous" => o.synchronous = value.parse().expect("off, normal, full or extra"),
            "--wrk-seconds" => o.wrk_seconds = number(),
            "--wrk-warmup" => o.wrk_warmup = number(),
            "--wrk-connections" => o.wrk_connections = number(),
            "--wrk-cpu" => o.wrk_cpu = Some(value.clone()),
            "--rate" => o.rate = number(),
            "--latency-seconds" => o.latency_seconds = number(),
            _ => panic!("unknown option {key}"),
        }
    }
    o
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    std::fs::create_dir_all(&o.dir).unwrap();
    let enqueue = enqueue_from_requests(&o).await;
    let one = drain(&o, "one-at-a-time", Some(1)).await;
    let batched = drain(&o, "batched", None).await;
    let pickup = pickup(&o).await;
    let result = json!({
        "system": "errands",
        "sqlx": "0.9",
        "synchronous": format!("{:?}", o.synchronous).to_lowercase(),
        "enqueue": enqueue,
        "one_at_a_time": one,
        "batched": batched,
        "pickup": pickup,
    });
    println!("{result}");
}

async fn pool(o: &Options, name: &str) -> (SqlitePool, PathBuf) {
    let path = o.dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(o.synchronous);
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
        wrk(o, &url, o.wrk_warmup).await;
    }
    let mut result = wrk(o, &url, o.wrk_seconds).await;
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
    probe.all_ran().await;
    let (elapsed, cpu) = (began.elapsed(), cpu_us() - cpu);
    let recorded = recorded(&pool, o.jobs, began).await;
    errands.shutdown().await;
    pool.close().await;
    json!({
        "jobs": o.jobs,
        "seconds": elapsed.as_secs_f64(),
        "jobs_per_s": o.jobs as f64 / elapsed.as_secs_f64(),
        "cpu_us_per_job": cpu as f64 / o.jobs as f64,
        "recorded_s": recorded,
    })
}

/// Seconds from `began` until the store shows every job succeeded (checked after the timed
/// window, so that the check itself does not load the database while it is measured).
async fn recorded(pool: &SqlitePool, jobs: u64, began: Instant) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM errands_jobs WHERE state = 'succeeded'")
                .fetch_one(pool)
                .await
                .unwrap();
        if done as u64 >= jobs {
            return began.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "{done} of {jobs} jobs recorded");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
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
    probe.all_ran().await;
    errands.shutdown().await;
    pool.close().await;
    let mut latencies = probe.0.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    json!({
        "jobs": count,
        "p50_ms": percentile(&latencies, 0.50) / 1000.0,
        "p99_ms": percentile(&latencies, 0.99) / 1000.0,
        "max_ms": percentile(&latencies, 1.0) / 1000.0,
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Runs wrk for `seconds` against `url` (POST), on `--wrk-cpu` when given.
async fn wrk(o: &Options, url: &str, seconds: u64) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../post.lua");
    let mut command = match &o.wrk_cpu {
        Some(cpu) => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", cpu, "wrk"]);
            c
        }
        None => tokio::process::Command::new("wrk"),
    };
    command
        .args(["-t1", &format!("-c{}", o.wrk_connections)])
        .args([&format!("-d{seconds}s"), "--timeout", "5s", "-s"])
        .arg(script)
        .arg(url);
    let out = command.output().await.expect("wrk runs");
    assert!(out.status.success(), "wrk failed: {out:?}");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Requests, 2xx responses and their rate from wrk's report.
fn parse_wrk(out: &str) -> Value {
    let after = |label: &str| -> f64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map_or(0.0, |rest| {
                rest.split_whitespace().next().unwrap().parse().unwrap()
            })
    };
    let requests: f64 = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .expect("wrk's request count")
        .parse()
        .unwrap();
    let rps = after("Requests/sec:");
    let non_2xx = after("Non-2xx or 3xx responses:");
    let socket_errors: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0.0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        });
    let ok = requests - non_2xx;
    json!({
        "requests": requests,
        "ok": ok,
        "errors": non_2xx + socket_errors,
        "ok_per_s": if requests > 0.0 { rps * ok / requests } else { 0.0 },
    })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// User plus system CPU time of this process so far, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}
