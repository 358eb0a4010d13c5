//! The in-process driver behind `bench/instructions`: the endpoints of `bench-errands`, sent
//! one request after another through the router, without sockets.
//!
//! Usage: `bench-instructions <plain|task|fail> <requests>`
//!
//! Each request is built, sent with `oneshot`, and its body read to the end and dropped, as a
//! server would; then the driver waits for `Errands::idle`, so the request's task is terminal
//! before the next request starts. Logs are formatted as usual and written to a sink, so the
//! default reporter's event for a failed task is counted. At the end the task counters must
//! match the requests sent, or the driver panics: a run that lost work cannot give a figure.
//! Built with the `metrics` feature, errands records its metrics into a Prometheus recorder,
//! whose scrape must show the tasks too.

use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{get, post};
use errands::Errands;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[path = "../errands_endpoints.rs"]
mod endpoints;

use endpoints::{COUNTER, fail, task};

fn usage() -> ! {
    eprintln!("usage: bench-instructions <plain|task|fail> <requests>");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(count), None) = (args.next(), args.next(), args.next()) else {
        usage();
    };
    let method = match endpoint.trim_start_matches('/') {
        "plain" => Method::GET,
        "task" | "fail" => Method::POST,
        _ => usage(),
    };
    let uri = format!("/{}", endpoint.trim_start_matches('/'));
    let Ok(count) = count.parse::<u64>() else {
        usage();
    };

    tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .init();

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run(method, &uri, count));
}

async fn run(method: Method, uri: &str, count: u64) {
    // With the `metrics` feature, a Prometheus recorder records errands' metrics.
    let recorder = errands_bench_servers::metrics();
    // The default reporter: one tracing event per failed task.
    let errands = Errands::new();
    let app = Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/task", post(task))
        .route("/fail", post(fail))
        .layer(errands.layer());

    for _ in 0..count {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::empty())
            .expect("a request");
        let response = match app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the response body").to_bytes();
        assert_eq!(parts.status, StatusCode::OK, "{uri}: {body:?}");
        assert_eq!(&body[..], b"ok", "{uri}");
        errands.idle().await;
    }

    let stats = errands.stats();
    let tasks = if uri == "/plain" { 0 } else { count };
    let failed = if uri == "/fail" { count } else { 0 };
    assert_eq!(stats.scheduled, tasks, "{stats:?}");
    assert_eq!(stats.succeeded, tasks - failed, "{stats:?}");
    assert_eq!(stats.failed, failed, "{stats:?}");
    assert_eq!(stats.terminal(), tasks, "{stats:?}");
    assert_eq!(stats.in_flight(), 0, "{stats:?}");
    assert_eq!(stats.requests_in_flight, 0, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_eq!(COUNTER.load(Relaxed), tasks, "{stats:?}");
    #[cfg(feature = "metrics")]
    if let Some(recorder) = recorder {
        let scraped = recorder.render();
        let succeeded: u64 = scraped
            .lines()
            .filter(|line| line.starts_with("errands_tasks_finished_total{"))
            .filter(|line| line.contains("outcome=\"succeeded\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(succeeded, tasks - failed, "{scraped}");
    }
    #[cfg(not(feature = "metrics"))]
    let _ = recorder;
}
