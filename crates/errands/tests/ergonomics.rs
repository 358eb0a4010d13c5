//! What the API asks of its users: default names that tell two blocks of one handler apart,
//! an `on_error` that moves what it captured, `ErrorHandlers::on::<E>` without placeholders,
//! and a `TestClient` with headers, every method and typed JSON.

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use errands::testing::TestClient;
use errands::{Errands, ErrorHandlers, TaskError, TaskInfo, Tasks};
use serde::{Deserialize, Serialize};

#[tokio::test]
async fn two_async_blocks_of_one_handler_have_different_default_names() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route(
            "/signup",
            post(|tasks: Tasks| async move {
                tasks
                    .schedule(async { Err::<(), _>("welcome mail") })
                    .unwrap();
                tasks.schedule(async { Err::<(), _>("crm sync") }).unwrap();
            }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.post("/signup").await;
    response.settle().await;
    let names: Vec<String> = response
        .reports()
        .iter()
        .map(|r| r.task.as_ref().unwrap().name().to_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1], "{names:?}");
    assert!(
        names.iter().all(|n| n.contains("tests/ergonomics.rs:")),
        "the place they were scheduled: {names:?}"
    );
}

#[tokio::test]
async fn a_tasks_own_on_error_moves_what_it_captured() {
    let errands = Errands::builder().without_tracing_reporter().build();
    // A oneshot sender cannot be cloned: the handler must move it into its future.
    let (alert, alerted) = tokio::sync::oneshot::channel::<String>();
    errands
        .tasks()
        .immediate()
        .name("settle")
        .on_error(move |info, error| async move {
            let _ = alert.send(format!("{} failed: {error}", info.name()));
        })
        .schedule(async { Err::<(), _>("ledger down") })
        .unwrap();
    assert_eq!(alerted.await.unwrap(), "settle failed: ledger down");
}

#[tokio::test]
async fn the_registry_routes_by_type_with_one_type_argument() {
    #[derive(Debug, thiserror::Error)]
    #[error("smtp refused")]
    struct SmtpRefused;

    let (routed, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let registry = ErrorHandlers::new().on::<SmtpRefused>(move |info: TaskInfo, _: TaskError| {
        let routed = routed.clone();
        async move {
            let _ = routed.send(info.name().to_owned());
        }
    });
    let errands = Errands::builder()
        .without_tracing_reporter()
        .task_error_handler(registry)
        .build();
    errands
        .tasks()
        .immediate()
        .name("mail")
        .schedule(async { Err::<(), _>(SmtpRefused) })
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), "mail");
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Item {
    name: String,
}

#[tokio::test]
async fn the_test_client_sends_every_method_with_headers_and_typed_json() {
    let errands = Errands::new();
    let echo = |method: &'static str| {
        move |headers: HeaderMap, body: String| async move {
            let tenant = headers
                .get("x-tenant")
                .map(|v| v.to_str().unwrap().to_owned());
            axum::Json(serde_json::json!({"method": method, "tenant": tenant, "body": body}))
        }
    };
    let app = Router::new()
        .route(
            "/items/{id}",
            get(echo("GET"))
                .put(echo("PUT"))
                .patch(echo("PATCH"))
                .delete(echo("DELETE")),
        )
        .route(
            "/items",
            post(|axum::Json(item): axum::Json<Item>| async move { axum::Json(item) }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let lamp = Item {
        name: "lamp".into(),
    };
    assert_eq!(
        client.post("/items").json(&lamp).await.json_as::<Item>(),
        lamp
    );
    for (request, method) in [
        (client.put("/items/1"), "PUT"),
        (client.patch("/items/1"), "PATCH"),
        (client.delete("/items/1"), "DELETE"),
        (client.get("/items/1"), "GET"),
    ] {
        let response = request.header("x-tenant", "acme").body("raw").await;
        let json = response.json();
        assert_eq!(json["method"], method);
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["body"], "raw");
    }
}
