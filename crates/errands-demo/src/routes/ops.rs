//! The index, the demo's own webhook sink, views of what tasks wrote, stats, and two
//! endpoints for watching failures and shutdown.

use std::time::Duration;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
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
            "POST /exports": "{\"work_ms\"} (at most 60 000) — an unshielded long task in its own small group (2 running, 8 waiting), cancelled at shutdown",
            "GET /ops/slow?ms=": "a slow request, to watch the drain",
            "GET /ops/outbox": "emails sent",
            "GET /ops/alerts": "alerts received by the default on-call webhook",
            "GET /ops/notifications": "notifications from error mappers",
            "GET /stats": "task counters",
            "GET /metrics": "errands' metrics in Prometheus' text format",
        }
    }))
}

/// Lets a request to an operational page through: from a loopback client when no ops token
/// is configured, otherwise from any client sending `authorization: Bearer TOKEN`. Others get
/// `403 forbidden` in the error schema.
pub async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Result<Response, errands::ApiError> {
    if allowed(peer, state.ops_token.as_deref(), request.headers()) {
        Ok(next.run(request).await)
    } else {
        Err(errands::ApiError::from_status(StatusCode::FORBIDDEN))
    }
}

fn allowed(peer: SocketAddr, token: Option<&str>, headers: &HeaderMap) -> bool {
    match token {
        None => peer.ip().is_loopback(),
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// errands' metrics, as a Prometheus scrape sees them.
pub async fn metrics(
    State(state): State<AppState>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
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

/// The longest an export may work, in milliseconds: a client cannot book the task capacity
/// for an hour.
const MAX_EXPORT_MS: u64 = 60_000;

#[derive(Deserialize)]
pub struct Export {
    #[serde(default)]
    work_ms: u64,
}

pub async fn export(
    tasks: Tasks,
    Json(export): Json<Export>,
) -> errands::Result<(StatusCode, axum::Json<Value>)> {
    tasks
        .immediate()
        .group("exports")
        .schedule(jobs::build_export(export.work_ms.min(MAX_EXPORT_MS)))?;
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
            .fetch_all(state.db.pool())
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
    // One alert per failure: a failure reported again after a crash has the same key.
    sqlx::query("INSERT INTO alerts (body, key) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(alert.to_string())
        .bind(alert["key"].as_str())
        .execute(state.db.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn alerts(State(state): State<AppState>) -> errands::Result<axum::Json<Value>> {
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM alerts ORDER BY id LIMIT 100")
        .fetch_all(state.db.pool())
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
            .fetch_all(state.db.pool())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_pages_are_for_loopback_clients_or_the_token_holder() {
        let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(allowed(loopback, None, &none));
        assert!(!allowed(remote, None, &none));
        assert!(!allowed(loopback, Some("s3cret"), &none));
        assert!(allowed(remote, Some("s3cret"), &bearer));
        assert!(!allowed(remote, Some("other"), &bearer));
    }
}
