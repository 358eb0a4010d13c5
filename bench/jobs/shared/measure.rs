//! What every side of the durable jobs benchmark measures the same way (bench/jobs/errands,
//! bench/jobs/apalis, bench/jobs/errands-postgres, bench/jobs/apalis-postgres and
//! bench/jobs/riverqueue, each including this file with `#[path]`): the options, the probe
//! the jobs report to, wrk, the process's CPU, and the shape of a drain's result.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::Notify;

/// What the jobs report: how many ran, their pickup latencies, and when the last one ran.
#[derive(Clone)]
pub struct Probe(Arc<ProbeInner>);

struct ProbeInner {
    target: u64,
    ran: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    done: Notify,
}

impl Probe {
    pub fn new(target: u64) -> Self {
        Probe(Arc::new(ProbeInner {
            target,
            ran: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            done: Notify::new(),
        }))
    }

    pub fn ran(&self, sent_us: u64) {
        let latency = now_us().saturating_sub(sent_us);
        self.0.latencies_us.lock().unwrap().push(latency);
        if self.0.ran.fetch_add(1, Ordering::AcqRel) + 1 == self.0.target {
            self.0.done.notify_one();
        }
    }

    /// Waits until `target` jobs ran, for at most `minutes`.
    pub async fn all_ran(&self, minutes: u64) {
        tokio::time::timeout(Duration::from_secs(minutes * 60), self.0.done.notified())
            .await
            .unwrap_or_else(|e| panic!("every job ran within {minutes} minutes: {e:?}"));
    }

    /// p50, p99 and the largest pickup latency, in milliseconds.
    pub fn latencies(&self, jobs: u64) -> Value {
        let mut latencies = self.0.latencies_us.lock().unwrap().clone();
        latencies.sort_unstable();
        json!({
            "jobs": jobs,
            "p50_ms": percentile(&latencies, 0.50) / 1000.0,
            "p99_ms": percentile(&latencies, 0.99) / 1000.0,
            "max_ms": percentile(&latencies, 1.0) / 1000.0,
        })
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// The options every side takes, and `store`, those of its storage.
pub struct Options<S> {
    pub jobs: u64,
    pub wrk_seconds: u64,
    pub wrk_warmup: u64,
    pub wrk_connections: u64,
    pub wrk_cpu: Option<String>,
    pub rate: u64,
    pub latency_seconds: u64,
    pub store: S,
}

/// The options from the command line (`--name value` pairs); `own` takes the storage's
/// options into `store` and answers whether it knew the name.
pub fn options<S>(store: S, mut own: impl FnMut(&mut S, &str, &str) -> bool) -> Options<S> {
    let mut o = Options {
        jobs: 20_000,
        wrk_seconds: 10,
        wrk_warmup: 2,
        wrk_connections: 64,
        wrk_cpu: None,
        rate: 200,
        latency_seconds: 5,
        store,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            panic!("options come as `--name value` pairs");
        };
        let number = || value.parse::<u64>().expect("a whole number");
        match key.as_str() {
            "--jobs" => o.jobs = number(),
            "--wrk-seconds" => o.wrk_seconds = number(),
            "--wrk-warmup" => o.wrk_warmup = number(),
            "--wrk-connections" => o.wrk_connections = number(),
            "--wrk-cpu" => o.wrk_cpu = Some(value.clone()),
            "--rate" => o.rate = number(),
            "--latency-seconds" => o.latency_seconds = number(),
            key if own(&mut o.store, key, value) => {}
            _ => panic!("unknown option {key}"),
        }
    }
    o
}

/// A drain's result: its jobs, how long they took to run, at what rate, the process's CPU per
/// job over that time, and when the store showed them all done.
pub fn drained(jobs: u64, elapsed: Duration, cpu_us: u64, recorded_s: f64) -> Value {
    json!({
        "jobs": jobs,
        "seconds": elapsed.as_secs_f64(),
        "jobs_per_s": jobs as f64 / elapsed.as_secs_f64(),
        "cpu_us_per_job": cpu_us as f64 / jobs as f64,
        "recorded_s": recorded_s,
    })
}

/// Runs wrk for `seconds` against `url` (POST), on `--wrk-cpu` when given.
pub async fn wrk<S>(o: &Options<S>, url: &str, seconds: u64) -> Value {
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

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// User plus system CPU time of this process so far, in microseconds.
pub fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}
