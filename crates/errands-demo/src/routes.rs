//! The demo's endpoints. Task work is simulated with short sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use errands::extract::{Json, Query};
use errands::{Errands, ScheduleError, TaskError, TaskInfo, Tasks};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router(errands: &Errands) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/signup", post(signup))
        .route("/payments", post(payment))
        .route("/exports", post(export))
        .route("/slow", get(slow))
        .route("/stats", get(stats))
        .with_state(errands.clone())
        .layer(errands.layer())
}

async fn index() -> Json<Value> {
    Json(json!({
        "service": "errands-demo",
        "endpoints": ["POST /signup", "POST /payments?work_ms=&fail=", "POST /exports?work_ms=", "GET /slow?ms=", "GET /stats"],
    }))
}

#[derive(Deserialize)]
struct Signup {
    email: String,
}

async fn signup(tasks: Tasks, Json(signup): Json<Signup>) -> Result<Json<Value>, ScheduleError> {
    tasks.schedule(record_analytics("signup"))?;
    tasks.after_route().schedule(write_audit_record("signup"))?;
    tasks
        .after_response()
        .field("kind", "welcome")
        .schedule(send_welcome_email(signup.email))?;
    Ok(Json(json!({"status": "welcome"})))
}

static NEXT_PAYMENT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Deserialize)]
struct Work {
    #[serde(default)]
    work_ms: u64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    ms: u64,
}

async fn payment(tasks: Tasks, Query(work): Query<Work>) -> Result<Json<Value>, ScheduleError> {
    let id = NEXT_PAYMENT_ID.fetch_add(1, Ordering::Relaxed);
    tasks
        .after_response()
        .shield()
        .field("payment_id", id)
        .on_error(alert_on_call)
        .schedule(process_payment(id, work.work_ms, work.fail))?;
    Ok(Json(json!({"payment_id": id, "status": "accepted"})))
}

async fn export(tasks: Tasks, Query(work): Query<Work>) -> Result<Json<Value>, ScheduleError> {
    tasks.schedule(build_export(work.work_ms))?;
    Ok(Json(json!({"status": "building"})))
}

async fn slow(Query(work): Query<Work>) -> &'static str {
    tracing::info!(ms = work.ms, "slow request started");
    tokio::time::sleep(Duration::from_millis(work.ms)).await; // simulated work
    "slow request done"
}

async fn stats(State(errands): State<Errands>) -> Json<errands::Stats> {
    Json(errands.stats())
}

async fn record_analytics(event: &'static str) {
    tracing::info!(event, "analytics recorded");
}

async fn write_audit_record(event: &'static str) -> Result<(), std::io::Error> {
    tracing::info!(event, "audit record written");
    Ok(())
}

async fn send_welcome_email(_to: String) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(20)).await; // simulated delivery
    tracing::info!("welcome email sent");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("the payment provider declined the charge")]
struct Declined;

async fn process_payment(id: u64, work_ms: u64, fail: bool) -> Result<(), Declined> {
    tracing::info!(payment_id = id, "payment started");
    tokio::time::sleep(Duration::from_millis(work_ms)).await; // simulated provider call
    if fail {
        return Err(Declined);
    }
    tracing::info!(payment_id = id, "payment processed");
    Ok(())
}

async fn alert_on_call(info: TaskInfo, error: TaskError) {
    tracing::warn!(task = info.name(), fields = ?info.fields(), %error, "on-call alerted");
}

async fn build_export(work_ms: u64) {
    tracing::info!("export started");
    tokio::time::sleep(Duration::from_millis(work_ms)).await; // simulated work
    tracing::info!("export finished");
}
