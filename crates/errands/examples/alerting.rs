//! Alerting an on-call webhook whenever a critical task does not succeed — failed, panicked,
//! timed out, or aborted at the shutdown deadline.
//!
//! `on_error` runs for failures, panics and timeouts only: a task aborted at the deadline or
//! cancelled by shutdown never runs it. Every outcome other than success is reported, though,
//! so the alert goes through the reporter path: a reporter picks out the critical tasks'
//! reports and hands them to a bounded channel (reporters must not block); a forwarder posts
//! them; a teardown hook — which runs after every task is terminal — lets the forwarder send
//! what is left before the process exits.
//!
//! The example starts its own webhook sink on 127.0.0.1, so it runs anywhere.
//!
//! Run: `cargo run -p errands --example alerting`

use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use errands::{Errands, ErrorReport, Origin, Outcome};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// The tasks whose every non-success pages someone.
const CRITICAL: [&str; 1] = ["settle_payment"];

#[derive(Debug, thiserror::Error)]
#[error("ledger rejected the settlement")]
struct SettlementRejected;

async fn settle_payment(payment_id: u64) -> Result<(), SettlementRejected> {
    if payment_id == 881 {
        return Err(SettlementRejected);
    }
    // The ledger never answers: still running at the shutdown deadline.
    std::future::pending().await
}

/// The alert for a critical task's report, if it is one.
fn alert(report: &ErrorReport) -> Option<Value> {
    let task = report.task.as_ref()?;
    if report.origin != Origin::Task || !CRITICAL.contains(&task.name()) {
        return None;
    }
    let outcome = report.outcome.map_or("?", Outcome::as_str);
    let mut text = format!("critical task {} ended {outcome}", task.name());
    if !report.chain.is_empty() {
        text = format!("{text}: {}", report.chain_text());
    }
    Some(json!({
        "text": text,
        "task_id": task.id().as_u64(),
        "attempt": task.attempt(),
        "fields": task.fields_json(),
    }))
}

#[tokio::main]
async fn main() {
    // The on-call webhook: passes what it receives on to the end of `main`.
    let (received_tx, mut received) = mpsc::channel::<Value>(8);
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

    // Reporter → bounded channel → forwarder → webhook.
    let (alerts, mut pending) = mpsc::channel::<Value>(1024);
    let (flush, flushed) = oneshot::channel::<()>();
    let forwarder = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let send = |alert: Value| {
            let request = client.post(&webhook).json(&alert);
            async move {
                if let Err(error) = request.send().await.and_then(|r| r.error_for_status()) {
                    eprintln!("alert not delivered: {error}");
                }
            }
        };
        let mut flushed = flushed;
        loop {
            tokio::select! {
                Some(alert) = pending.recv() => send(alert).await,
                _ = &mut flushed => break,
            }
        }
        // Shutdown: every task is terminal, so every report is in the channel.
        while let Ok(alert) = pending.try_recv() {
            send(alert).await;
        }
    });

    let errands = Errands::builder()
        .shutdown_deadline(Duration::from_millis(200))
        .reporter(move |report: &ErrorReport| {
            if let Some(alert) = alert(report) {
                let _ = alerts.try_send(alert);
            }
        })
        .on_teardown(move || async move {
            let _ = flush.send(());
            let _ = forwarder.await;
        })
        .build();
    for payment_id in [881, 882] {
        errands
            .tasks()
            .immediate()
            .name("settle_payment")
            .shield()
            .field("payment_id", payment_id)
            .schedule(settle_payment(payment_id))
            .expect("scheduled");
    }
    let failed = received.recv().await.expect("the failure's alert");
    println!("on-call received: {failed:#}");
    // Shutdown: payment 882 is still settling at the deadline and is aborted.
    let summary = errands.shutdown().await;
    assert_eq!(summary.aborted, 1);
    let aborted = received.recv().await.expect("the abort's alert");
    println!("on-call received: {aborted:#}");
    assert_eq!(aborted["fields"]["payment_id"], 882);
    assert!(
        aborted["text"]
            .as_str()
            .unwrap_or_default()
            .contains("aborted")
    );
}
