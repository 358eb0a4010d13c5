//! `errands::testing`: `settle()` waits for exactly the request's work, and on timeout
//! fails naming what is unfinished.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use errands::Tasks;
use errands::testing::TestClient;

async fn handler(tasks: Tasks) -> &'static str {
    tasks
        .after_response()
        .name("quick")
        .schedule(async {})
        .unwrap();
    tasks
        .immediate()
        .name("stuck_export")
        .schedule(std::future::pending::<()>())
        .unwrap();
    "ok"
}

fn client() -> TestClient {
    let errands = errands::Errands::builder()
        .without_tracing_reporter()
        .build();
    let app = Router::new()
        .route("/", get(handler))
        .layer(errands.layer());
    TestClient::new(app, &errands).settle_timeout(Duration::from_secs(5))
}

#[tokio::test(start_paused = true)]
async fn settle_times_out_naming_the_unfinished_tasks() {
    let client = client();
    let response = client.get("/").await;
    let unsettled = response.try_settle().await.unwrap_err();
    assert_eq!(unsettled.unfinished.len(), 1, "{unsettled}");
    assert!(
        unsettled.unfinished[0].starts_with("stuck_export (id "),
        "{unsettled}"
    );
    assert!(
        unsettled
            .to_string()
            .contains(response.request_id().unwrap().as_str())
    );
    // The quick task settled; only the stuck one is in flight.
    assert_eq!((client.stats().succeeded, client.stats().running), (1, 1));
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "unfinished tasks: stuck_export")]
async fn settle_panics_with_the_names() {
    client().get("/").await.settle().await;
}

#[tokio::test]
async fn settle_waits_only_for_its_own_request() {
    let errands = errands::Errands::builder()
        .without_tracing_reporter()
        .build();
    let app = Router::new()
        .route("/stuck", get(handler))
        .route(
            "/fine",
            get(|tasks: Tasks| async move {
                tasks.after_response().schedule(async {}).unwrap();
                "fine"
            }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let _stuck = client.get("/stuck").await;
    let fine = client.get("/fine").await;
    // Another request's task never finishes; this one settles anyway.
    tokio::time::timeout(common::PATIENCE, fine.settle())
        .await
        .unwrap();
}
