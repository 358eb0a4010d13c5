//! Attacks from one client against a real demo process over loopback, bounded in count and
//! time: slow request heads under a lowered file-descriptor limit (`prlimit`), and a declared
//! body over the limit (the export storm and the oversized echo are in `e2e.rs`). Figures
//! are printed with `--nocapture` for docs/RELIABILITY.md.

mod common;

use std::time::Instant;

use common::{Demo, PATIENCE};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW: usize = 1100;

/// Opens `count` connections to `addr`, each sending half a request head and no more.
async fn slow_heads(addr: &str, count: usize) -> Vec<TcpStream> {
    let mut slow = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /products HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    slow
}

/// Waits until the server has closed every one of `slow`.
async fn all_closed(slow: &mut [TcpStream]) {
    let mut buffer = Vec::new();
    for stream in slow {
        buffer.clear();
        let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "every slow connection is closed");
    }
}

/// Lowers the file limit of the process `pid` to `files`.
fn limit_files(pid: u32, files: u32) {
    let limited = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={files}:{files}"),
        ])
        .status()
        .expect("prlimit is installed");
    assert!(limited.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_cannot_take_the_service_down_even_at_its_fd_limit() {
    let demo = Demo::start(&[
        "--header-read-timeout-ms",
        "1000",
        "--max-connections",
        "900",
    ])
    .await;
    // The server process may hold at most 1024 files: fewer than the attack's connections.
    limit_files(demo.pid(), 1024);
    let attack = Instant::now();
    let mut slow = slow_heads(&demo.addr, SLOW).await;
    let sent = attack.elapsed();
    // A well-behaved client is answered within the header read timeout (plus its own wait
    // in the backlog), not after the attacker leaves: the attacker never leaves here.
    let probe = tokio::time::timeout(PATIENCE, demo.get("/products"))
        .await
        .expect("the probe is answered while the attack holds its connections");
    assert_eq!(probe.status(), 200);
    println!(
        "{SLOW} slow heads sent in {sent:?}; probe answered {:?} after the attack began",
        attack.elapsed()
    );

    all_closed(&mut slow).await;
    println!(
        "all {SLOW} slow connections closed after {:?}",
        attack.elapsed()
    );
    let stats: Value = demo.get_json("/stats").await;
    assert_eq!(stats["rejected_by_server"], SLOW as u64, "{stats}");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_answered_413_at_once() {
    let demo = Demo::start(&[]).await;
    let mut stream = TcpStream::connect(&demo.addr).await.unwrap();
    stream
        .write_all(b"POST /signups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut answer))
        .await
        .expect("answered without the rest of the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_files_the_server_backs_off_and_resumes_within_the_header_timeout() {
    const HEADS: usize = 300;
    // The default connection limit (1 024) is far above what 128 files allow: accepting
    // fails with "too many open files" until the slow connections are closed.
    let mut demo = Demo::start(&["--header-read-timeout-ms", "1000"]).await;
    limit_files(demo.pid(), 128);
    let attack = Instant::now();
    let mut slow = slow_heads(&demo.addr, HEADS).await;
    demo.wait_for("accepting a connection failed: backing off")
        .await;
    let probe = tokio::time::timeout(PATIENCE, demo.get("/products"))
        .await
        .expect("service resumes while the attack holds its connections");
    assert_eq!(probe.status(), 200);
    println!(
        "out of files: probe answered {:?} after the attack began",
        attack.elapsed()
    );
    let mut buffer = Vec::new();
    for stream in &mut slow {
        buffer.clear();
        let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "every slow connection is closed");
    }
    println!(
        "out of files: all {HEADS} closed after {:?}",
        attack.elapsed()
    );
}
