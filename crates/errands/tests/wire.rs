//! Over real TCP sockets: when is a response body "completely handed to the server", and
//! what happens when clients go away. Each after_response task records the request's
//! `TaskInfo::delivery()`.

mod common;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use common::{Probe, assert_balanced, idle, serve};
use errands::{Errands, TaskInfo, Tasks};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
struct Ctx {
    probe: Probe,
    errands: Errands,
}

/// Schedules an after_response task that records how the body was delivered.
fn record_delivery(ctx: &Ctx, tasks: &Tasks, label: &'static str) {
    let probe = ctx.probe.clone();
    tasks
        .after_response()
        .name(label)
        .schedule(async move {
            let delivery = TaskInfo::current().and_then(|info| info.delivery());
            probe.hit(format!("{label}:{delivery:?}"));
        })
        .unwrap();
}

async fn json(State(ctx): State<Ctx>, tasks: Tasks) -> Json<serde_json::Value> {
    record_delivery(&ctx, &tasks, "json");
    Json(serde_json::json!({"id": 1, "status": "created"}))
}

async fn empty(State(ctx): State<Ctx>, tasks: Tasks) -> StatusCode {
    record_delivery(&ctx, &tasks, "empty");
    StatusCode::NO_CONTENT
}

async fn stream(State(ctx): State<Ctx>, tasks: Tasks) -> Body {
    record_delivery(&ctx, &tasks, "stream");
    let probe = ctx.probe.clone();
    Body::from_stream(futures_util::stream::iter(0..3).then(move |i| {
        let probe = probe.clone();
        async move {
            if i == 2 {
                probe.gate("last chunk").await;
            }
            Ok::<_, Infallible>(Bytes::from(format!("chunk{i};")))
        }
    }))
}

async fn endless(State(ctx): State<Ctx>, tasks: Tasks) -> Body {
    record_delivery(&ctx, &tasks, "endless");
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    Body::from_stream(futures_util::stream::repeat(chunk).map(Ok::<_, Infallible>))
}

async fn stuck(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
    tasks
        .after_response()
        .name("stuck_after")
        .schedule(async {})
        .unwrap();
    ctx.probe.hit("stuck handler waiting");
    ctx.probe.gate("never").await;
    "unreachable"
}

async fn ws(State(ctx): State<Ctx>, tasks: Tasks, upgrade: WebSocketUpgrade) -> Response {
    record_delivery(&ctx, &tasks, "upgrade");
    upgrade.on_upgrade(move |socket| talk(ctx, tasks, socket))
}

/// Inside the socket the request is over: tasks scheduled here start at once.
async fn talk(ctx: Ctx, tasks: Tasks, mut socket: WebSocket) {
    while let Some(Ok(Message::Text(text))) = socket.recv().await {
        let probe = ctx.probe.clone();
        let label = text.to_string();
        tasks
            .after_response()
            .schedule(async move { probe.hit(format!("ws task:{label}")) })
            .unwrap();
        ctx.probe.reached(&format!("ws task:{text}")).await;
        if socket
            .send(Message::Text(format!("done {text}").into()))
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn start() -> (Ctx, std::net::SocketAddr) {
    let errands = Errands::new();
    let ctx = Ctx {
        probe: Probe::new(),
        errands: errands.clone(),
    };
    let app = Router::new()
        .route("/json", get(json))
        .route("/empty", get(empty))
        .route("/stream", get(stream))
        .route("/endless", get(endless))
        .route("/stuck", get(stuck))
        .route("/ws", get(ws))
        .with_state(ctx.clone())
        .layer(errands.layer());
    let addr = serve(app).await;
    (ctx, addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_frame_json_body_counts_as_complete() {
    let (ctx, addr) = start().await;
    let response = client()
        .get(format!("http://{addr}/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["id"], 1);
    ctx.probe.reached("json:Some(Complete)").await;
    idle(&ctx.errands).await;
    assert_balanced(&ctx.errands);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_counts_as_complete() {
    let (ctx, addr) = start().await;
    let response = client()
        .get(format!("http://{addr}/empty"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    ctx.probe.reached("empty:Some(Complete)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_body_releases_the_task_only_after_the_last_chunk() {
    let (ctx, addr) = start().await;
    let mut response = client()
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap();
    let mut received = String::new();
    while !received.contains("chunk1;") {
        let chunk = response.chunk().await.unwrap().unwrap();
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Two chunks are at the client; the last one is held back: the task has not started.
    let stats = ctx.errands.stats();
    assert_eq!(
        (stats.pending, stats.running, stats.succeeded),
        (1, 0, 0),
        "{stats:?}"
    );
    ctx.probe.open("last chunk");
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(received, "chunk0;chunk1;chunk2;");
    ctx.probe.reached("stream:Some(Complete)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_body_still_runs_after_response_as_interrupted() {
    let (ctx, addr) = start().await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /endless HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 16 * 1024];
    let read = socket.read(&mut buf).await.unwrap();
    assert!(
        std::str::from_utf8(&buf[..read])
            .unwrap_or("")
            .starts_with("HTTP/1.1 200")
    );
    drop(socket);
    // The handler completed, so the after_response task runs; the body never finished.
    ctx.probe.reached("endless:Some(Interrupted)").await;
    idle(&ctx.errands).await;
    assert_eq!(ctx.errands.stats().succeeded, 1);
    assert_balanced(&ctx.errands);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_before_the_handler_completed_skips_after_tasks() {
    let probe_reports = Probe::new();
    let errands = Errands::builder()
        .reporter(common::probe_reporter(&probe_reports))
        .build();
    let ctx = Ctx {
        probe: Probe::new(),
        errands: errands.clone(),
    };
    let app = Router::new()
        .route("/stuck", get(stuck))
        .with_state(ctx.clone())
        .layer(errands.layer());
    let addr = serve(app).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /stuck HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    ctx.probe.reached("stuck handler waiting").await;
    drop(socket);
    probe_reports
        .reached("report:task:skipped:stuck_after")
        .await;
    idle(&errands).await;
    assert_eq!(errands.stats().skipped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_work_in_websocket_upgrade_handlers_and_inside_the_socket() {
    let (ctx, addr) = start().await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    // The upgrade response (101, empty body) was handed over: the handler's task ran.
    ctx.probe.reached("upgrade:Some(Complete)").await;
    for text in ["a", "b"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("done {text}"));
    }
    socket.close(None).await.unwrap();
    idle(&ctx.errands).await;
    assert_eq!(ctx.errands.stats().succeeded, 3);
    assert_balanced(&ctx.errands);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_and_unsafe_ids_are_replaced() {
    let (_ctx, addr) = start().await;
    let ok = client()
        .get(format!("http://{addr}/empty"))
        .header("x-request-id", "abc-123.X:y_z")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "abc-123.X:y_z");
    let replaced = client()
        .get(format!("http://{addr}/empty"))
        .header("x-request-id", "evil\" id")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(id.as_bytes()[14], b'7', "UUIDv7: {id}");
}

/// What the handler sees: its `RequestId`, and every `x-request-id` value of its request.
async fn seen(id: errands::RequestId, headers: axum::http::HeaderMap) -> String {
    let values: Vec<&str> = headers
        .get_all("x-request-id")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    format!("{id} {}", values.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_header_carries_exactly_the_request_id() {
    let errands = Errands::new();
    let app = Router::new()
        .route("/seen", get(seen))
        .layer(errands.layer());
    let addr = serve(app).await;
    let cases: [&[&str]; 4] = [&[], &["abc-1"], &["bad id"], &["abc-2", "abc-3"]];
    for sent in cases {
        let mut request = client().get(format!("http://{addr}/seen"));
        for value in sent {
            request = request.header("x-request-id", *value);
        }
        let response = request.send().await.unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        // One value, the id the handler extracts and the response echoes.
        assert_eq!(body, format!("{echoed} {echoed}"), "sent {sent:?}");
        match sent.first() {
            Some(first) if !first.contains(' ') => assert_eq!(echoed, *first),
            _ => assert_eq!(echoed.len(), 36, "a generated id for {sent:?}: {echoed}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_around_the_whole_router_learns_the_route_from_the_tasks_extractor() {
    let routes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = routes.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &errands::ErrorReport| seen.lock().unwrap().push(r.route.clone()))
        .build();
    async fn failing(tasks: Tasks) -> Result<&'static str, errands::ScheduleError> {
        tasks
            .after_response()
            .schedule(async { Err::<(), _>(std::io::Error::other("failed")) })?;
        Ok("ok")
    }
    let inner = Router::new().route("/items/{id}", get(failing));
    // The layer runs before the router has matched: the route is not known at `call`.
    let app = Router::new().fallback_service(tower::Layer::layer(&errands.layer(), inner));
    let addr = serve(app).await;
    let response = client()
        .get(format!("http://{addr}/items/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    idle(&errands).await;
    assert_eq!(*routes.lock().unwrap(), [Some("/items/{id}".to_owned())]);
}
