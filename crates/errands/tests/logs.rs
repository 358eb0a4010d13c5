//! Argument values never reach logs; task names and explicit fields do. Kept alone in its
//! own test binary because it installs a log subscriber.

mod common;

use std::sync::{Arc, Mutex};

use common::{LogWriter, idle};
use errands::Errands;

async fn charge_card(_card_number: String, _amount_cents: u64) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("card declined"))
}

#[tokio::test]
async fn default_names_and_fields_reach_logs_but_argument_values_never_do() {
    let (logs, _guard) = capture_logs();

    let errands = Errands::new();
    let tasks = errands.tasks();
    let id = tasks
        .immediate()
        .field("payment_id", 12345)
        .schedule(charge_card("4111111111111111".into(), 999_999))
        .unwrap();
    tasks
        .schedule(async { Err::<(), _>("in a block") })
        .unwrap();
    idle(&errands).await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("charge_card"),
        "default name derived from the function: {text}"
    );
    assert!(
        text.contains(
            "default_names_and_fields_reach_logs_but_argument_values_never_do::{{closure}}"
        ),
        "{text}"
    );
    assert!(
        text.contains("12345") && text.contains("card declined"),
        "{text}"
    );
    assert!(
        !text.contains("4111111111111111") && !text.contains("999999"),
        "arguments leaked: {text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("charge_card")).count(),
        1,
        "one event per report: {text}"
    );
    let _ = id;
}

/// Sends this thread's log output into a buffer, for as long as the guard lives.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_failing_after_response_task_gives_one_report_and_one_log_event_with_the_request_id() {
    let (logs, _guard) = capture_logs();

    let reports = Arc::new(Mutex::new(Vec::new()));
    let errands = Errands::builder()
        .reporter({
            let reports = reports.clone();
            move |r: &errands::ErrorReport| reports.lock().unwrap().push(r.clone())
        })
        .build();
    let app = axum::Router::new()
        .route(
            "/export",
            axum::routing::post(|tasks: errands::Tasks| async move {
                tasks
                    .after_response()
                    .name("upload_export")
                    .schedule(async { Err::<(), _>(std::io::Error::other("bucket unreachable")) })
                    .unwrap();
                "accepted"
            }),
        )
        .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{addr}/export"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "accepted");
    idle(&errands).await;

    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].request_id.as_ref().unwrap().as_str(), "req-42");
    assert_eq!(reports[0].chain_text(), "bucket unreachable");
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let events: Vec<_> = text
        .lines()
        .filter(|l| l.contains("bucket unreachable"))
        .collect();
    assert_eq!(events.len(), 1, "one log event: {text}");
    assert!(
        events[0].contains("ERROR") && events[0].contains("req-42"),
        "{text}"
    );
    assert!(events[0].contains("upload_export"));
}

#[tokio::test]
async fn request_ids_that_could_forge_log_lines_are_replaced_in_headers_bodies_and_logs() {
    use axum::http::{HeaderValue, Request};
    let (logs, _guard) = capture_logs();
    let errands = Errands::new();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                Err::<(), _>(errands::Error::new(std::io::Error::other("boom")))
            }),
        )
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);
    let forgeries: [&[u8]; 6] = [
        b"abc\" level=ERROR message=\"forged",
        b"abc request_id=admin",
        b"tab\there",
        b"{\"json\":1}",
        b"caf\xc3\xa9",
        &[b'a'; 129],
    ];
    for forged in forgeries {
        let mut request = Request::get("/").body(axum::body::Body::empty()).unwrap();
        let value = HeaderValue::from_bytes(forged).unwrap();
        request.headers_mut().insert("x-request-id", value);
        let response = client.send(request).await;
        let id = response.request_id().unwrap().to_string();
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "replaced by a fresh id: {id}"
        );
        assert_eq!(response.json()["request_id"], id.as_str());
        let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        let forged = String::from_utf8_lossy(forged);
        assert!(
            !text.contains(forged.as_ref()),
            "{forged:?} reached the logs: {text}"
        );
        assert!(text.contains(&id), "the fresh id is logged: {text}");
    }
}

/// Records, for every span created, its name and its parent's name.
#[derive(Clone, Default)]
struct Parents(Arc<Mutex<Vec<Named>>>);

/// A span's name, and its parent's.
type Named = (String, Option<String>);

impl<S> tracing_subscriber::Layer<S> for Parents
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("the new span");
        let parent = span.parent().map(|parent| parent.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), parent));
    }
}

/// Task spans are children of their request's span in every timing mode, even when the task
/// starts after the response.
#[tokio::test]
async fn task_spans_are_children_of_their_request_span_in_every_timing_mode() {
    use tracing_subscriber::layer::SubscriberExt;

    let parents = Parents::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(parents.clone()));
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|tasks: errands::Tasks| async move {
                tasks.immediate().name("now").schedule(async {}).unwrap();
                tasks
                    .after_route()
                    .name("after_route")
                    .schedule(async {})
                    .unwrap();
                tasks
                    .after_response()
                    .name("after_response")
                    .schedule(async {})
                    .unwrap();
                "ok"
            }),
        )
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);
    let response = client.get("/").await;
    assert_eq!(response.status(), 200);
    response.settle().await;

    let spans = parents.0.lock().unwrap().clone();
    let tasks: Vec<_> = spans.iter().filter(|(name, _)| name == "task").collect();
    assert_eq!(tasks.len(), 3, "{spans:?}");
    assert!(
        tasks
            .iter()
            .all(|(_, parent)| parent.as_deref() == Some("request")),
        "{spans:?}"
    );
}
