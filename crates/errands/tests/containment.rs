//! The semantics page, "Containment": a failing task, a failing or panicking `on_error`, a panicking
//! reporter or teardown hook is reported once and affects nothing else.

mod common;

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use axum::Router;
use axum::routing::get;
use common::{Probe, assert_balanced, idle, reporting_to};
use errands::testing::TestClient;
use errands::{Errands, ErrorReport, Origin, Outcome, TaskError, TaskInfo, Tasks};

#[tokio::test]
async fn failing_and_panicking_tasks_affect_neither_siblings_nor_later_requests() {
    async fn handler(tasks: Tasks) -> &'static str {
        tasks
            .immediate()
            .name("fails")
            .schedule(async { Err::<(), _>("boom") })
            .unwrap();
        tasks
            .after_route()
            .name("panics")
            .schedule(common::panics())
            .unwrap();
        tasks
            .after_response()
            .name("sibling")
            .schedule(async {})
            .unwrap();
        "ok"
    }
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/", get(handler))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    for round in 1..=3u64 {
        let response = client.get("/").await;
        assert_eq!(response.status(), 200, "round {round} still served");
        response.settle().await;
        assert_eq!(
            response.reports().len(),
            2,
            "the failure and the panic, once each"
        );
        let stats = errands.stats();
        assert_eq!(
            (stats.succeeded, stats.failed, stats.panicked),
            (round, round, round)
        );
    }
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_failing_or_panicking_on_error_is_reported_once_and_contained() {
    let probe = Probe::new();
    let errands = reporting_to(&probe).build();
    let client = TestClient::new(Router::new().layer(errands.layer()), &errands);
    let tasks = errands.tasks();
    tasks
        .immediate()
        .name("handler_errs")
        .on_error(|_, _| async { Err::<(), _>(std::io::Error::other("tracker unreachable")) })
        .schedule(async { Err::<(), _>("boom") })
        .unwrap();
    tasks
        .immediate()
        .name("handler_panics")
        .on_error(|_, _| async {
            if true {
                panic!("handler exploded")
            }
        })
        .schedule(async { Err::<(), _>("boom") })
        .unwrap();
    idle(&errands).await;
    // Later tasks and their handlers still work.
    let ran = Arc::new(Mutex::new(0));
    let counter = ran.clone();
    tasks
        .immediate()
        .name("later")
        .on_error(move |_, _| {
            *counter.lock().unwrap() += 1;
            async {}
        })
        .schedule(async { Err::<(), _>("boom") })
        .unwrap();
    idle(&errands).await;
    assert_eq!(*ran.lock().unwrap(), 1);

    let reports = client.reports();
    let count = |origin: Origin, outcome: Outcome, name: &str| {
        reports
            .iter()
            .filter(|r| {
                r.origin == origin
                    && r.outcome == Some(outcome)
                    && r.task.as_ref().unwrap().name() == name
            })
            .count()
    };
    assert_eq!(count(Origin::Task, Outcome::Failed, "handler_errs"), 1);
    assert_eq!(
        count(Origin::ErrorHandler, Outcome::Failed, "handler_errs"),
        1
    );
    assert_eq!(count(Origin::Task, Outcome::Failed, "handler_panics"), 1);
    assert_eq!(
        count(Origin::ErrorHandler, Outcome::Panicked, "handler_panics"),
        1
    );
    assert_eq!(count(Origin::Task, Outcome::Failed, "later"), 1);
    assert_eq!(reports.len(), 5, "{reports:#?}");
    let handler_error = reports
        .iter()
        .find(|r| r.origin == Origin::ErrorHandler && r.outcome == Some(Outcome::Failed))
        .unwrap();
    assert_eq!(handler_error.chain_text(), "tracker unreachable");
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_panicking_default_handler_does_not_stop_later_tasks() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .on_task_error(|_: TaskInfo, _: TaskError| async {
            if true {
                panic!("global handler bug")
            }
        })
        .build();
    for _ in 0..3 {
        errands
            .tasks()
            .schedule(async { Err::<(), _>("boom") })
            .unwrap();
        idle(&errands).await;
    }
    errands.tasks().schedule(async {}).unwrap();
    idle(&errands).await;
    let stats = errands.stats();
    assert_eq!((stats.failed, stats.succeeded), (3, 1));
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_panicking_reporter_does_not_stop_the_other_reporters_or_the_tasks() {
    let seen = Arc::new(Mutex::new(0));
    let counter = seen.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(|_: &ErrorReport| panic!("reporter bug"))
        .reporter(move |_: &ErrorReport| *counter.lock().unwrap() += 1)
        .build();
    errands
        .tasks()
        .schedule(async { Err::<(), _>("one") })
        .unwrap();
    errands
        .tasks()
        .schedule(async { Err::<(), _>("two") })
        .unwrap();
    idle(&errands).await;
    assert_eq!(*seen.lock().unwrap(), 2);
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_failing_teardown_hook_is_reported_and_the_next_one_still_runs() {
    let probe = Probe::new();
    let (first, last) = (probe.clone(), probe.clone());
    let errands = reporting_to(&probe)
        .on_teardown(move || async move {
            first.hit("first hook");
            if true {
                panic!("teardown bug");
            }
        })
        .on_teardown(|| async { Err::<(), _>(std::io::Error::other("flush failed")) })
        .on_teardown(move || async move { last.hit("last hook") })
        .build();
    let summary = errands.shutdown().await;
    assert_eq!(summary.teardown_failures, 2);
    assert!(probe.index("first hook") < probe.index("last hook"));
    let teardown_reports = probe
        .events()
        .iter()
        .filter(|e| e.starts_with("report:teardown"))
        .count();
    assert_eq!(teardown_reports, 2);
}

#[test]
fn a_task_dropped_with_the_tokio_runtime_is_still_counted_and_reported() {
    let probe = Probe::new();
    let errands = reporting_to(&probe).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        errands
            .tasks()
            .immediate()
            .name("never_finishes")
            .schedule(std::future::pending::<()>())
            .unwrap();
        // Failed, and reported so, before its handler hangs.
        errands
            .tasks()
            .immediate()
            .name("failed_then_handling")
            .on_error(|_, _| std::future::pending::<()>())
            .schedule(async { Err::<(), _>(std::io::Error::other("failed")) })
            .unwrap();
        tokio::task::yield_now().await;
        // Spawned but never polled before the runtime goes away.
        errands
            .tasks()
            .immediate()
            .name("never_polled")
            .schedule(async {})
            .unwrap();
    });
    drop(runtime);
    assert_eq!(
        probe
            .events()
            .iter()
            .filter(|e| e.ends_with(":failed_then_handling"))
            .collect::<Vec<_>>(),
        ["report:task:failed:failed_then_handling"],
        "one report, and the outcome it settled"
    );
    assert_eq!(errands.stats().failed, 1);
    assert!(
        probe.has("report:task:aborted:never_finishes"),
        "{:?}",
        probe.events()
    );
    assert!(probe.has("report:task:aborted:never_polled"));
    assert_eq!(errands.stats().aborted, 2);
    assert_balanced(&errands);
}

/// A value whose `Drop` panics, owned by a task's future.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop bug");
    }
}

#[tokio::test]
async fn a_cancelled_future_that_panics_when_dropped_is_still_cancelled_once() {
    let probe = Probe::new();
    let errands = reporting_to(&probe).build();
    let bomb = PanicsOnDrop;
    errands
        .tasks()
        .immediate()
        .name("bomb")
        .schedule(async move {
            let _bomb = bomb;
            std::future::pending::<()>().await
        })
        .unwrap();
    tokio::task::yield_now().await;
    let summary = errands.shutdown().await;
    assert_eq!(summary.cancelled, 1);
    assert_eq!(probe.events(), ["report:task:cancelled:bomb"]);
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_skipped_future_that_panics_when_dropped_does_not_lose_its_batch() {
    async fn handler(tasks: Tasks) -> axum::http::StatusCode {
        for name in ["first", "second", "third"] {
            let bomb = PanicsOnDrop;
            tasks
                .after_response()
                .name(name)
                .schedule(async move {
                    let _bomb = bomb;
                })
                .unwrap();
        }
        axum::http::StatusCode::BAD_REQUEST
    }
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/", get(handler))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.get("/").await;
    assert_eq!(response.status(), 400);
    response.settle().await;
    let skips = response
        .reports()
        .into_iter()
        .filter(|r| r.origin == Origin::Task)
        .count();
    assert_eq!(skips, 3);
    assert_eq!(errands.stats().skipped, 3);
    assert_balanced(&errands);
}

#[tokio::test]
async fn a_panic_while_streaming_the_body_is_reported_once_and_after_response_still_runs() {
    async fn handler(tasks: Tasks) -> axum::body::Body {
        tasks
            .after_response()
            .name("receipt")
            .schedule(async {})
            .unwrap();
        let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>("a"), Ok("b")])
            .map(|chunk| {
                if chunk == Ok("b") {
                    panic!("secret streaming detail");
                }
                chunk
            });
        axum::body::Body::from_stream(chunks)
    }
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/", get(handler))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.get("/").await;
    response.settle().await;
    let reports = response.reports();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].origin, Origin::Handler);
    assert_eq!(reports[0].chain_text(), "secret streaming detail");
    assert!(!response.text().contains("secret"));
    // The handler completed: the after_response task ran, knowing the body was cut short.
    assert_eq!(errands.stats().succeeded, 1);
    assert_balanced(&errands);
}
