//! Structured JSON error logs: a reporter writes one JSON line per report to stdout — task,
//! outcome, request id, explicit fields and the error chain; never the task's arguments.
//!
//! Run: `cargo run -p errands --example json_logs`

use std::io::Write;

use errands::{Errands, ErrorReport};
use serde_json::json;

fn json_line(report: &ErrorReport) {
    let task = report.task.as_ref();
    let line = json!({
        "level": report.level().as_str(),
        "origin": report.origin.as_str(),
        "outcome": report.outcome.map(|o| o.as_str()),
        "message": report.message,
        "task": task.map(|t| json!({
            "id": t.id().as_u64(),
            "name": t.name(),
            "timing": t.timing().as_str(),
            "shielded": t.is_shielded(),
            "attempt": t.attempt(),
            "fields": t.fields_json(),
        })),
        "request_id": report.request_id.as_ref().map(|id| id.as_str()),
        "route": report.route,
        "status": report.status.map(|s| s.as_u16()),
        "error": report.chain.iter().map(|l| json!({"type": l.type_name, "message": l.message})).collect::<Vec<_>>(),
    });
    // One write per line, so concurrent reports never interleave.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn charge(_card_number: String) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("card declined"))
}

#[tokio::main]
async fn main() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(json_line)
        .build();
    errands
        .tasks()
        .immediate()
        .field("order_id", 7)
        .schedule(charge("4111 1111 1111 1111".into()))
        .expect("scheduled");
    errands.idle().await;
}
