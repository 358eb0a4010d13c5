//! Over real TCP, through `Errands::serve`: the semantics page, "Layers from tower-http" —
//! `TraceLayer`, `TimeoutLayer`, `CorsLayer`, `CompressionLayer`, `CatchPanicLayer` and
//! `RequestBodyLimitLayer`, each inside and outside the application's errands layer: error
//! bodies keep the schema and the request id, each error is reported once, and tasks are
//! skipped for the status that was sent, never for a client that did not leave.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::routing::{get, post};
use common::Probe;
use errands::{ApiError, Errands, ErrorReport, SkipReason, Tasks};
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

#[derive(Clone, Copy, Debug)]
enum Side {
    /// `.layer(tower_http).layer(errands)`: errands outside.
    Inside,
    /// `.layer(errands).layer(tower_http)`: the tower-http layer outside.
    Outside,
}

fn routes(probe: &Probe) -> Router {
    let skipped = probe.clone();
    let on_error = move |tasks: Tasks, label: &'static str| {
        let skipped = skipped.clone();
        tasks
            .after_response()
            .name(label)
            .schedule(async move { skipped.hit(format!("{label}:ran")) })
            .unwrap();
    };
    let slow = on_error.clone();
    let failing = on_error;
    Router::new()
        .route(
            "/slow",
            get(move |tasks: Tasks| async move {
                slow(tasks, "after_slow");
                std::future::pending::<()>().await;
            }),
        )
        .route(
            "/fail",
            get(move |tasks: Tasks| async move {
                failing(tasks, "after_fail");
                Err::<(), _>(ApiError::new(
                    StatusCode::CONFLICT,
                    "taken",
                    "Already taken.",
                ))
            }),
        )
        .route("/boom", get(|| async { panic_now() }))
        .route(
            "/upload",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route("/big", get(|| async { "hello ".repeat(1000) }))
}

fn panic_now() -> &'static str {
    panic!("handler bug")
}

/// Serves the routes with `layer` on `side` of the application's errands layer.
async fn serve<L>(layer: L, side: Side) -> (String, Errands, Probe, tokio::task::JoinHandle<()>)
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<
            axum::extract::Request,
            Response: axum::response::IntoResponse + 'static,
            Error: Into<std::convert::Infallible> + 'static,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    let probe = Probe::new();
    let reports = probe.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &ErrorReport| {
            let skip = match r.skip_reason {
                Some(SkipReason::ErrorStatus(status)) => format!("skipped:{}", status.as_u16()),
                Some(other) => format!("skipped:{other:?}"),
                None => "-".to_owned(),
            };
            reports.hit(format!(
                "report:{}:{}:{}",
                r.status.map(|s| s.as_u16()).unwrap_or(0),
                skip,
                r.chain_text()
            ))
        })
        .build();
    let app = match side {
        Side::Inside => routes(&probe).layer(layer).layer(errands.layer()),
        Side::Outside => routes(&probe).layer(errands.layer()).layer(layer),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = {
        let errands = errands.clone();
        tokio::spawn(async move {
            errands.serve(listener, app).await.unwrap();
        })
    };
    (base, errands, probe, server)
}

async fn stop(errands: Errands, server: tokio::task::JoinHandle<()>) {
    errands.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Asserts an error response in the schema with the request id; returns the body.
async fn schema(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let id = response
        .headers()
        .get("x-request-id")
        .expect("the request id header")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    assert_eq!(body["success"], false, "{body}");
    body
}

/// What every layer must keep: a handler's error in the schema, one report, its task
/// skipped for the error status.
async fn the_pipeline_holds(base: &str, errands: &Errands, probe: &Probe) {
    let body = schema(
        client().get(format!("{base}/fail")).send().await.unwrap(),
        409,
    )
    .await;
    assert_eq!(body["code"], "taken");
    common::idle(errands).await;
    let events = probe.events();
    assert_eq!(
        events,
        [
            "report:409:-:Already taken. (taken)",
            "report:409:skipped:409:"
        ],
        "one report for the error, one for the skipped task"
    );
}

#[tokio::test]
async fn trace_layer_on_either_side() {
    for side in [Side::Inside, Side::Outside] {
        let (base, errands, probe, server) = serve(TraceLayer::new_for_http(), side).await;
        the_pipeline_holds(&base, &errands, &probe).await;
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn cors_layer_on_either_side() {
    for side in [Side::Inside, Side::Outside] {
        let cors = CorsLayer::new()
            .allow_origin(HeaderValue::from_static("https://app.example"))
            .allow_methods([Method::GET, Method::POST]);
        let (base, errands, probe, server) = serve(cors, side).await;
        let preflight = client()
            .request(Method::OPTIONS, format!("{base}/fail"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{side:?}");
        let failed = client()
            .get(format!("{base}/fail"))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            failed.headers()["access-control-allow-origin"],
            "https://app.example",
            "{side:?}: error responses keep the CORS headers"
        );
        schema(failed, 409).await;
        common::idle(&errands).await;
        assert_eq!(probe.events().len(), 2, "{side:?}: {:?}", probe.events());
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn compression_layer_on_either_side() {
    for side in [Side::Inside, Side::Outside] {
        let (base, errands, probe, server) = serve(CompressionLayer::new(), side).await;
        let big = client()
            .get(format!("{base}/big"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(big.headers()["content-encoding"], "gzip", "{side:?}");
        assert!(big.headers().contains_key("x-request-id"), "{side:?}");
        the_pipeline_holds(&base, &errands, &probe).await;
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn timeout_layer_on_either_side() {
    for side in [Side::Inside, Side::Outside] {
        let timeout =
            TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_millis(50));
        let (base, errands, probe, server) = serve(timeout, side).await;
        let body = schema(
            client().get(format!("{base}/slow")).send().await.unwrap(),
            408,
        )
        .await;
        assert_eq!(body["code"], "request_timeout", "{side:?}");
        common::idle(&errands).await;
        assert_eq!(
            probe.events(),
            ["report:408:-:", "report:408:skipped:408:"],
            "{side:?}: one report, and the task skipped for the 408 the client got"
        );
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn request_body_limit_layer_inside_and_the_wrong_side_as_documented() {
    for side in [Side::Inside, Side::Outside] {
        let (base, errands, probe, server) = serve(RequestBodyLimitLayer::new(16), side).await;
        let response = client()
            .post(format!("{base}/upload"))
            .body(vec![b'x'; 1000])
            .send()
            .await
            .unwrap();
        match side {
            Side::Inside => {
                let body = schema(response, 413).await;
                assert_eq!(body["code"], "payload_too_large");
                common::idle(&errands).await;
                assert_eq!(probe.events().len(), 1, "{:?}", probe.events());
            }
            Side::Outside => {
                // Answered before the request reached errands: tower-http's own 413.
                assert_eq!(response.status(), 413);
                assert!(!response.headers().contains_key("x-request-id"));
                common::idle(&errands).await;
                assert!(probe.events().is_empty(), "{:?}", probe.events());
            }
        }
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn catch_panic_layer_on_either_side() {
    for side in [Side::Inside, Side::Outside] {
        let (base, errands, probe, server) = serve(CatchPanicLayer::new(), side).await;
        let body = schema(
            client().get(format!("{base}/boom")).send().await.unwrap(),
            500,
        )
        .await;
        assert_eq!(body["code"], "internal_error", "{side:?}");
        assert!(!body.to_string().contains("handler bug"), "{body}");
        common::idle(&errands).await;
        let events = probe.events();
        assert_eq!(events.len(), 1, "{side:?}: {events:?}");
        // Outside, errands catches the panic first and reports its message; inside, the
        // layer swallowed it, and the report says what the layer answered.
        let expected = match side {
            Side::Outside => "handler bug",
            Side::Inside => "Service panicked",
        };
        assert!(events[0].ends_with(expected), "{side:?}: {events:?}");
        stop(errands, server).await;
    }
}

#[tokio::test]
async fn routes_outside_the_errands_layer_stay_untracked() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let waits_for_idle = {
        let errands = errands.clone();
        move || async move {
            // Waiting for idle from inside a request only works if it is not tracked.
            errands.idle().await;
            "idle"
        }
    };
    let app = Router::new()
        .route("/inside", get(|| async { "in" }))
        .layer(errands.layer())
        .route("/health", get(waits_for_idle))
        .route("/broken", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = {
        let errands = errands.clone();
        tokio::spawn(async move {
            errands.serve(listener, app).await.unwrap();
        })
    };
    let health = client().get(format!("{base}/health")).send().await.unwrap();
    assert!(!health.headers().contains_key("x-request-id"));
    assert_eq!(health.text().await.unwrap(), "idle");
    let broken = client().get(format!("{base}/broken")).send().await.unwrap();
    assert_eq!(broken.status(), 503);
    assert!(
        !broken.headers().contains_key("x-request-id"),
        "left as it is"
    );
    stop(errands, server).await;
}
