//! The server behind [`Errands::serve`](crate::Errands::serve): hyper's HTTP/1.1 connections
//! with a real timer, under a connection limit, with timeouts for slow clients.
//!
//! * **Connection limit.** At most `max_connections` connections are served at once; beyond
//!   it, the server stops accepting, and new connections wait in the listen backlog (or are
//!   refused by the operating system when the backlog is full) until one closes.
//! * **Header read timeout.** A connection must deliver each request head within
//!   `header_read_timeout`, counted from when the connection opens or the previous response
//!   ends — so it also bounds a keep-alive connection's idle time. A slow or silent client is
//!   closed, and its slot freed, after that long at most.
//! * **Header size.** A request head larger than `max_header_bytes` is answered `431` by
//!   hyper, and the connection closed.
//! * **Body read timeout.** While a handler reads the request body, each wait for the next
//!   piece may last at most `body_read_timeout`; then reading fails with
//!   [`BodyTimedOut`](crate::BodyTimedOut).
//! * **Peer address.** Each request carries its connection's peer address, for axum's
//!   `ConnectInfo<SocketAddr>` extractor.
//! * **Accept errors** — running out of file descriptors, most often — pause accepting with
//!   a growing backoff (10 ms up to 1 s) instead of spinning, and are logged.
//!
//! What hyper answers by itself — `400` for a malformed request, `431`, a closed connection on
//! a header read timeout — happens before any request exists, so it carries neither the error
//! schema nor a request id; each such connection is counted in
//! [`Stats::rejected_by_server`](crate::Stats::rejected_by_server) and logged at `WARN`, at
//! most once a second per kind, with the number of others since.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::body::TimedBody;
use crate::lifecycle::Event;
use crate::runtime::Runtime;

/// Serves `app` on `listener` until `stop` is cancelled, then lets every connection finish
/// its request in flight and close; returns when all have.
pub(super) async fn run(
    rt: Arc<Runtime>,
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
) -> io::Result<()> {
    let serving = rt.serving();
    let slots = Arc::new(Semaphore::new(serving.max_connections));
    let connections = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_read_timeout)
        .max_buf_size(serving.max_header_bytes)
        .keep_alive(true);
    static LIMITED: Throttle = Throttle::new();
    let mut backoff = Backoff::default();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                LIMITED.warn(|occurrences| {
                    let limit = serving.max_connections;
                    tracing::warn!(target: "errands", occurrences, limit, "connection limit reached: new connections wait in the backlog")
                });
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore stays open"),
                    () = stop.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(error) => {
                    backoff.wait(&error, &stop).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let body_timeout = serving.body_read_timeout;
        // Whether the connection delivered a request: a timeout after one is an idle
        // keep-alive connection closing, not a client rejected.
        let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let saw_request = served.clone();
        let service = app
            .clone()
            .map_request(move |request: http::Request<Incoming>| {
                saw_request.store(true, Ordering::Relaxed);
                let mut request = request.map(|body| {
                    // A body that is already complete (no body at all, most often) cannot
                    // stall: it needs no timer.
                    if http_body::Body::is_end_stream(&body) {
                        Body::new(body)
                    } else {
                        Body::new(TimedBody::new(body, body_timeout))
                    }
                });
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let (rt, stop) = (rt.clone(), stop.clone());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    if served.load(Ordering::Relaxed) {
                        // Finish the request in flight, if any, then close.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    } else {
                        // Still sending its first request head (or nothing at all): no
                        // request exists to finish, so the drain does not wait for it.
                        Ok(())
                    }
                }
            };
            if let Err(error) = result {
                rejected(&rt, &error, served.load(Ordering::Relaxed));
            }
            drop(slot);
        });
    }
    drop(listener);
    // Connections that never delivered a request close now; the others once their request in
    // flight is answered (or their next head times out): say how many, so that a drain
    // waiting on them is no mystery.
    tracing::info!(
        target: "errands",
        connections_open = connections.len(),
        "server: stopped accepting; open connections close once their request in flight is answered"
    );
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Counts and logs a connection hyper ended by itself, when it is one a client caused;
/// `served`: the connection delivered a request before.
fn rejected(rt: &Runtime, error: &hyper::Error, served: bool) {
    static MALFORMED: Throttle = Throttle::new();
    static TOO_LARGE: Throttle = Throttle::new();
    static TIMED_OUT: Throttle = Throttle::new();
    let (throttle, what) = if error.is_parse_too_large() || error.is_parse_status() {
        (&TOO_LARGE, "request head too large: answered by the server")
    } else if error.is_parse() {
        (&MALFORMED, "malformed request: answered 400 by the server")
    } else if error.is_timeout() && !served {
        (
            &TIMED_OUT,
            "request head not received within the header read timeout: closed",
        )
    } else {
        // The client went away, an idle keep-alive connection timed out, or an upgraded
        // connection closed: nothing to say.
        return;
    };
    rt.emit(Event::RejectedByServer);
    throttle.warn(|occurrences| tracing::warn!(target: "errands", occurrences, "{what}"));
}

/// A warning logged at most once a second, with the number of occurrences it stands for.
struct Throttle {
    next: Mutex<Option<std::time::Instant>>,
    count: AtomicU64,
}

impl Throttle {
    const fn new() -> Self {
        Throttle {
            next: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; calls `log` with the count since the last line, at most once a
    /// second.
    fn warn(&self, log: impl FnOnce(u64)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = std::time::Instant::now();
        {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            if next.is_some_and(|next| now < next) {
                return;
            }
            *next = Some(now + Duration::from_secs(1));
        }
        log(self.count.swap(0, Ordering::Relaxed));
    }
}

/// The pause after an accept error: 10 ms, doubling up to 1 s, reset by a success.
#[derive(Default)]
struct Backoff(Option<Duration>);

impl Backoff {
    fn reset(&mut self) {
        self.0 = None;
    }

    async fn wait(&mut self, error: &io::Error, stop: &CancellationToken) {
        static FAILED: Throttle = Throttle::new();
        let delay = self.0.map_or(Duration::from_millis(10), |d| {
            (d * 2).min(Duration::from_secs(1))
        });
        self.0 = Some(delay);
        FAILED.warn(|occurrences| {
            tracing::warn!(target: "errands", %error, occurrences, ?delay, "accepting a connection failed: backing off")
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {}
        }
    }
}
