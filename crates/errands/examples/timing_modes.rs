//! The three timing modes, and what happens to them when a request fails.
//!
//! Run: `cargo run -p errands --example timing_modes`

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use errands::testing::TestClient;
use errands::{Errands, ScheduleError, Tasks};

async fn log(what: &'static str) {
    println!("  task ran: {what}");
}

async fn checkout(tasks: Tasks, body: String) -> Result<StatusCode, ScheduleError> {
    tasks.schedule(log("immediate: analytics"))?; // spawned at the call, never skipped
    // after the handler returned, only if the status is below 400:
    tasks
        .after_route()
        .name("audit")
        .schedule(log("after_route: audit record"))?;
    // after the body was handed to the server, same condition:
    tasks
        .after_response()
        .name("email")
        .schedule(log("after_response: confirmation email"))?;
    // however the request ended:
    tasks
        .after_response()
        .name("metrics")
        .always()
        .schedule(log("after_response, always: metrics"))?;
    println!("  handler done");
    Ok(if body == "fail" {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    })
}

#[tokio::main]
async fn main() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/checkout", post(checkout))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    for body in ["ok", "fail"] {
        println!("POST /checkout ({body}):");
        let request = axum::http::Request::post("/checkout")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = client.send(request).await;
        response.settle().await;
        println!("  status {}", response.status());
        for report in response.reports() {
            if let Some(reason) = report.skip_reason {
                println!("  skipped: {} ({reason})", report.task.unwrap().name());
            }
        }
    }
}
