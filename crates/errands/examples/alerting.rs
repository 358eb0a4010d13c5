//! Alerting an on-call webhook when a critical, shielded task fails.
//!
//! The example starts its own webhook sink on 127.0.0.1, so it runs anywhere.
//!
//! Run: `cargo run -p errands --example alerting`

use axum::routing::post;
use axum::{Json, Router};
use errands::{Errands, TaskError, TaskInfo};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
#[error("ledger rejected the settlement")]
struct SettlementRejected;

async fn settle_payment(_payment_id: u64) -> Result<(), SettlementRejected> {
    Err(SettlementRejected)
}

#[tokio::main]
async fn main() {
    // The on-call webhook: prints what it receives, then lets the example end.
    let (received_tx, mut received) = tokio::sync::mpsc::channel::<Value>(1);
    let sink = Router::new().route(
        "/alerts",
        post(move |Json(alert): Json<Value>| async move {
            let _ = received_tx.send(alert).await;
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let webhook = format!("http://{}/alerts", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, sink).await });

    let errands = Errands::new();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    errands
        .tasks()
        .after_response()
        .name("settle_payment")
        .shield()
        .field("payment_id", 881)
        .on_error(move |info: TaskInfo, error: TaskError| {
            let (client, webhook) = (client.clone(), webhook.clone());
            async move {
                let alert = json!({
                    "text": format!("critical task {} failed: {error}", info.name()),
                    "task_id": info.id().as_u64(),
                    "fields": info.fields_json(),
                });
                client
                    .post(webhook)
                    .json(&alert)
                    .send()
                    .await?
                    .error_for_status()?;
                Ok::<_, reqwest::Error>(())
            }
        })
        .schedule(settle_payment(881))
        .expect("scheduled");
    let alert = received.recv().await.expect("an alert");
    println!("on-call received: {alert:#}");
    errands.shutdown().await;
}
