//! The semantics page, "Outcomes and accounting": every task ends in exactly
//! one terminal state, every non-success is reported once, `on_error` sees the task's info and
//! the original error, and argument values never reach logs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use common::{assert_balanced, idle};
use errands::testing::TestClient;
use errands::{Errands, Origin, Outcome, ScheduleError, TaskError, TaskInfo, Tasks, Timing};

#[derive(Debug, thiserror::Error)]
#[error("mail server refused the message")]
struct MailRefused {
    #[source]
    source: std::io::Error,
}

async fn send_welcome_email(_to: String) -> Result<(), MailRefused> {
    Err(MailRefused {
        source: std::io::Error::other("550 mailbox unavailable"),
    })
}

type Seen = Arc<Mutex<Vec<(TaskInfo, String, bool)>>>;

#[tokio::test]
async fn on_error_gets_the_task_info_and_the_original_error() {
    let errands = Errands::new();
    let seen: Seen = Default::default();
    let app = Router::new()
        .route(
            "/users/{id}",
            post(
                |Path(id): Path<u64>, State(seen): State<Seen>, tasks: Tasks| async move {
                    tasks
                        .after_response()
                        .shield()
                        .field("user_id", id)
                        .on_error(move |info, error: TaskError| {
                            let seen = seen.clone();
                            async move {
                                let found = error.find::<MailRefused>().is_some()
                                    && error.find::<std::io::Error>().is_some();
                                seen.lock().unwrap().push((info, error.to_string(), found));
                            }
                        })
                        .schedule(send_welcome_email("ada@example.com".into()))
                        .unwrap();
                    "created"
                },
            ),
        )
        .with_state(seen.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.post("/users/42").await;
    response.settle().await;

    let seen = seen.lock().unwrap();
    let (info, message, found_original) = &seen[0];
    assert_eq!(seen.len(), 1, "on_error runs once");
    assert!(
        found_original,
        "the original error and its source are reachable"
    );
    assert_eq!(message, "mail server refused the message");
    assert_eq!(info.name(), "send_welcome_email");
    assert_eq!(info.timing(), Timing::AfterResponse);
    assert!(info.is_shielded());
    assert_eq!(info.attempt(), 1);
    assert_eq!(info.field("user_id"), Some(&serde_json::json!(42)));
    assert_eq!(info.request_id(), response.request_id().as_ref());
    assert_eq!(info.route(), Some("/users/{id}"));
    assert_eq!(info.method().map(|m| m.as_str()), Some("POST"));
    assert_eq!(info.response_status(), Some(StatusCode::OK));

    let reports = response.reports();
    assert_eq!(reports.len(), 1, "one report: {reports:?}");
    let report = &reports[0];
    assert_eq!(
        (report.origin, report.outcome, report.handled),
        (Origin::Task, Some(Outcome::Failed), true)
    );
    assert_eq!(
        report.chain[0].type_name,
        Some(std::any::type_name::<MailRefused>())
    );
    assert_eq!(
        report.chain_text(),
        "mail server refused the message: 550 mailbox unavailable"
    );
    assert_eq!(report.route.as_deref(), Some("/users/{id}"));
}

#[tokio::test(start_paused = true)]
async fn every_terminal_state_is_counted_once_and_reported_once() {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let errands = Errands::builder()
        .on_task_error({
            let handled = handled.clone();
            move |info: TaskInfo, error: TaskError| {
                handled
                    .lock()
                    .unwrap()
                    .push((info.name().to_owned(), error.outcome()));
                async {}
            }
        })
        .build();
    let client = TestClient::new(Router::new().layer(errands.layer()), &errands);
    let tasks = errands.tasks();
    tasks.immediate().name("ok").schedule(async {}).unwrap();
    tasks
        .immediate()
        .name("ok_result")
        .schedule(async { Ok::<_, std::io::Error>(1) })
        .unwrap();
    tasks
        .immediate()
        .name("fails")
        .schedule(async { Err::<(), _>(std::io::Error::other("boom")) })
        .unwrap();
    tasks
        .immediate()
        .name("panics")
        .schedule(common::panics())
        .unwrap();
    tasks
        .immediate()
        .name("slow")
        .timeout(Duration::from_secs(1))
        .schedule(tokio::time::sleep(Duration::from_secs(60))) // simulated work
        .unwrap();
    idle(&errands).await;

    let stats = errands.stats();
    assert_eq!(
        (
            stats.scheduled,
            stats.succeeded,
            stats.failed,
            stats.panicked,
            stats.timed_out
        ),
        (5, 2, 1, 1, 1)
    );
    assert_balanced(&errands);
    let mut handled = handled.lock().unwrap().clone();
    handled.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        handled,
        [
            ("fails".to_owned(), Outcome::Failed),
            ("panics".to_owned(), Outcome::Panicked),
            ("slow".to_owned(), Outcome::TimedOut)
        ],
        "the default on_error runs for failed, panicked and timed_out only"
    );
    let mut reported: Vec<_> = client
        .reports()
        .iter()
        .map(|r| {
            (
                r.task.as_ref().unwrap().name().to_owned(),
                r.outcome.unwrap(),
            )
        })
        .collect();
    reported.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        reported, handled,
        "each non-success is reported exactly once"
    );
}

#[tokio::test]
async fn a_tasks_own_on_error_replaces_the_default() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let errands = Errands::builder()
        .on_task_error({
            let calls = calls.clone();
            move |_: TaskInfo, _: TaskError| {
                calls.lock().unwrap().push("default");
                async {}
            }
        })
        .build();
    let own = calls.clone();
    errands
        .tasks()
        .immediate()
        .on_error(move |_, _| {
            own.lock().unwrap().push("own");
            async {}
        })
        .schedule(async { Err::<(), _>("no") })
        .unwrap();
    errands
        .tasks()
        .schedule(async { Err::<(), _>("no") })
        .unwrap();
    idle(&errands).await;
    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(calls, ["default", "own"]);
}

#[tokio::test]
async fn the_accounting_invariant_holds_across_many_mixed_requests() {
    async fn handler(Path(n): Path<u32>, tasks: Tasks) -> StatusCode {
        let fail = n % 5 == 0;
        tasks
            .schedule(async move { if fail { Err("boom") } else { Ok(()) } })
            .unwrap();
        tasks
            .after_route()
            .schedule(async move { assert!(n % 7 != 0, "panic") })
            .unwrap();
        tasks
            .after_response()
            .on_error(move |_, _| async move {
                if n % 2 == 0 {
                    Err("handler broke")
                } else {
                    Ok(())
                }
            })
            .schedule(async move { if n % 3 == 0 { Err("boom") } else { Ok(()) } })
            .unwrap();
        tasks.after_response().always().schedule(async {}).unwrap();
        if n % 11 == 0 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    }
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/{n}", post(handler))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let requests = (1..=200u32).map(|n| {
        let client = client.clone();
        async move { client.post(&format!("/{n}")).await }
    });
    let responses = futures_util::future::join_all(requests).await;
    idle(&errands).await;

    // Expected outcomes, computed from the same rules.
    let (mut succeeded, mut failed, mut panicked, mut skipped, mut handler_failures) =
        (0, 0, 0, 0, 0);
    for n in 1..=200u32 {
        if n % 5 == 0 {
            failed += 1
        } else {
            succeeded += 1
        }
        succeeded += 1; // the always task
        if n % 11 == 0 {
            skipped += 2;
            continue;
        }
        if n % 7 == 0 {
            panicked += 1
        } else {
            succeeded += 1
        }
        if n % 3 == 0 {
            failed += 1;
            if n % 2 == 0 {
                handler_failures += 1
            }
        } else {
            succeeded += 1
        }
    }
    let stats = errands.stats();
    assert_eq!(stats.scheduled, 800);
    assert_eq!(
        (stats.succeeded, stats.failed, stats.panicked, stats.skipped),
        (succeeded, failed, panicked, skipped),
        "{stats:?}"
    );
    assert_balanced(&errands);
    let reports = client.reports();
    let task_reports = reports.iter().filter(|r| r.origin == Origin::Task).count() as u64;
    let handler_reports = reports
        .iter()
        .filter(|r| r.origin == Origin::ErrorHandler)
        .count();
    assert_eq!(task_reports, failed + panicked + skipped);
    assert_eq!(handler_reports, handler_failures);
    for response in &responses {
        let id = response.request_id().unwrap();
        assert!(
            response
                .reports()
                .iter()
                .all(|r| r.request_id.as_ref() == Some(&id))
        );
    }
}

#[tokio::test]
async fn scheduling_after_shutdown_is_a_clear_error_and_counts_as_rejected() {
    let errands = Errands::new();
    let app = Router::new()
        .route(
            "/",
            post(|tasks: Tasks| async move {
                tasks.schedule(async {})?;
                Ok::<_, ScheduleError>("scheduled")
            }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    errands.shutdown().await;
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::ShuttingDown)
    );
    let response = client.post("/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.json();
    assert_eq!(body["code"], "shutting_down");
    assert_eq!(body["success"], false);
    assert_eq!(body["request_id"], response.request_id().unwrap().as_str());
    let stats = errands.stats();
    assert_eq!((stats.scheduled, stats.rejected), (0, 2));
}

#[test]
fn scheduling_outside_a_tokio_runtime_is_a_clear_error() {
    let errands = Errands::new();
    assert_eq!(
        errands.tasks().schedule(async {}),
        Err(ScheduleError::NoRuntime)
    );
    assert_eq!(errands.stats().rejected, 1);
}
