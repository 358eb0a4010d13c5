//! Over real TCP: the semantics page, "Errors from the ecosystem" — axum's own error
//! responses keep what their author made public: a handler's text for a 4xx becomes the
//! message, axum's extractor rejections keep their location and reason in `details`, and a
//! 5xx text never reaches the body.

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use errands::{Errands, ErrorReport};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Signup {
    #[allow(dead_code)]
    email: String,
}

#[derive(Deserialize)]
struct Paging {
    #[allow(dead_code)]
    page: u32,
}

async fn app() -> (std::net::SocketAddr, Errands, common::Probe) {
    let probe = common::Probe::new();
    let sink = probe.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &ErrorReport| {
            sink.hit(format!(
                "{}:{}:{}",
                r.origin.as_str(),
                r.status.map(|s| s.as_u16()).unwrap_or(0),
                r.code.as_deref().unwrap_or("-")
            ))
        })
        .build();
    let app = Router::new()
        .route(
            "/users",
            post(|| async {
                Err::<(), _>((StatusCode::CONFLICT, "email already taken".to_string()))
            }),
        )
        .route(
            "/secret",
            get(|| async {
                Err::<(), _>((
                    StatusCode::BAD_GATEWAY,
                    "db at 10.0.0.7 refused".to_string(),
                ))
            }),
        )
        .route("/json", post(|_: axum::Json<Signup>| async { "ok" }))
        .route(
            "/query",
            get(|_: axum::extract::Query<Paging>| async { "ok" }),
        )
        .route(
            "/orders/{id}",
            get(|_: axum::extract::Path<u64>| async { "ok" }),
        )
        .route("/form", post(|_: axum::Form<Signup>| async { "ok" }))
        .layer(errands.layer());
    (common::serve(app).await, errands, probe)
}

async fn call(
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.request(method, format!("http://{addr}{path}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert_eq!(body["success"], false, "{body}");
    (status, body)
}

#[tokio::test]
async fn a_handlers_text_for_a_4xx_is_its_message_and_a_5xx_text_never_shows() {
    let (addr, errands, probe) = app().await;
    let (status, body) = call(addr, reqwest::Method::POST, "/users", None, "").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "email already taken");
    assert_eq!(body["code"], "conflict");
    let (status, body) = call(addr, reqwest::Method::GET, "/secret", None, "").await;
    assert_eq!(status, 502);
    assert!(!body.to_string().contains("10.0.0.7"), "{body}");
    common::idle(&errands).await;
    assert_eq!(
        probe.events(),
        ["handler:409:conflict", "handler:502:bad_gateway"]
    );
}

#[tokio::test]
async fn axums_own_extractor_rejections_keep_location_and_reason() {
    let (addr, errands, probe) = app().await;
    let json = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let cases = [
        (
            reqwest::Method::POST,
            "/json",
            json,
            "{}",
            422,
            "body",
            "json_invalid",
            "missing field `email`",
        ),
        (
            reqwest::Method::POST,
            "/json",
            json,
            "{",
            400,
            "body",
            "json_syntax",
            "EOF",
        ),
        (
            reqwest::Method::POST,
            "/json",
            None,
            "{}",
            415,
            "header",
            "content_type",
            "Content-Type",
        ),
        (
            reqwest::Method::GET,
            "/query?page=x",
            None,
            "",
            400,
            "query",
            "query_invalid",
            "page",
        ),
        (
            reqwest::Method::GET,
            "/orders/abc",
            None,
            "",
            400,
            "path",
            "path_invalid",
            "abc",
        ),
        (
            reqwest::Method::POST,
            "/form",
            form,
            "name=x",
            422,
            "body",
            "form_invalid",
            "missing field `email`",
        ),
    ];
    let count = cases.len();
    for (method, path, content_type, body, status, location, kind, reason) in cases {
        let (got, response) = call(addr, method, path, content_type, body).await;
        assert_eq!(got, status, "{path}: {response}");
        let violation = &response["details"][0];
        assert_eq!(violation["loc"][0], location, "{path}: {response}");
        assert_eq!(violation["type"], kind, "{path}: {response}");
        let msg = violation["msg"].as_str().unwrap();
        assert!(msg.contains(reason), "{path}: {msg}");
        assert!(
            msg.len() <= errands::Violation::MAX_MSG + 3,
            "{path}: bounded"
        );
    }
    common::idle(&errands).await;
    let events = probe.events();
    assert_eq!(events.len(), count, "{events:?}");
    assert!(
        events.iter().all(|e| e.starts_with("rejection:")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_rejection_echo_is_bounded() {
    let (addr, _errands, _probe) = app().await;
    let long = "x".repeat(10_000);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{addr}/orders/{long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body.to_string().len() < 1024, "{body}");
    assert_eq!(body["details"][0]["loc"], json!(["path"]));
}
