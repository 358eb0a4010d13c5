//! `errands::ws` with a real WebSocket client over real sockets.
#![cfg(feature = "ws")]

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use common::{PATIENCE, Probe, idle, reporting_to, serve};
use errands::extract::Query;
use errands::ws::{Hub, HubConfig, Message};
use errands::{Errands, Tasks};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message as Client;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type ClientResult = Result<Client, tokio_tungstenite::tungstenite::Error>;

#[derive(Deserialize)]
struct Join {
    room: String,
}

/// Joins the room, says so, then echoes every message to the room. `/export` publishes from a
/// background task instead.
async fn chat(
    upgrade: WebSocketUpgrade,
    State(hub): State<Hub>,
    Query(join): Query<Join>,
    tasks: Tasks,
) -> Response {
    hub.clone().upgrade(upgrade, move |mut conn| async move {
        conn.join(&join.room);
        conn.send(Message::text("joined"));
        while let Some(message) = conn.recv().await {
            if matches!(&message, Message::Text(t) if t.as_str() == "/export") {
                let (hub, room) = (hub.clone(), join.room.clone());
                tasks
                    .schedule(async move {
                        hub.broadcast(&room, Message::text("export ready"));
                    })
                    .unwrap();
                continue;
            }
            hub.broadcast(&join.room, message);
        }
    })
}

/// Says goodbye and returns at once: what it queued must still arrive.
async fn bye(upgrade: WebSocketUpgrade, State(hub): State<Hub>) -> Response {
    hub.upgrade(upgrade, |conn| async move {
        conn.send(Message::text("bye"));
    })
}

/// Never reads and never returns.
async fn stubborn(upgrade: WebSocketUpgrade, State(hub): State<Hub>) -> Response {
    hub.upgrade(upgrade, |_conn| std::future::pending::<()>())
}

struct Server {
    errands: Errands,
    hub: Hub,
    probe: Probe,
    addr: std::net::SocketAddr,
}

async fn start(config: HubConfig) -> Server {
    let probe = Probe::new();
    let errands = reporting_to(&probe).build();
    let hub = Hub::with_config(&errands, config);
    let app = Router::new()
        .route("/chat", get(chat))
        .route("/bye", get(bye))
        .route("/stubborn", get(stubborn))
        .with_state(hub.clone())
        .layer(errands.layer());
    let addr = serve(app).await;
    Server {
        errands,
        hub,
        probe,
        addr,
    }
}

async fn connect(server: &Server, room: &str) -> Socket {
    let url = format!("ws://{}/chat?room={room}", server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "joined");
    socket
}

async fn next_text<S: futures_util::Stream<Item = ClientResult> + Unpin>(socket: &mut S) -> String {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a valid frame");
        match message {
            Client::Text(text) => return text.to_string(),
            Client::Ping(_) | Client::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the server closes; returns the close code, if a close frame came.
async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Client::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_client_in_the_room_and_no_one_else() {
    let server = start(HubConfig::default()).await;
    let mut lobby = Vec::new();
    for _ in 0..5 {
        lobby.push(connect(&server, "lobby").await);
    }
    let mut elsewhere = connect(&server, "kitchen").await;
    assert_eq!((server.hub.room_size("lobby"), server.hub.rooms()), (5, 2));
    lobby[0].send(Client::text("hello everyone")).await.unwrap();
    for socket in &mut lobby {
        assert_eq!(next_text(socket).await, "hello everyone");
    }
    elsewhere.send(Client::text("only here")).await.unwrap();
    assert_eq!(next_text(&mut elsewhere).await, "only here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_closed_with_1008_without_delaying_the_others() {
    let config = HubConfig {
        buffer: 4,
        max_message_size: 1 << 20,
        ..HubConfig::default()
    };
    let server = start(config).await;
    let mut fast = Vec::new();
    for _ in 0..3 {
        fast.push(connect(&server, "feed").await);
    }
    // The slow client: a small receive window, and it never reads.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(server.addr).await.unwrap();
    let url = format!("ws://{}/chat?room=feed", server.addr);
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(next_text(&mut slow).await, "joined");

    let payload = "x".repeat(256 * 1024);
    let mut too_slow = 0;
    for round in 0..48 {
        let sent = server
            .hub
            .broadcast("feed", Message::text(format!("{round}:{payload}")));
        too_slow += sent.too_slow;
        // Each fast client gets every message, whatever the slow one does.
        for socket in &mut fast {
            let text = next_text(socket).await;
            assert!(text.starts_with(&format!("{round}:")));
        }
    }
    assert_eq!(too_slow, 1, "the slow client was dropped once");
    assert_eq!(server.hub.room_size("feed"), 3);
    server.probe.reached("report:websocket:-:-").await;
    let reports = server
        .probe
        .events()
        .iter()
        .filter(|e| e.starts_with("report:websocket"))
        .count();
    assert_eq!(reports, 1);
    // Reading now, the slow client finds its connection closed.
    let mut received = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(PATIENCE, slow.next()).await {
        match message {
            Client::Text(_) => received += 1,
            Client::Close(frame) => {
                assert_eq!(frame.map(|f| f.code), Some(CloseCode::Policy));
                break;
            }
            _ => {}
        }
    }
    assert!(
        received < 48,
        "the slow client did not get everything: {received}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_leave_the_registry_empty_and_only_abnormal_ones_are_reported() {
    let server = start(HubConfig::default()).await;
    let mut polite = connect(&server, "a").await;
    let rude = connect(&server, "b").await;
    assert_eq!((server.hub.connections(), server.hub.rooms()), (2, 2));
    polite.close(None).await.unwrap();
    drop(rude); // no close frame
    idle(&server.errands).await;
    assert_eq!((server.hub.connections(), server.hub.rooms()), (0, 0));
    let reports: Vec<String> = server
        .probe
        .events()
        .into_iter()
        .filter(|e| e.starts_with("report:"))
        .collect();
    assert_eq!(
        reports,
        ["report:websocket:-:-"],
        "only the abrupt disconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_1001_and_never_hangs_on_a_silent_client() {
    let config = HubConfig {
        close_timeout: Duration::from_millis(200),
        ..HubConfig::default()
    };
    let server = start(config).await;
    let mut listening = vec![
        connect(&server, "lobby").await,
        connect(&server, "lobby").await,
    ];
    let _silent = connect(&server, "lobby").await; // never reads again
    let summary = tokio::time::timeout(PATIENCE, server.errands.shutdown())
        .await
        .expect("shutdown completes");
    assert!(summary.drained, "{summary:?}");
    for socket in &mut listening {
        assert_eq!(close_code(socket).await, Some(CloseCode::Away));
    }
    assert_eq!(server.hub.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_task_publishes_to_the_room_from_inside_the_handler() {
    let server = start(HubConfig::default()).await;
    let mut first = connect(&server, "exports").await;
    let mut second = connect(&server, "exports").await;
    first.send(Client::text("/export")).await.unwrap();
    assert_eq!(next_text(&mut first).await, "export ready");
    assert_eq!(next_text(&mut second).await, "export ready");
    assert_eq!(server.errands.stats().scheduled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_with_1009() {
    let config = HubConfig {
        max_message_size: 1024,
        ..HubConfig::default()
    };
    let server = start(config).await;
    let mut socket = connect(&server, "lobby").await;
    socket.send(Client::text("y".repeat(4096))).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Size));
    idle(&server.errands).await;
    assert!(server.probe.has("report:websocket:-:-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_heartbeat_timeout() {
    let config = HubConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(100),
        ..HubConfig::default()
    };
    let server = start(config).await;
    let _silent = connect(&server, "lobby").await; // never reads, so never answers a ping
    idle(&server.errands).await;
    assert_eq!(server.hub.connections(), 0);
    assert!(server.probe.has("report:websocket:-:-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_handler_queued_before_returning_is_delivered_before_the_close() {
    let server = start(HubConfig::default()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/bye", server.addr))
        .await
        .unwrap();
    assert_eq!(next_text(&mut socket).await, "bye");
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_handler_that_ignores_the_close() {
    let config = HubConfig {
        close_timeout: Duration::from_millis(100),
        ..HubConfig::default()
    };
    let server = start(config).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stubborn", server.addr))
            .await
            .unwrap();
    let summary = tokio::time::timeout(PATIENCE, server.errands.shutdown())
        .await
        .expect("shutdown completes");
    assert!(summary.drained, "{summary:?}");
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Away));
    assert_eq!(server.hub.connections(), 0);
}
