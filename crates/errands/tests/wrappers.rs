//! The semantics page, "Type matching through wrappers": mappers, `retry_on` and the error
//! handler registry find an error's type whether it arrives plain, as a bare `anyhow::Error`,
//! with `anyhow` context, through a thiserror `#[error(transparent)]` variant, boxed, or inside
//! an `errands::Error`; and reporters receive the original error object.
#![cfg(feature = "anyhow")]

mod common;

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use errands::testing::TestClient;
use errands::{
    ApiError, Errands, ErrorContext, ErrorHandlers, ErrorReport, RetryPolicy, TaskError, TaskInfo,
};

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct ConnectionError;

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("out of stock")]
    #[allow(dead_code)]
    OutOfStock,
}

async fn plain() -> Result<(), ConnectionError> {
    Err(ConnectionError)
}

async fn bare_anyhow() -> anyhow::Result<()> {
    Err(ConnectionError)?;
    Ok(())
}

async fn anyhow_context() -> anyhow::Result<()> {
    Err(ConnectionError).context("calling the upstream")?;
    Ok(())
}

async fn transparent() -> Result<(), AppError> {
    Err(ConnectionError)?;
    Ok(())
}

async fn boxed() -> Result<(), Box<dyn StdError + Send + Sync>> {
    Err(ConnectionError)?;
    Ok(())
}

async fn errands_error() -> errands::Result<()> {
    Err(ConnectionError)?;
    Ok(())
}

/// What a transparent `AppError` stands for.
fn app_error_inner(error: &AppError) -> Option<&(dyn StdError + 'static)> {
    match error {
        AppError::Connection(inner) => Some(inner),
        AppError::OutOfStock => None,
    }
}

/// The runtime most tests use: a mapper for `ConnectionError`, the transparent enum declared.
fn runtime() -> Errands {
    Errands::builder()
        .without_tracing_reporter()
        .transparent(app_error_inner)
        .map_error(|_: &ConnectionError, _: &ErrorContext| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "The upstream is unreachable.",
            )
        })
        .build()
}

/// How many attempts a task failing with `make`'s error gets under
/// `retry_on::<ConnectionError>()` with three attempts.
async fn attempts<F, Fut>(make: F) -> u32
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output: errands::TaskResult> + Send + 'static,
{
    let errands = runtime();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    errands
        .tasks()
        .immediate()
        .retry(
            RetryPolicy::exponential(Duration::from_millis(1))
                .max_attempts(3)
                .retry_on::<ConnectionError>(),
        )
        .schedule(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            make()
        })
        .unwrap();
    common::idle(&errands).await;
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn retry_on_finds_the_type_through_every_wrapper() {
    assert_eq!(attempts(plain).await, 3, "plain");
    assert_eq!(attempts(bare_anyhow).await, 3, "bare anyhow");
    assert_eq!(attempts(anyhow_context).await, 3, "anyhow with context");
    assert_eq!(attempts(transparent).await, 3, "thiserror transparent");
    assert_eq!(attempts(boxed).await, 3, "Box<dyn Error>");
    assert_eq!(attempts(errands_error).await, 3, "errands::Error");
}

#[tokio::test]
async fn mappers_find_the_type_through_every_wrapper() {
    let errands = runtime();
    // `?` works on each of these in a handler returning `errands::Result`.
    let app = Router::new()
        .route(
            "/plain",
            get(|| async { Ok::<_, errands::Error>(plain().await?) }),
        )
        .route(
            "/anyhow",
            get(|| async { Ok::<_, errands::Error>(bare_anyhow().await?) }),
        )
        .route(
            "/context",
            get(|| async { Ok::<_, errands::Error>(anyhow_context().await?) }),
        )
        .route(
            "/transparent",
            get(|| async { Ok::<_, errands::Error>(transparent().await?) }),
        )
        .route(
            "/boxed",
            get(|| async { Ok::<_, errands::Error>(boxed().await?) }),
        )
        .route("/errands", get(|| async { errands_error().await }))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    for route in [
        "/plain",
        "/anyhow",
        "/context",
        "/transparent",
        "/boxed",
        "/errands",
    ] {
        let response = client.get(route).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{route}");
        assert_eq!(response.json()["code"], "upstream_unreachable", "{route}");
    }
}

#[tokio::test]
async fn the_handler_registry_finds_the_type_through_every_wrapper() {
    let routed = Arc::new(AtomicU32::new(0));
    let counted = routed.clone();
    let registry = ErrorHandlers::new().on::<ConnectionError>(move |_: TaskInfo, _: TaskError| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let errands = Errands::builder()
        .without_tracing_reporter()
        .transparent(app_error_inner)
        .task_error_handler(registry)
        .build();
    let tasks = errands.tasks();
    tasks.schedule(plain()).unwrap();
    tasks.schedule(bare_anyhow()).unwrap();
    tasks.schedule(anyhow_context()).unwrap();
    tasks.schedule(transparent()).unwrap();
    tasks.schedule(boxed()).unwrap();
    tasks.schedule(errands_error()).unwrap();
    common::idle(&errands).await;
    assert_eq!(routed.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn reporters_receive_the_original_error_object() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |report: &ErrorReport| {
            let found = report
                .error()
                .map(|e| (e.is::<ConnectionError>(), e.to_string()));
            sink.lock().unwrap().push(found);
        })
        .build();
    let app = Router::new()
        .route(
            "/anyhow",
            get(|| async { Ok::<_, errands::Error>(bare_anyhow().await?) }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    assert_eq!(
        client.get("/anyhow").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    errands.tasks().schedule(plain()).unwrap();
    errands.tasks().schedule(common::panics()).unwrap();
    common::idle(&errands).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|s| **s == Some((true, "connection refused".to_owned())))
            .count(),
        2,
        "{seen:?}"
    );
    assert!(
        seen.contains(&None),
        "a panic has no error object: {seen:?}"
    );
}
