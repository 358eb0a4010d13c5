//! The semantics page, "The error pipeline": every error renders in one schema with the request id, and is reported once.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use common::{assert_balanced, idle};
use errands::extract::{Form, Json, Path, Query};
use errands::testing::{TestClient, TestResponse};
use errands::{ApiError, Errands, ErrorContext, Origin, TaskInfo, ValidationError, Violation};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Deserialize)]
struct Signup {
    #[allow(dead_code)]
    email: String,
}

#[derive(Deserialize)]
struct Paging {
    #[allow(dead_code)]
    page: Option<u32>,
}

#[derive(Deserialize)]
struct Line {
    #[allow(dead_code)]
    quantity: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("only {available} left")]
struct InsufficientStock {
    available: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("checkout failed")]
struct CheckoutFailed {
    #[source]
    source: InsufficientStock,
}

#[derive(Debug, thiserror::Error)]
#[error("payment declined")]
struct Declined;

fn routes() -> Router {
    Router::new()
        .route("/signup", post(|Json(_): Json<Signup>| async { "ok" }))
        .route("/search", get(|Query(_): Query<Paging>| async { "ok" }))
        .route(
            "/orders/{id}",
            get(|Path(id): Path<u64>| async move { id.to_string() }),
        )
        .route(
            "/lines",
            post(|Form(_): Form<Line>| async { "ok" }).get(|Form(_): Form<Line>| async { "ok" }),
        )
        .route(
            "/small",
            post(|Json(_): Json<Value>| async { "ok" }).layer(DefaultBodyLimit::max(16)),
        )
        .route(
            "/unmapped",
            get(|| async {
                Err::<(), errands::Error>(std::io::Error::other("db password=hunter2").into())
            }),
        )
        .route(
            "/stock",
            post(|| async { Err::<(), errands::Error>(InsufficientStock { available: 2 }.into()) }),
        )
        .route(
            "/checkout",
            post(|| async {
                Err::<(), errands::Error>(
                    CheckoutFailed {
                        source: InsufficientStock { available: 1 },
                    }
                    .into(),
                )
            }),
        )
        .route(
            "/declined",
            post(|| async { Err::<(), _>(errands::Error::from(Declined)) }),
        )
        .route(
            "/explicit",
            get(|| async {
                Err::<(), _>(
                    ApiError::new(
                        StatusCode::PAYMENT_REQUIRED,
                        "plan_expired",
                        "Your plan expired.",
                    )
                    .with_details(json!({"plan": "pro"})),
                )
            }),
        )
        .route(
            "/own-body",
            get(|| async { (StatusCode::BAD_REQUEST, "written by the handler") }),
        )
        .route(
            "/own-json",
            get(|| async { (StatusCode::BAD_REQUEST, axum::Json(json!({"mine": true}))) }),
        )
        .route(
            "/own-500",
            get(|| async {
                (
                    StatusCode::BAD_GATEWAY,
                    [("content-encoding", "identity"), ("retry-after", "5")],
                    "upstream 10.0.0.7 refused",
                )
            }),
        )
        .route("/axum-json", post(|_: axum::Json<Value>| async { "ok" }))
        .route(
            "/invalid",
            get(|| async {
                Err::<(), ValidationError>(
                    Violation::new(["query", "email"], "must contain @", "value_error").into(),
                )
            }),
        )
}

fn errands_with_mappers(builder: errands::ErrandsBuilder) -> Errands {
    builder
        .without_tracing_reporter()
        .map_error(|e: &InsufficientStock, ctx: &ErrorContext| {
            let available = e.available;
            ctx.task()
                .name("notify_purchasing")
                .schedule(async move {
                    let info = TaskInfo::current().unwrap();
                    assert_eq!(info.response_status(), Some(StatusCode::CONFLICT));
                    assert_eq!(info.delivery(), Some(errands::Delivery::Complete));
                    let _ = available;
                })
                .unwrap();
            ApiError::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Not enough items in stock.",
            )
            .with_details(json!({"available": available}))
        })
        .map_error(|_: &CheckoutFailed, _: &ErrorContext| {
            ApiError::new(StatusCode::CONFLICT, "checkout_failed", "Checkout failed.")
        })
        .map_error(|_: &Declined, _: &ErrorContext| -> ApiError { panic!("mapper bug") })
        .build()
}

fn client_with(builder: errands::ErrandsBuilder) -> (Errands, TestClient) {
    let errands = errands_with_mappers(builder);
    let app = routes().layer(errands.layer());
    (errands.clone(), TestClient::new(app, &errands))
}

fn client() -> (Errands, TestClient) {
    client_with(Errands::builder())
}

async fn send(
    client: &TestClient,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    client
        .send(request.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// Asserts the exact errands schema and returns the body.
fn assert_schema(response: &TestResponse, status: u16, code: &str, error: &str, details: Value) {
    assert_eq!(response.status().as_u16(), status, "{}", response.text());
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let id = response.request_id().unwrap();
    assert_eq!(response.headers()["x-request-id"], id.as_str());
    assert_eq!(
        response.json(),
        json!({"success": false, "error": error, "code": code, "details": details, "request_id": id.as_str()})
    );
}

fn assert_internal(response: &TestResponse) {
    assert_schema(
        response,
        500,
        "internal_error",
        "Internal server error.",
        Value::Null,
    );
}

#[tokio::test]
async fn unknown_route_is_404_not_found() {
    let (_, client) = client();
    let response = client.get("/nowhere").await;
    assert_schema(&response, 404, "not_found", "Not found.", Value::Null);
    let reports = response.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].origin, Origin::Rejection);
    assert_eq!(reports[0].level(), tracing::Level::INFO);
}

#[tokio::test]
async fn wrong_method_is_405_and_keeps_the_allow_header() {
    let (_, client) = client();
    let response = client.get("/signup").await;
    assert_schema(
        &response,
        405,
        "method_not_allowed",
        "Method not allowed.",
        Value::Null,
    );
    assert!(
        response.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(response.reports()[0].origin, Origin::Rejection);
}

#[tokio::test]
async fn json_without_a_json_content_type_is_415() {
    let (_, client) = client();
    let response = send(
        &client,
        "POST",
        "/signup",
        Some("text/plain"),
        r#"{"email":"a@b"}"#,
    )
    .await;
    assert_schema(
        &response,
        415,
        "unsupported_media_type",
        "Expected a request with `Content-Type: application/json`.",
        Value::Null,
    );
    let response = send(&client, "POST", "/signup", None, "").await;
    assert_eq!(response.status(), 415);
    let ok = send(
        &client,
        "POST",
        "/signup",
        Some("application/vnd.api+json; charset=utf-8"),
        r#"{"email":"a@b"}"#,
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let (_, client) = client();
    let response = send(
        &client,
        "POST",
        "/small",
        Some("application/json"),
        &format!("\"{}\"", "x".repeat(64)),
    )
    .await;
    assert_schema(
        &response,
        413,
        "payload_too_large",
        "The request body is too large.",
        Value::Null,
    );
}

#[tokio::test]
async fn json_body_errors_are_422_with_located_details() {
    let (_, client) = client();
    let wrong_type = send(
        &client,
        "POST",
        "/signup",
        Some("application/json"),
        r#"{"email": 1}"#,
    )
    .await;
    assert_schema(
        &wrong_type,
        422,
        "validation_error",
        "Validation error.",
        json!([{"loc": ["body", "email"], "msg": "invalid type: integer `1`, expected a string", "type": "invalid_type"}]),
    );
    let missing = send(&client, "POST", "/signup", Some("application/json"), "{}").await;
    assert_schema(
        &missing,
        422,
        "validation_error",
        "Validation error.",
        json!([{"loc": ["body", "email"], "msg": "missing field `email`", "type": "missing"}]),
    );
    let malformed = send(
        &client,
        "POST",
        "/signup",
        Some("application/json"),
        r#"{"email": "#,
    )
    .await;
    assert_schema(
        &malformed,
        422,
        "validation_error",
        "Validation error.",
        json!([{"loc": ["body"], "msg": "EOF while parsing a value at line 1 column 10", "type": "json_invalid"}]),
    );
    let trailing = send(
        &client,
        "POST",
        "/signup",
        Some("application/json"),
        r#"{"email": "a@b"} x"#,
    )
    .await;
    assert_eq!(trailing.json()["details"][0]["type"], "json_invalid");
    let report = &wrong_type.reports()[0];
    assert_eq!(report.origin, Origin::Rejection);
    assert_eq!(
        report.chain_text(),
        "request validation failed at body.email (invalid_type)"
    );
}

#[tokio::test]
async fn query_path_and_form_errors_are_422_located() {
    let (_, client) = client();
    let query = client.get("/search?page=abc").await;
    assert_eq!(query.status(), 422);
    assert_eq!(query.json()["details"][0]["loc"], json!(["query", "page"]));
    assert_eq!(client.get("/search?page=3").await.status(), 200);

    let path = client.get("/orders/abc").await;
    assert_schema(
        &path,
        422,
        "validation_error",
        "Validation error.",
        json!([{"loc": ["path", "id"], "msg": "expected u64", "type": "invalid_type"}]),
    );
    assert_eq!(client.get("/orders/12").await.text(), "12");

    let form = send(
        &client,
        "POST",
        "/lines",
        Some("application/x-www-form-urlencoded"),
        "quantity=many",
    )
    .await;
    assert_eq!(form.status(), 422);
    assert_eq!(
        form.json()["details"][0]["loc"],
        json!(["body", "quantity"])
    );
    let wrong_type = send(&client, "POST", "/lines", Some("application/json"), "{}").await;
    assert_eq!(wrong_type.json()["code"], "unsupported_media_type");
    let ok = send(
        &client,
        "POST",
        "/lines",
        Some("application/x-www-form-urlencoded"),
        "quantity=2",
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_handler_can_return_its_own_validation_error() {
    let (_, client) = client();
    let response = client.get("/invalid").await;
    assert_schema(
        &response,
        422,
        "validation_error",
        "Validation error.",
        json!([{"loc": ["query", "email"], "msg": "must contain @", "type": "value_error"}]),
    );
}

#[tokio::test]
async fn unmapped_errors_are_500_without_internal_text_and_reported_with_their_chain() {
    let (_, client) = client();
    let response = client.get("/unmapped").await;
    assert_internal(&response);
    assert!(!response.text().contains("hunter2"));
    let reports = response.reports();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!((report.origin, report.handled), (Origin::Handler, false));
    assert_eq!(report.chain_text(), "db password=hunter2");
    assert_eq!(report.chain[0].type_name, Some("std::io::error::Error"));
    assert_eq!(report.route.as_deref(), Some("/unmapped"));
    assert_eq!(report.level(), tracing::Level::ERROR);
}

#[tokio::test]
async fn explicit_api_errors_render_as_given() {
    let (_, client) = client();
    let response = client.get("/explicit").await;
    assert_schema(
        &response,
        402,
        "plan_expired",
        "Your plan expired.",
        json!({"plan": "pro"}),
    );
    assert!(response.reports()[0].handled);
}

#[tokio::test]
async fn mapped_domain_errors_render_with_their_code_and_attach_tasks_that_run_after_the_body() {
    let (errands, _) = client();
    let app = routes().layer(errands.layer());
    let response = app
        .oneshot(Request::post("/stock").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // The error body has not been handed over yet: the mapper's task waits for it.
    assert_eq!((errands.stats().pending, errands.stats().running), (1, 0));
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "insufficient_stock");
    assert_eq!(body["details"], json!({"available": 2}));
    idle(&errands).await;
    // It ran (with a 409 status and a complete body) although the status is an error.
    assert_eq!((errands.stats().succeeded, errands.stats().skipped), (1, 0));
    assert_balanced(&errands);
}

#[tokio::test]
async fn mappers_match_along_the_source_chain_outermost_first() {
    let (errands, client) = client();
    // CheckoutFailed wraps InsufficientStock; both have mappers: the outer one wins.
    let response = client.post("/checkout").await;
    assert_eq!(response.json()["code"], "checkout_failed");
    response.settle().await;
    assert_eq!(errands.stats().scheduled, 0, "the inner mapper did not run");

    // Without a mapper for the outer error, the inner one is found along the chain.
    let only_inner = Errands::builder()
        .without_tracing_reporter()
        .map_error(|e: &InsufficientStock, _: &ErrorContext| {
            ApiError::new(StatusCode::CONFLICT, "insufficient_stock", "Not enough.")
                .with_details(json!({"available": e.available}))
        })
        .build();
    let client = TestClient::new(routes().layer(only_inner.layer()), &only_inner);
    let response = client.post("/checkout").await;
    assert_eq!(response.json()["code"], "insufficient_stock");
    assert_eq!(response.json()["details"]["available"], 1);
    assert_eq!(
        response.reports()[0].chain_text(),
        "checkout failed: only 1 left"
    );
}

#[tokio::test]
async fn a_panicking_mapper_is_reported_and_the_error_becomes_500() {
    let (_, client) = client();
    let response = client.post("/declined").await;
    assert_internal(&response);
    let reports = response.reports();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert!(
        reports
            .iter()
            .any(|r| r.origin == Origin::ErrorHandler && r.chain_text() == "mapper bug")
    );
    assert!(
        reports
            .iter()
            .any(|r| r.origin == Origin::Handler && r.chain_text() == "payment declined")
    );
}

#[tokio::test]
async fn a_json_4xx_body_written_by_the_handler_is_kept_and_still_reported() {
    let (_, client) = client();
    let response = client.get("/own-json").await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json(), json!({"mine": true}));
    let reports = response.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn other_error_bodies_are_rendered_in_the_schema() {
    let (_, client) = client();
    // A handler's plain text for a 4xx is its public message (the semantics page).
    let text = client.get("/own-body").await;
    assert_schema(
        &text,
        400,
        "bad_request",
        "written by the handler",
        Value::Null,
    );
    // axum's own Json extractor: the schema, with axum's location and reason.
    let axum_json = send(&client, "POST", "/axum-json", Some("application/json"), "{").await;
    assert_eq!(axum_json.json()["code"], "bad_request");
    assert_eq!(axum_json.json()["details"][0]["loc"], json!(["body"]));
    // A 5xx body might carry internal text: always replaced.
    let internal = client.get("/own-500").await;
    assert_schema(
        &internal,
        502,
        "bad_gateway",
        "An upstream service failed.",
        Value::Null,
    );
    assert!(!internal.text().contains("10.0.0.7"));
    // Headers describing the old body do not travel with the new one; others do.
    assert!(internal.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(internal.headers()["retry-after"], "5");
    for response in [&text, &axum_json, &internal] {
        assert_eq!(response.reports().len(), 1);
    }
}

#[tokio::test]
async fn a_nested_errands_layer_passes_through_so_nothing_is_reported_twice() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let inner = routes().layer(errands.layer());
    let app = Router::new().nest("/api", inner).layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.get("/api/unmapped").await;
    assert_eq!(response.json()["code"], "internal_error");
    assert_eq!(response.reports().len(), 1);
    let missing = client.get("/api/orders/x").await;
    assert_eq!(missing.json()["details"][0]["loc"], json!(["path", "id"]));
    assert_eq!(missing.reports().len(), 1);
}

#[tokio::test]
async fn form_on_get_reads_the_query_string() {
    let (_, client) = client();
    assert_eq!(client.get("/lines?quantity=3").await.status(), 200);
    let bad = client.get("/lines?quantity=x").await;
    assert_eq!(
        bad.json()["details"][0]["loc"],
        json!(["query", "quantity"])
    );
}

#[tokio::test]
async fn problem_json_is_a_one_line_option() {
    let (_, client) = client_with(Errands::builder().problem_json());
    let response = client.post("/stock").await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let id = response.request_id().unwrap();
    assert_eq!(
        response.json(),
        json!({
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "Not enough items in stock.",
            "code": "insufficient_stock",
            "details": {"available": 2},
            "request_id": id.as_str(),
        })
    );
    let missing = client.get("/nowhere").await;
    assert_eq!(missing.json()["code"], "not_found");
    assert_eq!(missing.json()["status"], 404);
}

#[tokio::test]
async fn successful_responses_produce_no_reports() {
    let (_, client) = client();
    let response = client.get("/orders/1").await;
    assert_eq!(response.status(), 200);
    assert!(response.reports().is_empty());
}
