//! Reliability under load (docs/RELIABILITY.md), against the demo as a real process over real sockets,
//! with faults injected through its drills (`--fault-injection`):
//!
//! * the fault soak: after each round, the accounting invariant holds exactly, the stats and
//!   the central reports match, outcome by outcome, exactly what the clients asked for, every
//!   error body has the schema, no 5xx body shows internal text, the server still serves, and
//!   its memory stays flat from round to round;
//! * SIGTERM in the middle of a load, once and twice.
//!
//! The full soak (64 connections, 30 s, three rounds) is ignored by default:
//!
//! ```text
//! cargo test -p errands-demo --test soak -- --ignored --nocapture
//! ```
//!
//! `ERRANDS_SOAK_SECONDS` and `ERRANDS_SOAK_CONNECTIONS` change its length and width. A short
//! soak and the shutdown tests run with the rest of the suite.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod load;
mod logs;
mod raw;
mod requests;

use std::sync::Arc;
use std::time::Duration;

use common::Demo;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use check::Outcomes;
use load::Plan;
use logs::Logs;
use requests::Mix;

/// The demo processes of these tests run one at a time: each takes both cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

struct Soak {
    connections: usize,
    seconds: u64,
    rounds: u64,
    /// Whether RSS after the last round must be within 10 % of RSS after the first.
    flat_memory: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full soak takes about two minutes; run it with --ignored --nocapture"]
async fn fault_soak() {
    soak(Soak {
        connections: env_or("ERRANDS_SOAK_CONNECTIONS", 64),
        seconds: env_or("ERRANDS_SOAK_SECONDS", 30),
        rounds: 3,
        flat_memory: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fault_soak_keeps_the_accounting_exact() {
    soak(Soak {
        connections: 16,
        seconds: 2,
        rounds: 2,
        flat_memory: false,
    })
    .await;
}

async fn soak(soak: Soak) {
    let _turn = ONE_AT_A_TIME.lock().await;
    assert!(soak.connections >= 4, "a soak needs at least 4 connections");
    let mut demo = Demo::start(&["--fault-injection"]).await;
    let logs = Logs::follow(demo.take_lines());
    let buyer = demo
        .post("/signups", json!({"email": "buyer@example.com"}))
        .await;
    assert_eq!(buyer.status(), 201, "the buyer of the orders is user 1");
    let mut stats = idle(&demo).await;
    let mut reports = mark(&demo, &logs, "mark-start").await;
    let mut rss = Vec::new();
    let extra = (soak.connections / 16).max(1);
    println!(
        "round | requests | req/s | tasks | failed panicked timed_out skipped | on_error failures | slow left-mid-request left-mid-body | RSS MiB"
    );
    for round in 1..=soak.rounds {
        let plan = Plan {
            mix: Mix::Faults,
            normal: soak.connections - 2 * extra,
            slow: extra,
            leaving: extra,
            until: Instant::now() + Duration::from_secs(soak.seconds),
            until_closed: false,
            warmed_up: None,
        };
        let started = Instant::now();
        let tally = load::run(&demo.addr, &plan, round).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert!(
            tally.problems.is_empty() && tally.truncated == 0,
            "round {round}: {:#?}",
            tally
        );

        let after = idle(&demo).await;
        check::settled(&after).unwrap();
        let reported = mark(&demo, &logs, &format!("mark-{round}")).await;
        let counted = Outcomes::from_stats(&after, &stats);
        let expected = tally.expected;
        assert_eq!(
            counted,
            Outcomes {
                error_handlers: 0,
                ..expected
            },
            "round {round}: the stats count exactly the outcomes the load asked for"
        );
        assert_eq!(
            reported - reports,
            expected,
            "round {round}: each reported outcome is reported exactly once"
        );
        assert_eq!(after["rejected"], stats["rejected"], "nothing was refused");
        assert_eq!(logs.seen().runtime_errors, 0, "{}", logs.tail());

        let memory = rss_mib(demo.pid());
        rss.push(memory);
        let tasks = after["scheduled"].as_u64().unwrap() - stats["scheduled"].as_u64().unwrap();
        println!(
            "{round} | {} | {:.0} | {tasks} | {} {} {} {} | {} | {} {} {} | {memory:.1}",
            tally.answered + tally.left_mid_request + tally.left_mid_body,
            tally.answered as f64 / elapsed,
            expected.failed,
            expected.panicked,
            expected.timed_out,
            expected.skipped,
            expected.error_handlers,
            tally.slow,
            tally.left_mid_request,
            tally.left_mid_body,
        );
        println!("  statuses: {:?}", tally.statuses);
        (stats, reports) = (after, reported);
    }

    let products = demo.get("/products").await;
    assert_eq!(products.status(), 200, "the server still serves");
    let signup = demo
        .post("/signups", json!({"email": "after@example.com"}))
        .await;
    assert_eq!(signup.status(), 201, "the server still writes");
    if soak.flat_memory {
        let (first, last) = (rss[0], rss[rss.len() - 1]);
        assert!(
            last <= first * 1.10,
            "RSS grew from {first:.1} MiB after the first round to {last:.1} MiB"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_or_cleanly_closes_and_reports_every_stopped_task() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut demo = Demo::start(&["--fault-injection", "--shutdown-deadline-ms", "1500"]).await;
    let logs = Logs::follow(demo.take_lines());
    let load = ShutdownLoad::start(&demo).await;
    demo.signal("-TERM");
    let tally = load.finish().await;
    let status = demo.finish().await;
    // Shielded tasks still running at the deadline are aborted: the exit status says so, and
    // so does the last line.
    let lost = status.code() == Some(3);
    assert!(lost || status.success(), "{status:?}");
    let last = if lost {
        "stopped with work lost"
    } else {
        "stopped"
    };
    let seen = logs.until("the stop", |s| s.line_of(last).is_some()).await;

    assert_clean_answers(&tally);
    let (expected, reported) = (tally.expected, seen.reports);
    assert!(expected.aborted > 0 && expected.cancelled > 0, "{tally:#?}");
    assert_eq!(
        reported.aborted, expected.aborted,
        "exactly the shielded tasks still working at the deadline are aborted"
    );
    assert!(
        (expected.cancelled..=expected.cancelled + tally.maybe_cancelled)
            .contains(&reported.cancelled),
        "every long unshielded task is cancelled, and only unshielded tasks are: {reported:?}, {tally:#?}"
    );
    assert_eq!(
        reported.tasks(),
        reported.aborted + reported.cancelled,
        "nothing else failed"
    );
    assert_lifecycle(&seen, &reported);
    println!(
        "one SIGTERM: {} responses, {} connections closed unanswered, {} truncated; {} tasks aborted, {} cancelled",
        tally.answered, tally.closed, tally.truncated, reported.aborted, reported.cancelled
    );
    let deadline = seen
        .line_of("shutdown: aborting")
        .expect("an abort at the deadline");
    assert!(deadline > seen.line_of("shutdown: cancelling").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_under_load_aborts_at_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A deadline far beyond the test's patience: only the second signal can end the wait.
    let mut demo = Demo::start(&["--fault-injection", "--shutdown-deadline-ms", "600000"]).await;
    let logs = Logs::follow(demo.take_lines());
    let load = ShutdownLoad::start(&demo).await;
    demo.signal("-TERM");
    let tally = load.finish().await;
    logs.until("the wait for shielded tasks", |s| {
        s.line_of("shutdown: cancelling").is_some()
    })
    .await;
    let second = Instant::now();
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert_eq!(status.code(), Some(3), "the abort lost work: {status:?}");
    let exit = second.elapsed();
    // Past errands' abort grace (5 s), the abort would have waited for something.
    assert!(
        exit < Duration::from_secs(5),
        "the exit took {exit:?}: the abort waits for no deadline"
    );
    let seen = logs
        .until("the stop", |s| s.line_of("stopped").is_some())
        .await;

    assert_clean_answers(&tally);
    assert!(
        (tally.expected.aborted..=tally.expected.aborted + tally.maybe_aborted)
            .contains(&seen.reports.aborted),
        "every long shielded task, and only shielded tasks, are aborted: {:?}, {tally:#?}",
        seen.reports
    );
    assert!(seen.line_of("second shutdown signal").is_some());
    assert_lifecycle(&seen, &seen.reports);
    println!(
        "two SIGTERMs: {} responses, {} connections closed unanswered, {} truncated; {} tasks aborted, {} cancelled; exit {exit:?} after the second",
        tally.answered, tally.closed, tally.truncated, seen.reports.aborted, seen.reports.cancelled
    );
}

/// Drills from 30 keep-alive and 2 slow clients until the server closes their connections:
/// short tasks, shielded tasks that finish in 20 ms, and, in each client's first requests,
/// long shielded and unshielded tasks.
struct ShutdownLoad {
    load: tokio::task::JoinHandle<load::Tally>,
}

impl ShutdownLoad {
    const CLIENTS: usize = 32;

    /// Starts the load; returns once every client has sent its long tasks.
    async fn start(demo: &Demo) -> ShutdownLoad {
        let warmed_up = Arc::new(Semaphore::new(0));
        let plan = Plan {
            mix: Mix::Shutdown,
            normal: Self::CLIENTS - 2,
            slow: 2,
            leaving: 0,
            until: Instant::now() + Duration::from_secs(60),
            until_closed: true,
            warmed_up: Some(warmed_up.clone()),
        };
        let addr = demo.addr.clone();
        let load = tokio::spawn(async move { load::run(&addr, &plan, 1).await });
        let warm = warmed_up.acquire_many(Self::CLIENTS as u32);
        let warm = tokio::time::timeout(common::PATIENCE, warm).await;
        assert!(warm.is_ok(), "the clients did not get going");
        ShutdownLoad { load }
    }

    /// Waits for every client to stop (the server closed its connection).
    async fn finish(self) -> load::Tally {
        let tally = tokio::time::timeout(common::PATIENCE, self.load).await;
        tally
            .expect("the clients stop once the server is gone")
            .unwrap()
    }
}

/// Every request got a complete, valid response, or its connection closed before any byte
/// of one; the load did end with the server closing.
fn assert_clean_answers(tally: &load::Tally) {
    assert!(
        tally.problems.is_empty() && tally.truncated == 0,
        "{tally:#?}"
    );
    assert!(tally.answered > 0 && tally.closed > 0, "{tally:#?}");
}

/// The shutdown ran in order: every task report before teardown, and the summary agrees
/// with the reports.
fn assert_lifecycle(seen: &logs::Seen, reported: &Outcomes) {
    let teardown = seen
        .line_of("teardown: database closed")
        .expect("teardown ran");
    assert!(seen.last_task_report < teardown, "{seen:#?}");
    let (complete, summary) = seen.lifecycle("shutdown: complete").unwrap();
    assert!(teardown < complete);
    assert_eq!(summary["cancelled"], reported.cancelled);
    assert_eq!(summary["aborted"], reported.aborted);
    assert_eq!(seen.runtime_errors, 0);
}

/// The stats once nothing is in flight (`GET /ops/idle`, outside the errands layer).
async fn idle(demo: &Demo) -> Value {
    let idle = demo.http.get(demo.url("/ops/idle")).send();
    let response = tokio::time::timeout(Duration::from_secs(120), idle)
        .await
        .expect("the service settles")
        .unwrap();
    response.json().await.unwrap()
}

/// Sends a request that is reported with request id `name`, and waits until the logs show
/// it: every line written before it has then been read. Returns the reports seen by then.
async fn mark(demo: &Demo, logs: &Logs, name: &str) -> Outcomes {
    let response = demo
        .http
        .get(demo.url("/mark"))
        .header("x-request-id", name)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    logs.until(name, |s| s.marks.iter().any(|m| m == name))
        .await
        .reports
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// The value of environment variable `name`, or `default` when it is not set.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}
