//! Error rendering: whatever a handler fails with — an explicit `ApiError` with any status,
//! code, message and details, validation violations, an unmapped error or a panic with any
//! text — and whatever request id and body the client sends, the response is a well-formed
//! error body in the chosen format, carrying the response's request id, and a 5xx from an
//! internal error or a panic is exactly the public one.

#![no_main]

use std::cell::Cell;
use std::sync::Once;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use errands::{ApiError, Errands, ValidationError, Violation};
use http_body_util::BodyExt;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

#[derive(Arbitrary, Clone, Debug)]
struct Case {
    problem_json: bool,
    request_id: Vec<u8>,
    failure: Failure,
}

#[derive(Arbitrary, Clone, Debug)]
enum Failure {
    Api {
        status: u16,
        code: String,
        message: String,
        details: Option<String>,
    },
    Invalid(Vec<(Vec<String>, String, String)>),
    Internal(String),
    Panic(String),
    /// The body goes to a validated JSON extractor.
    Body(Vec<u8>),
}

thread_local! {
    static PANIC_EXPECTED: Cell<bool> = const { Cell::new(false) };
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    static APPS: [Router; 2] = [app(Errands::builder()), app(Errands::builder().problem_json())];
}

fn app(builder: errands::ErrandsBuilder) -> Router {
    let errands = builder.without_tracing_reporter().build();
    Router::new()
        .route("/fail", post(fail))
        .route(
            "/body",
            post(|errands::extract::Json(_): errands::extract::Json<Vec<u32>>| async {}),
        )
        .layer(errands.layer())
}

async fn fail(axum::Extension(failure): axum::Extension<Failure>) -> errands::Result<()> {
    match failure {
        Failure::Api {
            status,
            code,
            message,
            details,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut error = ApiError::new(status, code, message);
            if let Some(details) = details {
                error = error.with_details(Value::String(details));
            }
            Err(error.into())
        }
        Failure::Invalid(violations) => Err(ValidationError::new(
            violations
                .into_iter()
                .map(|(loc, msg, kind)| Violation::new(loc, msg, kind))
                .collect(),
        )
        .into()),
        Failure::Internal(text) => Err(errands::Error::new(std::io::Error::other(text))),
        Failure::Panic(text) => {
            PANIC_EXPECTED.set(true);
            panic!("{text}")
        }
        Failure::Body(_) => Ok(()),
    }
}

/// Panics of the handler are the case under test, and errands catches them; any other
/// panic is a finding.
fn quiet_expected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PANIC_EXPECTED.replace(false) {
                previous(info);
            }
        }));
    });
}

fuzz_target!(|case: Case| {
    quiet_expected_panics();
    let (path, body) = match &case.failure {
        Failure::Body(body) => ("/body", body.clone()),
        _ => ("/fail", Vec::new()),
    };
    let mut request = Request::post(path)
        .header("content-type", "application/json")
        .extension(case.failure.clone())
        .body(Body::from(body))
        .unwrap();
    if let Ok(id) = case.request_id.as_slice().try_into() {
        request.headers_mut().insert("x-request-id", id);
    }
    let app = APPS.with(|apps| apps[usize::from(case.problem_json)].clone());
    let (status, id, body) = RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let response = app.oneshot(request).await.unwrap();
            let id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let status = response.status();
            (
                status,
                id,
                response.into_body().collect().await.unwrap().to_bytes(),
            )
        })
    });
    if matches!(case.failure, Failure::Body(_)) && status == StatusCode::OK {
        return;
    }
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status}"
    );
    let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let (message, expected_keys) = if case.problem_json {
        assert_eq!(body["status"], status.as_u16());
        (
            "detail",
            [
                "code",
                "detail",
                "details",
                "request_id",
                "status",
                "title",
                "type",
            ]
            .as_slice(),
        )
    } else {
        assert_eq!(body["success"], false);
        (
            "error",
            ["code", "details", "error", "request_id", "success"].as_slice(),
        )
    };
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected_keys);
    assert_eq!(body["request_id"], id.as_str());
    match &case.failure {
        Failure::Internal(_) | Failure::Panic(_) => {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body[message], "Internal server error.");
            assert_eq!(body["details"], Value::Null);
        }
        Failure::Api {
            code,
            message: text,
            ..
        } => {
            assert_eq!(body["code"], code.as_str());
            assert_eq!(body[message], text.as_str());
        }
        Failure::Invalid(violations) => {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                body["details"].as_array().map(Vec::len),
                Some(violations.len())
            );
        }
        Failure::Body(_) => {
            assert!(body["details"].as_array().is_some_and(|v| !v.is_empty()));
        }
    }
});
