//! Forwarding task errors to an error tracker, with the task's context.
//!
//! A reporter hands each report to a bounded channel; a forwarder turns it into the
//! tracker's event (here printed as JSON). The task's explicit fields travel along; its
//! arguments (the customer's address) never do.
//!
//! Run: `cargo run -p errands --example error_tracker`

use errands::{Errands, ErrorReport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

async fn send_invoice(_email: String, _amount_cents: u64) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("smtp: connection refused"))
}

fn tracker_event(report: &ErrorReport) -> Value {
    let task = report.task.as_ref();
    json!({
        "level": report.level().as_str(),
        "message": report.message,
        "exception": report.chain.iter().map(|l| json!({"type": l.type_name, "value": l.message})).collect::<Vec<_>>(),
        "tags": {"task": task.map(|t| t.name()), "timing": task.map(|t| t.timing().as_str()), "outcome": report.outcome.map(|o| o.as_str())},
        "extra": {"request_id": report.request_id.as_ref().map(|id| id.as_str()), "attempt": task.map(|t| t.attempt()), "fields": task.map(|t| t.fields_json())},
    })
}

#[tokio::main]
async fn main() {
    let (tx, mut rx) = mpsc::channel::<Value>(1024);
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |report: &ErrorReport| {
            // Never block a task on the tracker: drop the event if it falls behind.
            let _ = tx.try_send(tracker_event(report));
        })
        .build();
    let forwarder = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            println!("{event:#}"); // a real forwarder POSTs this to the tracker
        }
    });

    errands
        .tasks()
        .immediate()
        .name("send_invoice")
        .field("invoice_id", 1042)
        .schedule(send_invoice("ada@example.com".into(), 12_900))
        .expect("scheduled");
    errands.idle().await;
    drop(errands);
    forwarder.await.expect("forwarder finished");
}
