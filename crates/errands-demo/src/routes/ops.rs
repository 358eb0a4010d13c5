//! The index, the demo's own webhook sink, views of what tasks wrote, stats, and two
//! endpoints for watching failures and shutdown.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use errands::extract::{Json, Query};
use errands::{Stats, Tasks};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::jobs;

pub async fn index() -> axum::Json<Value> {
    axum::Json(json!({
        "service": "errands-demo",
        "endpoints": {
            "POST /signups": "{\"email\"} — analytics now, audit after the route, welcome email after the response (retried; +bounce → fallback path)",
            "GET /users/{id}": "a user",
            "GET /products": "the catalog with stock",
            "POST /orders": "{\"user_id\", \"items\": [{\"sku\", \"quantity\"}]} — one transaction; insufficient stock → 409 and a purchasing notification",
            "GET /orders/{id}": "an order",
            "POST /orders/{id}/payments": "{\"card\": \"ok\"|\"declined\", \"processing_ms\"} — shielded processing; declined → on-call alert",
            "GET /payments/{id}": "a payment",
            "POST /reports/nightly": "a background task that fails, to show the central report",
            "POST /exports": "{\"work_ms\"} — an unshielded long task, cancelled at shutdown",
            "GET /ops/slow?ms=": "a slow request, to watch the drain",
            "GET /ops/outbox": "emails sent",
            "GET /ops/alerts": "alerts received by the default on-call webhook",
            "GET /ops/notifications": "notifications from error mappers",
            "GET /stats": "task counters",
        }
    }))
}

pub async fn nightly_report(tasks: Tasks) -> errands::Result<(StatusCode, axum::Json<Value>)> {
    tasks
        .after_response()
        .schedule(jobs::build_nightly_report())?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "building"})),
    ))
}

#[derive(Deserialize)]
pub struct Export {
    #[serde(default)]
    work_ms: u64,
}

pub async fn export(
    tasks: Tasks,
    Json(export): Json<Export>,
) -> errands::Result<(StatusCode, axum::Json<Value>)> {
    tasks.schedule(jobs::build_export(export.work_ms.min(3_600_000)))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "exporting"})),
    ))
}

#[derive(Deserialize)]
pub struct Slow {
    #[serde(default)]
    ms: u64,
}

pub async fn slow(Query(slow): Query<Slow>) -> &'static str {
    tracing::info!(ms = slow.ms, "slow request started");
    tokio::time::sleep(Duration::from_millis(slow.ms.min(60_000))).await; // simulated work
    "slow request done"
}

pub async fn outbox(State(state): State<AppState>) -> errands::Result<axum::Json<Value>> {
    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT id, recipient, subject, channel FROM outbox ORDER BY id LIMIT 100")
            .fetch_all(&state.db)
            .await?;
    let rows = rows
        .into_iter()
        .map(|(id, to, subject, channel)| json!({"id": id, "to": to, "subject": subject, "channel": channel}))
        .collect();
    Ok(axum::Json(Value::Array(rows)))
}

/// The default on-call webhook: stores what it receives.
pub async fn receive_alert(
    State(state): State<AppState>,
    Json(alert): Json<Value>,
) -> errands::Result<StatusCode> {
    sqlx::query("INSERT INTO alerts (body) VALUES (?)")
        .bind(alert.to_string())
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn alerts(State(state): State<AppState>) -> errands::Result<axum::Json<Value>> {
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM alerts ORDER BY id LIMIT 100")
        .fetch_all(&state.db)
        .await?;
    let alerts = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap_or(Value::Null))
        .collect();
    Ok(axum::Json(Value::Array(alerts)))
}

pub async fn notifications(State(state): State<AppState>) -> errands::Result<axum::Json<Value>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, message FROM notifications ORDER BY id LIMIT 100")
            .fetch_all(&state.db)
            .await?;
    let rows = rows
        .into_iter()
        .map(|(kind, message)| json!({"kind": kind, "message": message}))
        .collect();
    Ok(axum::Json(Value::Array(rows)))
}

pub async fn stats(State(state): State<AppState>) -> axum::Json<Stats> {
    axum::Json(state.errands.stats())
}
