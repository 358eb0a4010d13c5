//! The semantics page, "Retries, timeouts, limits": exact counts under paused time.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use common::{Probe, assert_balanced, idle, probe_reporter, reporting_to};
use errands::testing::TestClient;
use errands::{
    Errands, ErrorHandler, ErrorHandlers, RetryPolicy, ScheduleError, TaskError, TaskInfo, Tasks,
};
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("connection reset")]
struct Transient;

#[derive(Debug, thiserror::Error)]
#[error("invalid address")]
struct Permanent;

#[derive(Debug, thiserror::Error)]
#[error("delivery failed")]
struct DeliveryFailed {
    #[source]
    source: Transient,
}

fn runtime(probe: &Probe) -> Errands {
    Errands::builder()
        .without_tracing_reporter()
        .reporter(probe_reporter(probe))
        .build()
}

fn reports(probe: &Probe) -> Vec<String> {
    probe
        .events()
        .into_iter()
        .filter(|e| e.starts_with("report:"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fails_twice_then_succeeds_runs_three_times_and_counts_one_success() {
    let probe = Probe::new();
    let errands = runtime(&probe);
    let runs = Arc::new(AtomicU32::new(0));
    let retried = Arc::new(Mutex::new(Vec::new()));
    let (counter, seen) = (runs.clone(), retried.clone());
    errands
        .tasks()
        .immediate()
        .name("flaky")
        .on_error(|_, _| common::panics())
        .retry(RetryPolicy::exponential(Duration::from_secs(1)))
        .on_retry(move |info, _| seen.lock().unwrap().push(info.attempt()))
        .schedule(move || {
            let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { if run < 3 { Err(Transient) } else { Ok(()) } }
        })
        .unwrap();
    idle(&errands).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(*retried.lock().unwrap(), [1, 2]);
    let stats = errands.stats();
    assert_eq!((stats.scheduled, stats.succeeded, stats.failed), (1, 1, 0));
    assert!(
        reports(&probe).is_empty(),
        "a success after retries is not a failure"
    );
    assert_balanced(&errands);
}

#[tokio::test(start_paused = true)]
async fn always_failing_runs_max_attempts_with_delays_within_the_policy() {
    let probe = Probe::new();
    let errands = runtime(&probe);
    let policy = RetryPolicy::exponential(Duration::from_secs(1))
        .max_attempts(4)
        .multiplier(3.0)
        .max_delay(Duration::from_secs(5))
        .jitter(0.25);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(Mutex::new(Vec::new()));
    let (record, handled_in) = (starts.clone(), handled.clone());
    errands
        .tasks()
        .immediate()
        .name("doomed")
        .on_error(move |info: TaskInfo, error: TaskError| {
            handled_in
                .lock()
                .unwrap()
                .push((info.attempt(), error.find::<Transient>().is_some()));
            async {}
        })
        .retry(policy.clone())
        .schedule(move || {
            record.lock().unwrap().push(Instant::now());
            async { Err::<(), _>(Transient) }
        })
        .unwrap();
    idle(&errands).await;

    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 4, "exactly max_attempts runs");
    for (i, pair) in starts.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let (low, high) = policy.delay_bounds(i as u32 + 1);
        assert!(
            low <= waited && waited <= high,
            "delay {i}: {waited:?} not in {low:?}..={high:?}"
        );
    }
    // 1 s, 3 s, then 9 s capped at 5 s.
    assert_eq!(
        policy.delay_bounds(3),
        (Duration::from_millis(3750), Duration::from_secs(5))
    );
    assert_eq!(
        *handled.lock().unwrap(),
        [(4, true)],
        "on_error once, after the last attempt"
    );
    assert_eq!(reports(&probe), ["report:task:failed:doomed"]);
    assert_eq!(errands.stats().failed, 1);
    assert_balanced(&errands);
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_error_runs_once() {
    let probe = Probe::new();
    let errands = runtime(&probe);
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    errands
        .tasks()
        .immediate()
        .name("bad_address")
        .retry(
            RetryPolicy::exponential(Duration::from_secs(1))
                .max_attempts(5)
                .retry_on::<Transient>(),
        )
        .schedule(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Permanent) }
        })
        .unwrap();
    // A retryable type deep in the chain does count.
    let chained = Arc::new(AtomicU32::new(0));
    let counter = chained.clone();
    errands
        .tasks()
        .immediate()
        .retry(
            RetryPolicy::exponential(Duration::from_secs(1))
                .max_attempts(3)
                .retry_on::<Transient>(),
        )
        .schedule(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(DeliveryFailed { source: Transient }) }
        })
        .unwrap();
    idle(&errands).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(chained.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn panics_are_not_retried_by_default_but_timeouts_are() {
    let probe = Probe::new();
    let errands = runtime(&probe);
    let (panics, timeouts) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let counter = panics.clone();
    errands
        .tasks()
        .immediate()
        .name("buggy")
        .retry(RetryPolicy::exponential(Duration::from_secs(1)).max_attempts(3))
        .schedule(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            common::panics()
        })
        .unwrap();
    let counter = timeouts.clone();
    errands
        .tasks()
        .immediate()
        .name("slow")
        .timeout(Duration::from_secs(2))
        .retry(RetryPolicy::exponential(Duration::from_secs(1)).max_attempts(3))
        .schedule(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)) // simulated slow work
        })
        .unwrap();
    idle(&errands).await;
    assert_eq!(
        (
            panics.load(Ordering::SeqCst),
            timeouts.load(Ordering::SeqCst)
        ),
        (1, 3)
    );
    let stats = errands.stats();
    assert_eq!((stats.panicked, stats.timed_out), (1, 1));
    assert_eq!(reports(&probe).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failing_on_error_and_a_panicking_on_retry_are_contained_and_reported_once() {
    let probe = Probe::new();
    let errands = runtime(&probe);
    errands
        .tasks()
        .immediate()
        .name("cycle")
        .on_error(|_, _| async { Err::<(), _>(std::io::Error::other("tracker down")) })
        .retry(RetryPolicy::exponential(Duration::from_secs(1)).max_attempts(3))
        .on_retry(|info, _| assert!(info.attempt() != 2, "hook bug"))
        .schedule(|| async { Err::<(), _>(Transient) })
        .unwrap();
    idle(&errands).await;
    errands.tasks().schedule(async {}).unwrap();
    idle(&errands).await;
    let mut seen = reports(&probe);
    seen.sort();
    assert_eq!(
        seen,
        [
            "report:error_handler:failed:cycle",
            "report:error_handler:panicked:cycle",
            "report:task:failed:cycle",
        ]
    );
    assert_eq!((errands.stats().failed, errands.stats().succeeded), (1, 1));
    assert_balanced(&errands);
}

#[tokio::test(start_paused = true)]
async fn shielded_tasks_keep_retrying_during_shutdown_until_the_deadline() {
    let probe = Probe::new();
    let errands = reporting_to(&probe)
        .shutdown_deadline(Duration::from_secs(20))
        .build();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    errands
        .tasks()
        .immediate()
        .name("settle_payment")
        .shield()
        .retry(
            RetryPolicy::exponential(Duration::from_secs(2))
                .max_attempts(100)
                .multiplier(1.0)
                .jitter(0.0),
        )
        .schedule(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Transient) }
        })
        .unwrap();
    let before = runs.load(Ordering::SeqCst);
    let summary = errands.shutdown().await;
    let after = runs.load(Ordering::SeqCst);
    assert!(
        after >= before + 9,
        "kept retrying during shutdown: {before} -> {after}"
    );
    assert_eq!(summary.aborted, 1);
    assert!(probe.has("report:task:aborted:settle_payment"));
}

#[tokio::test]
async fn limits_hold_and_the_next_schedule_is_a_503_overloaded() {
    let probe = Probe::new();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_running(2)
        .max_queued(3)
        .build();
    let app = Router::new()
        .route(
            "/work",
            post(|tasks: Tasks| async move {
                tasks.schedule(async {})?;
                Ok::<_, errands::Error>("scheduled")
            }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for i in 0..5 {
        let (probe, current, peak) = (probe.clone(), current.clone(), peak.clone());
        errands
            .tasks()
            .schedule(async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                probe.hit(format!("running {i}"));
                probe.gate("release").await;
                current.fetch_sub(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    // N + M = 5 unfinished tasks: the sixth is refused.
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::Overloaded)
    );
    let response = client.post("/work").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.json()["code"], "overloaded");
    assert_eq!(
        response.json()["request_id"],
        response.request_id().unwrap().as_str()
    );
    probe.reached("running 1").await;
    tokio::task::yield_now().await;
    let stats = errands.stats();
    assert_eq!(
        (stats.running, stats.queued, stats.rejected),
        (2, 3, 2),
        "{stats:?}"
    );

    probe.open("release");
    idle(&errands).await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than max_running at once"
    );
    assert_eq!(errands.stats().succeeded, 5);
    // Everything a finished task held is released: the full capacity is available again.
    for _ in 0..5 {
        errands
            .tasks()
            .schedule(std::future::pending::<()>())
            .unwrap();
    }
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::Overloaded)
    );
}

#[tokio::test]
async fn finished_tasks_free_their_futures_and_handlers() {
    struct DropProbe(Probe, &'static str);
    impl Drop for DropProbe {
        fn drop(&mut self) {
            self.0.hit(self.1);
        }
    }
    let probe = Probe::new();
    let errands = Errands::builder().without_tracing_reporter().build();
    let in_task = DropProbe(probe.clone(), "future freed");
    let in_handler = DropProbe(probe.clone(), "handler freed");
    errands
        .tasks()
        .immediate()
        .on_error(move |_, _| {
            let _keep = &in_handler;
            async {}
        })
        .schedule(async move {
            let _keep = in_task;
            Err::<(), _>("boom")
        })
        .unwrap();
    idle(&errands).await;
    assert!(probe.has("future freed") && probe.has("handler freed"));
    assert_balanced(&errands);
}

#[tokio::test]
async fn the_blocking_limit_is_enforced() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_blocking(2)
        .build();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut releases = Vec::new();
    for i in 0..5 {
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        releases.push(release_tx);
        let (started_tx, current, peak) = (started_tx.clone(), current.clone(), peak.clone());
        errands
            .tasks()
            .immediate()
            .name(format!("blocking {i}"))
            .schedule_blocking(move || {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                started_tx.send(i).unwrap();
                release.recv().unwrap(); // blocks this thread until the test releases it
                current.fetch_sub(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    let first = started.recv().await.unwrap();
    let second = started.recv().await.unwrap();
    let stats = errands.stats();
    assert_eq!((stats.running, stats.queued), (2, 3), "{stats:?}");
    releases[first].send(()).unwrap();
    let third = started.recv().await.unwrap();
    for i in [second, third] {
        releases[i].send(()).unwrap();
    }
    for _ in 0..2 {
        let next = started.recv().await.unwrap();
        releases[next].send(()).unwrap();
    }
    idle(&errands).await;
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(errands.stats().succeeded, 5);
}

#[tokio::test(start_paused = true)]
async fn error_handlers_route_by_type_along_the_chain_with_a_fallback() {
    let routed = Arc::new(Mutex::new(Vec::new()));
    let record = |label: &'static str| {
        let routed = routed.clone();
        move |info: TaskInfo, _: TaskError| {
            routed.lock().unwrap().push((info.name().to_owned(), label));
            async {}
        }
    };
    let registry: ErrorHandler = ErrorHandlers::new()
        .on::<Transient>(record("transient"))
        .on::<Permanent>(record("permanent"))
        .on_panic(record("panic"))
        .on_timeout(record("timeout"))
        .fallback(record("fallback"))
        .into();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .task_error_handler(registry)
        .build();
    let tasks = errands.tasks();
    tasks
        .immediate()
        .name("a")
        .schedule(async { Err::<(), _>(DeliveryFailed { source: Transient }) })
        .unwrap();
    tasks
        .immediate()
        .name("b")
        .schedule(async { Err::<(), _>(Permanent) })
        .unwrap();
    tasks
        .immediate()
        .name("c")
        .schedule(common::panics())
        .unwrap();
    tasks
        .immediate()
        .name("d")
        .timeout(Duration::from_secs(1))
        .schedule(tokio::time::sleep(Duration::from_secs(5))) // simulated slow work
        .unwrap();
    tasks
        .immediate()
        .name("e")
        .schedule(async { Err::<(), _>("other") })
        .unwrap();
    // Per task, a registry without a fallback leaves unmatched errors to the report alone.
    tasks
        .immediate()
        .name("f")
        .error_handler(ErrorHandlers::new().on::<Transient>(record("own")))
        .schedule(async { Err::<(), _>(Permanent) })
        .unwrap();
    idle(&errands).await;
    let mut routed = routed.lock().unwrap().clone();
    routed.sort();
    let expected: Vec<(String, &str)> = [
        ("a", "transient"),
        ("b", "permanent"),
        ("c", "panic"),
        ("d", "timeout"),
        ("e", "fallback"),
    ]
    .into_iter()
    .map(|(n, l)| (n.to_owned(), l))
    .collect();
    assert_eq!(routed, expected);
}

#[tokio::test]
async fn a_task_keeps_its_slot_through_its_on_error_handler() {
    let probe = Probe::new();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_running(1)
        .build();
    let gate = probe.clone();
    errands
        .tasks()
        .immediate()
        .on_error(move |_, _| {
            let gate = gate.clone();
            async move {
                gate.hit("handler waiting");
                gate.gate("handler").await;
            }
        })
        .schedule(async { Err::<(), _>(Transient) })
        .unwrap();
    let next = probe.clone();
    errands
        .tasks()
        .schedule(async move { next.hit("next ran") })
        .unwrap();
    probe.reached("handler waiting").await;
    tokio::task::yield_now().await;
    let stats = errands.stats();
    assert_eq!((stats.running, stats.queued), (1, 1), "{stats:?}");
    assert!(!probe.has("next ran"));
    probe.open("handler");
    idle(&errands).await;
    assert!(probe.index("open:handler") < probe.index("next ran"));
}

#[tokio::test]
async fn a_blocking_closure_past_its_timeout_keeps_the_runtime_busy_until_it_returns() {
    let probe = Probe::new();
    let errands = reporting_to(&probe).build();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let done = probe.clone();
    errands
        .tasks()
        .immediate()
        .name("stuck_io")
        .timeout(Duration::from_millis(10))
        .schedule_blocking(move || {
            release.recv().unwrap(); // blocks this thread until the test releases it
            done.hit("closure returned");
        })
        .unwrap();
    probe.reached("report:task:timed_out:stuck_io").await;
    let waiter = {
        let (errands, probe) = (errands.clone(), probe.clone());
        tokio::spawn(async move {
            errands.idle().await;
            probe.hit("idle");
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!probe.has("idle"), "the closure still runs");
    release_tx.send(()).unwrap();
    waiter.await.unwrap();
    assert!(probe.index("closure returned") < probe.index("idle"));
}

#[tokio::test]
async fn abort_alone_also_stops_accepting_tasks() {
    let errands = Errands::builder().without_tracing_reporter().build();
    errands.abort();
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::ShuttingDown)
    );
}
