//! WebSocket connections with rooms, broadcast without slow-consumer stalls, heartbeats, and
//! shutdown (feature `ws`).
//!
//! The usual connection manager keeps a set of sockets and awaits each send in turn: one slow
//! client stalls every broadcast, and graceful shutdown ignores upgraded connections. A
//! [`Hub`] does it differently:
//!
//! * Every connection has a **bounded** outgoing queue, drained into the socket by its own
//!   writer. [`Hub::broadcast`] only *offers* a message to each queue and never waits. A
//!   client whose queue is full cannot keep up: it is closed with code 1008 (policy
//!   violation) and reported once; the others are not delayed.
//! * The writer pings every `ping_interval`; a client that sends nothing (not even a pong) for
//!   `ping_interval + pong_timeout` is closed and reported once. Pongs are read by
//!   [`Connection::recv`], so a handler should keep calling it (or
//!   [`Connection::closed`], for a push-only handler, with the heartbeat disabled).
//! * A write the client does not accept in time (a zero TCP window) closes it as too slow;
//!   a handler that does not notice the close within `close_timeout` is dropped.
//! * When a handler returns normally, what it queued is still sent before the close.
//! * Messages over `max_message_size` close the connection with 1009; protocol errors and
//!   abnormal disconnects are reported once. A normal close is not an error.
//! * Connections are part of the errands runtime: each counts as a request in flight, so the
//!   shutdown drain includes them. When shutdown starts every connection receives Close 1001
//!   (going away); a client that does not answer within `close_timeout` is dropped, so
//!   shutdown never hangs on a connection.
//! * [`Tasks`](crate::Tasks) works inside the connection (the request is over, so tasks start
//!   at once), and a background task can publish to a room through a clone of the hub.
//!
//! ```
//! use axum::{Router, extract::{State, WebSocketUpgrade}, response::Response, routing::get};
//! use errands::ws::{Hub, Message};
//! use errands::{Errands, Tasks};
//!
//! async fn chat(upgrade: WebSocketUpgrade, State(hub): State<Hub>, tasks: Tasks) -> Response {
//!     hub.clone().upgrade(upgrade, move |mut conn| async move {
//!         conn.join("lobby");
//!         while let Some(message) = conn.recv().await {
//!             if let Message::Text(text) = &message {
//!                 if text.as_str() == "/export" {
//!                     // Publish progress from a background task.
//!                     let hub = hub.clone();
//!                     let _ = tasks.schedule(async move {
//!                         hub.broadcast("lobby", Message::text("export ready"));
//!                     });
//!                     continue;
//!                 }
//!             }
//!             hub.broadcast("lobby", message);
//!         }
//!     })
//! }
//!
//! let errands = Errands::new();
//! let hub = Hub::new(&errands);
//! let app: Router = Router::new()
//!     .route("/chat", get(chat))
//!     .with_state(hub)
//!     .layer(errands.layer());
//! ```

mod connection;
mod hub;

pub use axum::extract::ws::{CloseFrame, Message, close_code};
pub use connection::{Connection, ConnectionId};
pub use hub::{Broadcast, Hub, HubConfig};
