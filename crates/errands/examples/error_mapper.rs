//! An error mapper that gives a domain error its own status and code, and attaches a
//! notification task to the error response: it runs once the 409 was sent, although the
//! status is an error.
//!
//! Run: `cargo run -p errands --example error_mapper`

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use errands::testing::TestClient;
use errands::{ApiError, Errands, ErrorContext};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("only {available} of {sku} left")]
struct InsufficientStock {
    sku: &'static str,
    available: u32,
}

async fn notify_purchasing(sku: &'static str) {
    println!("  purchasing notified about {sku}");
}

async fn order() -> errands::Result<&'static str> {
    Err(InsufficientStock {
        sku: "lamp",
        available: 1,
    }
    .into())
}

#[tokio::main]
async fn main() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .map_error(|e: &InsufficientStock, ctx: &ErrorContext| {
            let _ = ctx
                .task()
                .name("notify_purchasing")
                .schedule(notify_purchasing(e.sku));
            ApiError::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Not enough items in stock.",
            )
            .with_details(json!({"sku": e.sku, "available": e.available}))
        })
        .build();
    let app = Router::new()
        .route("/orders", post(order))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    let response = client.post("/orders").await;
    println!("POST /orders -> {} {}", response.status(), response.text());
    response.settle().await;
    assert_eq!(response.json()["code"], "insufficient_stock");
    assert_eq!(errands.stats().succeeded, 1, "the mapper's task ran");
}
