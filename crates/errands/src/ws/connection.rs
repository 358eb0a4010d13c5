//! One connection: its reader ([`Connection`], driven by the handler) and its writer task.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, HubConfig};
use crate::live::Member;
use crate::runtime::Runtime;

/// A connection's id, unique within its hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(super) u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The decision to close a connection, taken once: the first code and reason win.
#[derive(Clone, Default)]
pub(super) struct Kick {
    token: CancellationToken,
    frame: Arc<OnceLock<(u16, &'static str)>>,
}

impl Kick {
    /// Asks the connection to close; `true` for the first request.
    pub(super) fn close(&self, code: u16, reason: &'static str) -> bool {
        let first = self.frame.set((code, reason)).is_ok();
        self.token.cancel();
        first
    }

    async fn closed(&self) {
        self.token.cancelled().await
    }

    fn frame(&self) -> CloseFrame {
        let (code, reason) = self
            .frame
            .get()
            .copied()
            .unwrap_or((close_code::NORMAL, ""));
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// When the client was last heard from.
struct Heartbeat {
    start: Instant,
    last_ms: AtomicU64,
}

impl Heartbeat {
    fn new() -> Self {
        Heartbeat {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn silent_for(&self) -> std::time::Duration {
        let now = self.start.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// An open WebSocket connection, given to the handler passed to [`Hub::upgrade`].
///
/// Keep calling [`recv`](Connection::recv) for as long as the connection should live: it
/// also reads the client's pongs, which keep the connection from timing out.
pub struct Connection {
    id: ConnectionId,
    hub: Hub,
    stream: SplitStream<WebSocket>,
    kick: Kick,
    heartbeat: Arc<Heartbeat>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Joins `room`: broadcasts to it reach this connection.
    pub fn join(&self, room: &str) {
        self.hub.join(self.id, room);
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.hub.leave(self.id, room);
    }

    /// Offers a message to this connection's queue, without waiting; `false` if the
    /// connection is closing or too slow (it is then closed).
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.hub.send_to(self.id, message)
    }

    /// Resolves once the connection is closing (kicked, too slow, or shutdown). A handler
    /// that only pushes messages can wait on this instead of [`recv`](Connection::recv).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn closed(&self) {
        self.kick.closed().await
    }

    /// The next text or binary message; `None` once the connection is closing — the client
    /// closed it or went away, it broke the protocol or the size limit, it was too slow, or
    /// the server is shutting down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is taken from the socket only in the poll that returns it, so
    /// dropping the future (in a `select!` branch that lost) loses no message, as with
    /// `StreamExt::next`. Pongs and pings read in the meantime are handled already.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.kick.closed() => return None,
                next = self.stream.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    self.heartbeat.touch();
                    match message {
                        Message::Text(_) | Message::Binary(_) => return Some(message),
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Close(_) => {
                            self.kick.close(close_code::NORMAL, "closed by the client");
                            return None;
                        }
                    }
                }
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("Space limit exceeded") || text.contains("too long") {
                        self.hub.kick(self.id, close_code::SIZE, "message too big");
                    } else {
                        self.hub.kick(
                            self.id,
                            close_code::PROTOCOL,
                            "protocol error or broken connection",
                        );
                    }
                    return None;
                }
                None => {
                    self.hub.kick(
                        self.id,
                        close_code::ABNORMAL,
                        "client went away without a close frame",
                    );
                    return None;
                }
            }
        }
    }
}

/// Runs one connection: registers it (as a request in flight, so shutdown drains it), starts
/// its writer, runs the handler with panics contained, then cleans up.
pub(super) async fn run<F, Fut>(hub: Hub, socket: WebSocket, handler: F)
where
    F: FnOnce(Connection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _in_flight = Member::new(&hub.inner.rt, Runtime::requests);
    let config = hub.inner.config.clone();
    let (queue, outgoing) = mpsc::channel(config.buffer);
    let kick = Kick::default();
    let (mut sink, stream) = socket.split();
    let Some(id) = hub.register(queue, kick.clone()) else {
        kick.close(close_code::AGAIN, "too many connections");
        close(&mut sink, &kick, &config).await;
        hub.inner.rt.report(
            crate::report::ErrorReport::new(crate::report::Origin::WebSocket)
                .message("websocket connection refused: too many connections"),
        );
        return;
    };
    let heartbeat = Arc::new(Heartbeat::new());
    let writer = tokio::spawn(write(
        hub.clone(),
        id,
        sink,
        outgoing,
        kick.clone(),
        heartbeat.clone(),
    ));
    let connection = Connection {
        id,
        hub: hub.clone(),
        stream,
        kick: kick.clone(),
        heartbeat,
    };
    // Once the connection is closing, the handler gets `close_timeout` to notice, then is
    // dropped: shutdown never waits on a handler that does not read.
    let handler = AssertUnwindSafe(crate::logs::caught(handler(connection))).catch_unwind();
    let grace = async {
        kick.closed().await;
        tokio::time::sleep(config.close_timeout).await;
    };
    tokio::select! {
        finished = handler => {
            if finished.is_err() {
                hub.kick(id, close_code::ERROR, "the connection handler panicked");
            }
        }
        _ = grace => {}
    }
    // Leaving the registry drops the queue's last sender: the writer sends what is still
    // queued, then closes normally (unless the connection was kicked).
    hub.unregister(id);
    let _ = writer.await;
}

/// Drains the queue into the socket, pings, and closes: on a kick, when shutdown starts
/// (1001), when the client falls silent, or when a send does not complete in time.
async fn write(
    hub: Hub,
    id: ConnectionId,
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    kick: Kick,
    heartbeat: Arc<Heartbeat>,
) {
    let config = hub.inner.config.clone();
    let started = hub.inner.rt.started().clone();
    let mut pings = (!config.ping_interval.is_zero()).then(|| {
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval)
    });
    loop {
        let message = tokio::select! {
            biased;
            _ = kick.closed() => break,
            _ = started.cancelled() => {
                kick.close(close_code::AWAY, "the server is shutting down");
                break;
            }
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = tick(&mut pings) => {
                if heartbeat.silent_for() > config.ping_interval + config.pong_timeout {
                    hub.kick(id, close_code::POLICY, "heartbeat timeout");
                    break;
                }
                Message::Ping(Default::default())
            }
        };
        if let Err(failure) = send(&mut sink, message, &kick, &started, &config).await {
            if let Some((code, reason)) = failure {
                hub.kick(id, code, reason);
            }
            break;
        }
    }
    close(&mut sink, &kick, &config).await;
}

async fn tick(pings: &mut Option<tokio::time::Interval>) {
    match pings {
        Some(pings) => {
            pings.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends one message unless the connection starts closing first. `Err(Some(..))`: the
/// connection broke, or the client took longer than `ping_interval + pong_timeout` to accept
/// it (too slow) — to be reported.
async fn send(
    sink: &mut SplitSink<WebSocket, Message>,
    message: Message,
    kick: &Kick,
    started: &CancellationToken,
    config: &HubConfig,
) -> Result<(), Option<(u16, &'static str)>> {
    let deadline = (config.ping_interval + config.pong_timeout).max(config.close_timeout);
    tokio::select! {
        biased;
        _ = kick.closed() => Err(None),
        _ = started.cancelled() => {
            kick.close(close_code::AWAY, "the server is shutting down");
            Err(None)
        }
        sent = tokio::time::timeout(deadline, sink.send(message)) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Some((close_code::ABNORMAL, "the connection broke while sending"))),
            Err(_) => Err(Some((close_code::POLICY, "too slow: a write did not complete in time"))),
        },
    }
}

/// Sends the close frame (none for an abnormal end, which has no code on the wire) and waits
/// for the close, for at most `close_timeout`.
async fn close(sink: &mut SplitSink<WebSocket, Message>, kick: &Kick, config: &HubConfig) {
    let frame = kick.frame();
    let _ = tokio::time::timeout(config.close_timeout, async {
        if frame.code != close_code::ABNORMAL {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
}
