//! `errands::sentry` against the Sentry SDK's test transport: one Sentry event per reported
//! failure — from handlers and from tasks on the runtime's worker threads — none for client
//! errors at the default level, and still one when errands' own tracing events pass through
//! `sentry-tracing` with the filter the module docs give.
#![cfg(feature = "sentry")]

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use errands::sentry::{SentryReporter, is_report_event};
use errands::testing::TestClient;
use errands::{ApiError, Errands, ErrorReport, Reporter, RetryPolicy, Tasks};
use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use sentry::protocol::{Event, Level as SentryLevel};
use sentry::test::{TestTransport, with_captured_events};
use sentry::{ClientOptions, Hub, Scope};
use serde_json::json;
use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct ConnectionRefused;

#[derive(Debug, thiserror::Error)]
#[error("payment gateway unreachable")]
struct GatewayUnreachable(#[source] ConnectionRefused);

#[derive(Debug, thiserror::Error)]
#[error("card declined")]
struct CardDeclined;

async fn pay() -> Result<&'static str, errands::Error> {
    Err(GatewayUnreachable(ConnectionRefused))?
}

async fn missing_order() -> Result<&'static str, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "order_not_found",
        "No such order.",
    ))
}

async fn confirm(tasks: Tasks) -> &'static str {
    tasks
        .after_response()
        .name("send_receipt")
        .schedule(async { Err::<(), _>(CardDeclined) })
        .unwrap();
    "confirmed"
}

fn app(errands: &Errands) -> Router {
    Router::new()
        .route("/orders/{id}/pay", post(pay))
        .route("/orders/{id}", get(missing_order))
        .route("/orders/{id}/confirm", post(confirm))
        .layer(errands.layer())
}

/// Runs `test` on a current-thread runtime inside a hub with the test transport, so that
/// handlers, tasks and reporters all run where that hub is current.
fn captured<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Vec<Event<'static>> {
    with_captured_events(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test())
    })
}

fn tag<'a>(event: &'a Event<'static>, key: &str) -> Option<&'a str> {
    event.tags.get(key).map(String::as_str)
}

/// The exceptions as `(type, value)`, innermost first.
fn exceptions<'a>(event: &'a Event<'static>) -> Vec<(&'a str, &'a str)> {
    event
        .exception
        .values
        .iter()
        .map(|e| (e.ty.as_str(), e.value.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn a_handler_error_is_one_event_with_the_request_id_route_and_original_error() {
    let mut request_id = String::new();
    let sent_id = &mut request_id;
    let events = captured(|| async move {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new())
            .build();
        let client = TestClient::new(app(&errands), &errands);
        let response = client.post("/orders/7/pay").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        response.settle().await;
        *sent_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
    });

    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(tag(event, "request_id"), Some(request_id.as_str()));
    assert_eq!(tag(event, "route"), Some("/orders/{id}/pay"));
    assert_eq!(event.transaction.as_deref(), Some("/orders/{id}/pay"));
    assert_eq!(tag(event, "method"), Some("POST"));
    assert_eq!(tag(event, "status"), Some("500"));
    assert_eq!(tag(event, "origin"), Some("handler"));
    assert!(tag(event, "code").is_some(), "{event:#?}");
    assert_eq!(event.level, SentryLevel::Error);
    assert_eq!(event.logger.as_deref(), Some("errands"));
    assert_eq!(
        exceptions(event),
        [
            ("ConnectionRefused", "connection refused"),
            ("GatewayUnreachable", "payment gateway unreachable"),
        ]
    );
    assert!(!event.extra.contains_key("task.id"), "{event:#?}");
}

#[test]
fn a_task_failing_after_its_retries_is_one_event_sent_from_a_worker_thread() {
    let transport = TestTransport::new();
    let options = ClientOptions::new()
        .dsn("https://public@sentry.invalid/1")
        .transport(transport.clone());
    let hub = Arc::new(Hub::new(
        Some(Arc::new(options.into())),
        Arc::new(Scope::default()),
    ));
    let reporting_threads = Arc::new(Mutex::new(Vec::<ThreadId>::new()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let threads = reporting_threads.clone();
    runtime.block_on(async move {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new().hub(hub))
            .reporter(move |_: &ErrorReport| {
                threads.lock().unwrap().push(std::thread::current().id());
            })
            .build();
        errands
            .tasks()
            .immediate()
            .name("charge")
            .field("order_id", 7)
            .retry(
                RetryPolicy::exponential(Duration::from_millis(1))
                    .max_attempts(3)
                    .jitter(0.0),
            )
            .schedule(|| async { Err::<(), _>(CardDeclined) })
            .unwrap();
        errands.idle().await;
        assert_eq!(errands.stats().failed, 1);
    });

    let reporting_threads = reporting_threads.lock().unwrap();
    assert_eq!(reporting_threads.len(), 1);
    assert_ne!(
        reporting_threads[0],
        std::thread::current().id(),
        "reported from a worker thread"
    );

    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(tag(event, "task.name"), Some("charge"));
    assert_eq!(tag(event, "task.timing"), Some("immediate"));
    assert_eq!(tag(event, "origin"), Some("task"));
    assert_eq!(tag(event, "outcome"), Some("failed"));
    assert_eq!(event.extra.get("task.attempt"), Some(&json!(3)));
    assert_eq!(
        event.extra.get("task.fields"),
        Some(&json!({"order_id": 7}))
    );
    assert!(event.extra.get("task.id").is_some_and(|id| id.is_u64()));
    assert_eq!(exceptions(event), [("CardDeclined", "card declined")]);
    assert_eq!(event.level, SentryLevel::Error);
    assert!(tag(event, "request_id").is_none(), "{event:#?}");
}

#[test]
fn a_panicking_task_is_one_event_typed_by_its_outcome() {
    let events = captured(|| async {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new())
            .build();
        errands
            .tasks()
            .immediate()
            .name("reindex")
            .schedule(async {
                if true {
                    panic!("index missing");
                }
            })
            .unwrap();
        errands.idle().await;
        assert_eq!(errands.stats().panicked, 1);
    });
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        exceptions(&events[0]),
        [("panicked", "task panicked: index missing")]
    );
    assert_eq!(tag(&events[0], "outcome"), Some("panicked"));
    assert_eq!(tag(&events[0], "task.name"), Some("reindex"));
    assert!(!events[0].extra.contains_key("task.fields"));
}

/// An error that names itself as its own source.
#[derive(Debug)]
struct Loops;

impl std::fmt::Display for Loops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("loops")
    }
}

impl std::error::Error for Loops {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

#[test]
fn an_error_chain_that_loops_is_cut_off() {
    let events = captured(|| async {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new())
            .build();
        errands
            .tasks()
            .schedule(async { Err::<(), _>(Loops) })
            .unwrap();
        errands.idle().await;
    });
    assert_eq!(events.len(), 1, "{events:#?}");
    let exceptions = exceptions(&events[0]);
    assert_eq!(exceptions.len(), 32, "the walk's depth limit");
    assert!(exceptions.iter().all(|e| *e == ("Loops", "loops")));
}

#[test]
fn client_errors_are_not_sent_at_the_default_level() {
    let events = captured(|| async {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new())
            .build();
        let client = TestClient::new(app(&errands), &errands);
        let missing = client.get("/orders/7").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let unknown = client.get("/nowhere").await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        client.idle().await;
        assert_eq!(client.reports().len(), 2, "both were reported");
    });
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn client_errors_are_sent_at_info() {
    let events = captured(|| async {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .reporter(SentryReporter::new().min_level(Level::INFO))
            .build();
        let client = TestClient::new(app(&errands), &errands);
        client.get("/orders/7").await.settle().await;
    });
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, SentryLevel::Info);
    assert_eq!(tag(&events[0], "status"), Some("404"));
    assert_eq!(tag(&events[0], "code"), Some("order_not_found"));
    assert_eq!(tag(&events[0], "route"), Some("/orders/{id}"));
}

/// A handler error and a task failure, with errands' default `TracingReporter` on and a
/// `sentry-tracing` subscriber installed for the duration.
fn two_failures_through_tracing(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> Vec<Event<'static>> {
    captured(|| async move {
        let _subscriber = tracing::subscriber::set_default(subscriber);
        let errands = Errands::builder().reporter(SentryReporter::new()).build();
        let client = TestClient::new(app(&errands), &errands);
        client.post("/orders/7/pay").await.settle().await;
        let confirmed = client.post("/orders/7/confirm").await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        confirmed.settle().await;
        assert_eq!(client.reports().len(), 2);
    })
}

#[test]
fn with_the_documented_filter_each_failure_is_still_one_event() {
    let events = two_failures_through_tracing(
        tracing_subscriber::registry()
            .with(BreadcrumbLayer::new().with_filter(filter_fn(|metadata| {
                is_report_event(metadata) || matches!(*metadata.level(), Level::WARN | Level::INFO)
            })))
            .with(ErrorLayer::new().with_filter(filter_fn(|metadata| {
                *metadata.level() == Level::ERROR && !is_report_event(metadata)
            }))),
    );

    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| tag(e, "origin").is_some()),
        "{events:#?}"
    );
    assert_eq!(tag(&events[0], "route"), Some("/orders/{id}/pay"));
    assert_eq!(tag(&events[1], "task.name"), Some("send_receipt"));
    // errands' own log line for the report became a breadcrumb of the event.
    assert!(
        events[0]
            .breadcrumbs
            .iter()
            .any(|b| b.category.as_deref() == Some("errands")),
        "{events:#?}"
    );
}

#[test]
#[allow(deprecated)]
fn with_the_documented_event_filter_of_the_combined_layer_each_failure_is_one_event() {
    use sentry::integrations::tracing::EventFilter;

    let events = two_failures_through_tracing(tracing_subscriber::registry().with(
        sentry::integrations::tracing::layer().event_filter(|metadata| match *metadata.level() {
            _ if is_report_event(metadata) => EventFilter::Breadcrumb,
            Level::ERROR => EventFilter::Event,
            Level::WARN | Level::INFO => EventFilter::Breadcrumb,
            _ => EventFilter::Ignore,
        }),
    ));
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| tag(e, "origin").is_some()),
        "{events:#?}"
    );
}

#[test]
fn without_the_filter_errands_tracing_events_would_be_second_events() {
    let events = two_failures_through_tracing(
        tracing_subscriber::registry().with(ErrorLayer::new().with_filter(LevelFilter::ERROR)),
    );
    assert_eq!(events.len(), 4, "{events:#?}");
}

#[test]
fn other_errands_events_are_not_report_events() {
    let decisions = Arc::new(Mutex::new(Vec::new()));
    let seen = decisions.clone();
    let subscriber = tracing_subscriber::registry().with(filter_fn(move |metadata| {
        if metadata.is_event() {
            seen.lock()
                .unwrap()
                .push((metadata.name(), is_report_event(metadata)));
        }
        true
    }));
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(target: "errands", origin = "runtime", "a reporter panicked");
        tracing::error!(target: "app", origin = "handler", handled = false, "lookalike");
        errands::TracingReporter.report(&sample_report());
    });
    let decisions = decisions.lock().unwrap();
    assert_eq!(
        decisions.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        [false, false, true],
        "{decisions:?}"
    );
}

/// A real report, taken from a runtime.
fn sample_report() -> ErrorReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let errands = Errands::builder().without_tracing_reporter().build();
        let client = TestClient::new(app(&errands), &errands);
        client.post("/orders/7/pay").await.settle().await;
        client.reports().pop().unwrap()
    })
}
