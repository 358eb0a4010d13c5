//! Chat-style broadcast with `errands::ws`, plus a background task publishing progress to the
//! room; shutdown closes every connection with 1001.
//!
//! The example starts the server on 127.0.0.1, connects two clients, chats, starts an export,
//! and shuts down. Run: `cargo run -p errands --features ws --example ws_chat`

use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use errands::ws::{Hub, Message};
use errands::{Errands, Tasks};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as ClientMessage;

async fn chat(upgrade: WebSocketUpgrade, State(hub): State<Hub>, tasks: Tasks) -> Response {
    hub.clone().upgrade(upgrade, move |mut conn| async move {
        conn.join("lobby");
        conn.send(Message::text("welcome to the lobby"));
        while let Some(message) = conn.recv().await {
            let Message::Text(text) = &message else {
                continue;
            };
            if text.as_str() == "/export" {
                let hub = hub.clone();
                let _ = tasks.schedule(async move {
                    for percent in [50, 100] {
                        tokio::time::sleep(Duration::from_millis(20)).await; // simulated work
                        hub.broadcast("lobby", Message::text(format!("export {percent}%")));
                    }
                });
            } else {
                hub.broadcast("lobby", message);
            }
        }
    })
}

#[tokio::main]
async fn main() {
    let errands = Errands::new();
    let hub = Hub::new(&errands);
    let app = Router::new()
        .route("/chat", get(chat))
        .with_state(hub.clone())
        .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/chat", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut ada, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("ada connects");
    let (mut bob, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("bob connects");
    // Each client is in the room once it got its welcome.
    for client in [&mut ada, &mut bob] {
        let welcome = client.next().await.expect("open").expect("a frame");
        println!("received: {welcome}");
    }
    ada.send(ClientMessage::text("hi bob")).await.expect("sent");
    ada.send(ClientMessage::text("/export"))
        .await
        .expect("sent");
    for _ in 0..3 {
        let Some(Ok(ClientMessage::Text(text))) = bob.next().await else {
            break;
        };
        println!("bob received: {text}");
    }
    errands.shutdown().await;
    while let Some(Ok(message)) = ada.next().await {
        if let ClientMessage::Close(frame) = message {
            println!("ada's connection closed: {:?}", frame.map(|f| f.code));
            break;
        }
    }
}
