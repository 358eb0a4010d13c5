//! The registry: connections, rooms, and broadcast.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade, close_code};
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::connection::{self, ConnectionId, Kick};
use crate::errands::Errands;
use crate::report::{ErrorReport, Origin};
use crate::runtime::Runtime;

/// Limits and timings of a [`Hub`]; start from `HubConfig::default()`.
///
/// ```
/// use std::time::Duration;
/// let config = errands::ws::HubConfig { buffer: 16, ping_interval: Duration::from_secs(10), ..Default::default() };
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Messages waiting to be written to one client (default 64). A client whose queue is
    /// full is too slow: it is closed with 1008.
    pub buffer: usize,
    /// Largest message a client may send, in bytes (default 64 KiB); larger ones close the
    /// connection with 1009.
    pub max_message_size: usize,
    /// At most this many connections (default 10 000); more are closed at once with 1013.
    pub max_connections: usize,
    /// How often the server pings (default 20 s); zero disables the heartbeat.
    pub ping_interval: Duration,
    /// How long past a ping a silent client is kept (default 20 s). A write that the client
    /// does not accept within `ping_interval + pong_timeout` closes it as too slow.
    pub pong_timeout: Duration,
    /// How long a closing connection waits for the client (default 2 s).
    pub close_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            buffer: 64,
            max_message_size: 64 * 1024,
            max_connections: 10_000,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// A registry of WebSocket connections with rooms. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Hub {
    pub(super) inner: Arc<HubInner>,
}

pub(super) struct HubInner {
    pub(super) rt: Arc<Runtime>,
    pub(super) config: HubConfig,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    peers: HashMap<ConnectionId, Peer>,
    rooms: HashMap<String, HashSet<ConnectionId>>,
}

struct Peer {
    queue: mpsc::Sender<Message>,
    kick: Kick,
    rooms: HashSet<String>,
}

/// What a broadcast did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// Connections whose queue took the message.
    pub queued: usize,
    /// Connections closed because their queue was full.
    pub too_slow: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with the default [`HubConfig`], tied to `errands` (its shutdown closes the
    /// connections).
    pub fn new(errands: &Errands) -> Self {
        Hub::with_config(errands, HubConfig::default())
    }

    /// A hub with `config`.
    pub fn with_config(errands: &Errands, config: HubConfig) -> Self {
        let config = HubConfig {
            buffer: config.buffer.max(1),
            ..config
        };
        Hub {
            inner: Arc::new(HubInner {
                rt: errands.rt().clone(),
                config,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Accepts the upgrade with the hub's message size limit and runs `handler` with the
    /// connection. The connection ends when the handler returns.
    pub fn upgrade<F, Fut>(self, upgrade: WebSocketUpgrade, handler: F) -> Response
    where
        F: FnOnce(connection::Connection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let max = self.inner.config.max_message_size;
        upgrade
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| connection::run(self, socket, handler))
    }

    /// Offers `message` to every connection in `room` without waiting; closes (1008) and
    /// reports the connections that cannot keep up.
    pub fn broadcast(&self, room: &str, message: impl Into<Message>) -> Broadcast {
        let message = message.into();
        let targets: Vec<(ConnectionId, mpsc::Sender<Message>)> = {
            let state = self.state();
            let Some(members) = state.rooms.get(room) else {
                return Broadcast::default();
            };
            members
                .iter()
                .filter_map(|id| state.peers.get(id).map(|p| (*id, p.queue.clone())))
                .collect()
        };
        let mut result = Broadcast::default();
        for (id, queue) in targets {
            match queue.try_send(message.clone()) {
                Ok(()) => result.queued += 1,
                Err(TrySendError::Full(_)) => {
                    result.too_slow += 1;
                    self.kick(id, close_code::POLICY, "too slow: outgoing queue full");
                }
                Err(TrySendError::Closed(_)) => {}
            }
        }
        result
    }

    /// Offers `message` to one connection; `false` if it is gone or too slow (then closed).
    pub fn send_to(&self, id: ConnectionId, message: impl Into<Message>) -> bool {
        let queue = self.state().peers.get(&id).map(|p| p.queue.clone());
        match queue.map(|q| q.try_send(message.into())) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) => {
                self.kick(id, close_code::POLICY, "too slow: outgoing queue full");
                false
            }
            _ => false,
        }
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.state().peers.len()
    }

    /// Connections in `room`.
    pub fn room_size(&self, room: &str) -> usize {
        self.state().rooms.get(room).map_or(0, HashSet::len)
    }

    /// Rooms with at least one connection.
    pub fn rooms(&self) -> usize {
        self.state().rooms.len()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection; `None` when the hub is full.
    pub(super) fn register(
        &self,
        queue: mpsc::Sender<Message>,
        kick: Kick,
    ) -> Option<ConnectionId> {
        let mut state = self.state();
        if state.peers.len() >= self.inner.config.max_connections {
            return None;
        }
        let id = ConnectionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        state.peers.insert(
            id,
            Peer {
                queue,
                kick,
                rooms: HashSet::new(),
            },
        );
        Some(id)
    }

    /// Removes a connection from the registry and from every room.
    pub(super) fn unregister(&self, id: ConnectionId) {
        let mut state = self.state();
        if let Some(peer) = state.peers.remove(&id) {
            for room in peer.rooms {
                if let Some(members) = state.rooms.get_mut(&room) {
                    members.remove(&id);
                    if members.is_empty() {
                        state.rooms.remove(&room);
                    }
                }
            }
        }
    }

    pub(super) fn join(&self, id: ConnectionId, room: &str) {
        let mut state = self.state();
        let Some(peer) = state.peers.get_mut(&id) else {
            return;
        };
        peer.rooms.insert(room.to_owned());
        state.rooms.entry(room.to_owned()).or_default().insert(id);
    }

    pub(super) fn leave(&self, id: ConnectionId, room: &str) {
        let mut state = self.state();
        if let Some(peer) = state.peers.get_mut(&id) {
            peer.rooms.remove(room);
        }
        if let Some(members) = state.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                state.rooms.remove(room);
            }
        }
    }

    /// Closes a connection with `code`, reporting why (once per connection). It leaves the
    /// registry at once, so no later broadcast counts it again.
    pub(super) fn kick(&self, id: ConnectionId, code: u16, reason: &'static str) {
        let kick = self.state().peers.get(&id).map(|p| p.kick.clone());
        if let Some(kick) = kick
            && kick.close(code, reason)
        {
            self.unregister(id);
            self.report(id, reason);
        }
    }

    pub(super) fn report(&self, id: ConnectionId, reason: &str) {
        self.inner.rt.report(
            ErrorReport::new(Origin::WebSocket)
                .message(format!("websocket connection {id} closed: {reason}")),
        );
    }
}
