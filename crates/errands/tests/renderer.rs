//! The semantics page, "The error pipeline": an application's own renderer replaces the body
//! format and nothing else — reports, mappers' tasks and the request id header stay.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use errands::testing::TestClient;
use errands::{ApiError, Errands, ErrorContext, Origin, RequestId};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("only {0} left")]
struct OutOfStock(u32);

fn client(render_panics: Arc<AtomicBool>) -> (TestClient, common::Probe) {
    let probe = common::Probe::new();
    let notified = probe.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .map_error(move |e: &OutOfStock, ctx: &ErrorContext| {
            let notified = notified.clone();
            ctx.task()
                .schedule(async move { notified.hit("purchasing notified") })
                .unwrap();
            ApiError::new(StatusCode::CONFLICT, "out_of_stock", "Out of stock.")
                .with_details(json!({"available": e.0}))
        })
        .render_errors(move |error: &ApiError, id: &RequestId| {
            assert!(!render_panics.load(Ordering::SeqCst), "renderer bug");
            let body = json!({
                "errors": [{"code": error.code(), "title": error.message(), "meta": error.details()}],
                "trace_id": id.as_str(),
            });
            (error.status(), axum::Json(body)).into_response()
        })
        .build();
    let app = Router::new()
        .route(
            "/stock",
            get(|| async { Err::<(), errands::Error>(OutOfStock(2).into()) }),
        )
        .route(
            "/internal",
            get(|| async {
                Err::<(), errands::Error>(std::io::Error::other("password=hunter2").into())
            }),
        )
        .layer(errands.layer());
    (TestClient::new(app, &errands), probe)
}

#[tokio::test]
async fn the_applications_renderer_shapes_every_error_body() {
    let (client, probe) = client(Arc::default());
    let response = client.get("/stock").await;
    response.settle().await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let id = response.request_id().expect("the request id header stays");
    assert_eq!(
        response.json(),
        json!({"errors": [{"code": "out_of_stock", "title": "Out of stock.", "meta": {"available": 2}}],
               "trace_id": id.as_str()})
    );
    assert!(probe.has("purchasing notified"), "mappers' tasks still run");
    assert_eq!(response.reports().len(), 1);

    let internal = client.get("/internal").await;
    assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!internal.text().contains("hunter2"), "{}", internal.text());
    assert_eq!(internal.json()["errors"][0]["code"], "internal_error");

    let unknown = client.get("/nowhere").await;
    assert_eq!(unknown.json()["errors"][0]["code"], "not_found");
}

#[tokio::test]
async fn a_panicking_renderer_falls_back_to_the_schema_and_is_reported() {
    let (client, _) = client(Arc::new(AtomicBool::new(true)));
    let response = client.get("/stock").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.json()["code"], "out_of_stock");
    let reports = response.reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports
            .iter()
            .any(|r| r.origin == Origin::ErrorHandler && r.chain_text() == "renderer bug")
    );
}
