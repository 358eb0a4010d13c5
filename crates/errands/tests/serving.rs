//! Over real TCP, through `Errands::serve`: slow and abusive clients cannot take the server
//! down — slow request heads are closed by the header read timeout while others are served,
//! connections beyond the limit wait instead of exhausting the process, a stalled body gets
//! `408`, a declared length over the limit gets `413` at once, and what the server answers
//! by itself is counted.

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use errands::Errands;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for a test that would otherwise hang on a regression; never a wait for
/// work.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(errands: &Errands) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app =
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/echo",
                post(
                    |errands::extract::Json(v): errands::extract::Json<Value>| async move {
                        axum::Json(v)
                    },
                )
                .layer(DefaultBodyLimit::max(1024)),
            )
            .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let errands = errands.clone();
    let server = tokio::spawn(async move {
        errands.serve(listener, app).await.unwrap();
    });
    (addr, server)
}

async fn stop(errands: &Errands, server: tokio::task::JoinHandle<()>) {
    errands.begin_shutdown();
    tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&received).into_owned()
}

async fn probe(addr: std::net::SocketAddr) -> u16 {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = tokio::time::timeout(PATIENCE, client.get(format!("http://{addr}/")).send())
        .await
        .expect("the probe is answered")
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn slow_request_heads_are_closed_by_the_header_timeout_while_others_are_served() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .header_read_timeout(Duration::from_millis(300))
        .build();
    let (addr, server) = start(&errands).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // While the slow heads are open, others are served.
    assert_eq!(probe(addr).await, 200);
    for stream in &mut slow {
        until_closed(stream).await;
    }
    assert_eq!(errands.stats().rejected_by_server, 50);
    assert_eq!(probe(addr).await, 200);
    stop(&errands, server).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_a_slot_frees() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_connections(4)
        .header_read_timeout(Duration::from_millis(300))
        .build();
    let (addr, server) = start(&errands).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The fifth connection is accepted by the kernel (backlog) and served once one of the
    // silent ones is closed by the header timeout.
    let waiting = tokio::spawn(probe(addr));
    for stream in &mut silent {
        assert_eq!(until_closed(stream).await, "", "closed without an answer");
    }
    assert_eq!(waiting.await.unwrap(), 200);
    stop(&errands, server).await;
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_a_declared_length_over_the_limit_413_at_once() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .body_read_timeout(Duration::from_millis(300))
        .build();
    let (addr, server) = start(&errands).await;

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let answer = until_closed_or_answered(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // 3 MB declared, one byte sent: answered without waiting for the rest.
    let mut oversized = TcpStream::connect(addr).await.unwrap();
    oversized
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{")
        .await
        .unwrap();
    let answer = until_closed_or_answered(&mut oversized).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );
    stop(&errands, server).await;
}

/// Reads one response (head and a small body) without waiting for the connection to close.
async fn until_closed_or_answered(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap_or(0);
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if read == 0 || text.ends_with('}') {
            return text;
        }
    }
}

#[tokio::test]
async fn malformed_requests_and_oversized_heads_are_answered_by_the_server_and_counted() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_header_bytes(8 * 1024)
        .build();
    let (addr, server) = start(&errands).await;
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    assert!(until_closed(&mut garbage).await.starts_with("HTTP/1.1 400"));

    let mut huge = TcpStream::connect(addr).await.unwrap();
    let header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let _ = huge.write_all(header.as_bytes()).await;
    assert!(until_closed(&mut huge).await.starts_with("HTTP/1.1 431"));

    assert_eq!(errands.stats().rejected_by_server, 2);
    assert_eq!(probe(addr).await, 200);
    stop(&errands, server).await;
}

#[tokio::test]
async fn a_router_without_the_errands_layer_is_refused_before_accepting() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = handled.clone();
    let app = Router::new().fallback(move || {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        async { "fallback" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let error = tokio::time::timeout(PATIENCE, errands.serve(listener, app))
        .await
        .expect("refused at once")
        .expect_err("a router without the layer is refused");
    assert!(error.to_string().contains("errands layer"), "{error}");
    assert!(TcpStream::connect(addr).await.is_err(), "never listened");
    assert!(
        handled.load(std::sync::atomic::Ordering::SeqCst),
        "the probe reached the fallback, not a handler"
    );
}

#[tokio::test]
async fn a_half_sent_request_head_does_not_hold_the_drain() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .header_read_timeout(Duration::from_secs(3600))
        .drain_timeout(Duration::from_secs(3600))
        .build();
    let (addr, server) = start(&errands).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    assert_eq!(
        probe(addr).await,
        200,
        "served, so the half head was accepted too"
    );
    // With an hour's header and drain timeouts, only closing the half-sent connection at
    // once lets shutdown finish within the patience.
    stop(&errands, server).await;
    assert_eq!(until_closed(&mut half).await, "");
}
