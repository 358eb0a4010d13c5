//! Testing an error handler: drive the route in process, `settle()` the response to wait for
//! exactly the tasks it started, then assert on what the handler did and what was reported.
//!
//! Run: `cargo run -p errands --example testing_error_handlers`

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use errands::testing::TestClient;
use errands::{Errands, Outcome, ScheduleError, TaskError, TaskInfo, Tasks};

type Alerts = Arc<Mutex<Vec<String>>>;

async fn export(State(alerts): State<Alerts>, tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks
        .after_response()
        .name("build_export")
        .on_error(move |info: TaskInfo, error: TaskError| {
            alerts
                .lock()
                .unwrap()
                .push(format!("{}: {error}", info.name()));
            async {}
        })
        .schedule(async { Err::<(), _>(std::io::Error::other("disk full")) })?;
    Ok("accepted")
}

#[tokio::main]
async fn main() {
    let alerts = Alerts::default();
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/exports", post(export))
        .with_state(alerts.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    let response = client.post("/exports").await;
    assert_eq!(response.text(), "accepted");
    response.settle().await;

    assert_eq!(*alerts.lock().unwrap(), ["build_export: disk full"]);
    let reports = response.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Some(Outcome::Failed));
    assert!(reports[0].handled);
    assert_eq!(reports[0].chain_text(), "disk full");
    println!(
        "the error handler ran once and the failure was reported once, with request {}",
        response.request_id().unwrap()
    );
}
