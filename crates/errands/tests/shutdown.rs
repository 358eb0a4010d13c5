//! The semantics page, "Shutdown", in process: drain, cancel unshielded, wait for shielded (with their
//! `on_error`), abort at the deadline, then teardown. The same order is proven on a real
//! process with real signals in `errands-demo/tests/signals.rs`.

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{PATIENCE, Probe, assert_balanced, probe_reporter, reporting_to};
use errands::testing::TestClient;
use errands::{Errands, ScheduleError, Tasks};

fn runtime(probe: &Probe, deadline: Duration) -> Errands {
    let teardown = probe.clone();
    Errands::builder()
        .without_tracing_reporter()
        .reporter(probe_reporter(probe))
        .drain_timeout(PATIENCE)
        .shutdown_deadline(deadline)
        .on_teardown(move || async move { teardown.hit("teardown") })
        .build()
}

async fn slow_request(State(probe): State<Probe>, tasks: Tasks) -> &'static str {
    probe.hit("request started");
    probe.gate("request").await;
    // Scheduled while shutdown drains: the request is in flight, so this is accepted and
    // the batch is released before unshielded tasks are cancelled.
    let p = probe.clone();
    tasks
        .after_response()
        .name("receipt")
        .shield()
        .schedule(async move { p.hit("receipt sent") })
        .unwrap();
    "finished"
}

#[tokio::test]
async fn shutdown_runs_drain_cancel_wait_then_teardown_in_that_order() {
    let probe = Probe::new();
    let errands = runtime(&probe, PATIENCE);
    let app = Router::new()
        .route("/slow", get(slow_request))
        .with_state(probe.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let tasks = errands.tasks();
    let p = probe.clone();
    tasks
        .immediate()
        .name("report_export")
        .schedule(async move {
            p.hit("export started");
            std::future::pending::<()>().await
        })
        .unwrap();
    let (p, q) = (probe.clone(), probe.clone());
    tasks
        .immediate()
        .name("payment")
        .shield()
        .on_error(move |_, _| {
            let q = q.clone();
            async move { q.hit("payment on_error ran") }
        })
        .schedule(async move {
            p.hit("payment started");
            p.gate("payment").await;
            p.hit("payment finished");
            Err::<(), _>("declined")
        })
        .unwrap();
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.get("/slow").await }
    });
    probe.reached("request started").await;
    probe.reached("export started").await;
    probe.reached("payment started").await;

    let shutdown = tokio::spawn({
        let errands = errands.clone();
        async move { errands.shutdown().await }
    });
    // Draining: nothing is cancelled while a request is in flight.
    tokio::task::yield_now().await;
    assert_eq!(errands.stats().cancelled, 0);
    probe.open("request");
    let response = request.await.unwrap();
    assert_eq!(response.text(), "finished");
    probe.reached("report:task:cancelled:report_export").await;
    assert!(!probe.has("teardown"), "teardown waits for shielded tasks");
    // Draining is over: no new tasks.
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::ShuttingDown)
    );
    probe.open("payment");
    let summary = tokio::time::timeout(PATIENCE, shutdown)
        .await
        .unwrap()
        .unwrap();

    assert!(summary.drained && summary.completed, "{summary:?}");
    assert_eq!((summary.cancelled, summary.aborted), (1, 0));
    let order = [
        "request started",
        "report:task:cancelled:report_export",
        "payment finished",
        "report:task:failed:payment",
        "payment on_error ran",
        "teardown",
    ];
    for pair in order.windows(2) {
        assert!(
            probe.index(pair[0]) < probe.index(pair[1]),
            "{pair:?} in {:?}",
            probe.events()
        );
    }
    assert!(probe.index("receipt sent") < probe.index("teardown"));
    assert_balanced(&errands);
}

#[tokio::test(start_paused = true)]
async fn shielded_tasks_past_the_deadline_are_aborted_by_name_before_teardown() {
    let probe = Probe::new();
    let errands = runtime(&probe, Duration::from_secs(10));
    let p = probe.clone();
    errands
        .tasks()
        .immediate()
        .name("settle_ledger")
        .shield()
        .schedule(async move {
            p.hit("ledger started");
            tokio::time::sleep(Duration::from_secs(3600)).await; // simulated work
            p.hit("ledger finished");
        })
        .unwrap();
    probe.reached("ledger started").await;
    let started = tokio::time::Instant::now();
    let summary = errands.shutdown().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(10),
        "aborted exactly at the deadline"
    );
    assert_eq!((summary.completed, summary.aborted), (false, 1));
    assert!(!probe.has("ledger finished"));
    assert!(probe.index("report:task:aborted:settle_ledger") < probe.index("teardown"));
    assert_balanced(&errands);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_skips_to_the_abort() {
    let probe = Probe::new();
    let errands = runtime(&probe, Duration::from_secs(600));
    let p = probe.clone();
    errands
        .tasks()
        .immediate()
        .name("long_shielded")
        .shield()
        .schedule(async move {
            p.hit("started");
            tokio::time::sleep(Duration::from_secs(3600)).await; // simulated work
        })
        .unwrap();
    probe.reached("started").await;
    let started = tokio::time::Instant::now();
    let shutdown = tokio::spawn({
        let errands = errands.clone();
        async move { errands.shutdown().await }
    });
    tokio::task::yield_now().await;
    errands.abort();
    let summary = shutdown.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "did not wait for the deadline"
    );
    assert_eq!(summary.aborted, 1);
    assert!(probe.index("report:task:aborted:long_shielded") < probe.index("teardown"));
}

/// Queues its task first, then waits: a straggler that outlives the drain.
async fn straggler(State(probe): State<Probe>, tasks: Tasks) -> &'static str {
    tasks
        .after_response()
        .name("receipt")
        .shield()
        .schedule(async {})
        .unwrap();
    probe.hit("request started");
    probe.gate("request").await;
    let late = tasks.schedule(async {});
    probe.hit(format!("late schedule: {late:?}"));
    "finished"
}

#[tokio::test(start_paused = true)]
async fn the_drain_is_bounded_by_its_timeout() {
    let probe = Probe::new();
    let errands = reporting_to(&probe)
        .drain_timeout(Duration::from_secs(5))
        .build();
    let app = Router::new()
        .route("/slow", get(straggler))
        .with_state(probe.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let _request = tokio::spawn(async move { client.get("/slow").await });
    probe.reached("request started").await;
    let started = tokio::time::Instant::now();
    let summary = errands.shutdown().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(!summary.drained);
    // The straggler finishes later: new tasks get a clear error, and its queued
    // after_response task is reported skipped, not lost.
    probe.open("request");
    probe.reached("late schedule: Err(ShuttingDown)").await;
    probe.reached("report:task:skipped:receipt").await;
}

#[tokio::test]
async fn shutdown_called_twice_runs_once() {
    let probe = Probe::new();
    let errands = runtime(&probe, PATIENCE);
    let (a, b) = tokio::join!(errands.shutdown(), errands.shutdown());
    assert_eq!(a, b);
    assert_eq!(
        probe.events().iter().filter(|e| *e == "teardown").count(),
        1
    );
}

// Real time: tokio does not auto-advance paused time while a blocking closure runs.
#[tokio::test]
async fn a_blocking_task_that_outlives_the_abort_grace_is_named_and_counts_as_lost_work() {
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = reports.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &errands::ErrorReport| sink.lock().unwrap().push(r.message.to_string()))
        .shutdown_deadline(Duration::from_millis(100))
        .abort_grace(Duration::from_millis(200))
        .build();
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    errands
        .tasks()
        .immediate()
        .name("resize_image")
        .shield()
        .schedule_blocking(move || {
            let _ = started.send(());
            blocked.recv()
        })
        .unwrap();
    running.await.unwrap();
    let begun = std::time::Instant::now();
    let summary = errands.shutdown().await;
    assert!(
        begun.elapsed() < errands::shutdown::ABORT_GRACE,
        "the configured grace, not the default: {:?}",
        begun.elapsed()
    );
    assert_eq!((summary.aborted, summary.unstopped), (1, 1));
    assert!(summary.lost_work());
    let reports = reports.lock().unwrap().clone();
    assert!(
        reports
            .iter()
            .any(|m| m.contains("still blocking: resize_image (task 1)")),
        "{reports:?}"
    );
    release.send(()).unwrap();
}
