//! The background tasks. Their work is real database writes; external services (mail
//! providers, the payment provider) are simulated and write to tables instead.

use std::time::Duration;

use errands::{TaskError, TaskInfo};
use serde_json::json;
use sqlx::SqlitePool;

/// The primary mail provider refused the message.
#[derive(Debug, thiserror::Error)]
#[error("primary mail provider refused the message")]
pub struct MailRefused;

/// The payment provider declined the charge.
#[derive(Debug, thiserror::Error)]
#[error("the payment provider declined the charge")]
pub struct Declined;

/// The nightly report could not be built.
#[derive(Debug, thiserror::Error)]
#[error("nightly report failed: the warehouse export is missing")]
pub struct ReportFailed;

pub async fn record_analytics(db: SqlitePool, event: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO analytics (event) VALUES (?)")
        .bind(event)
        .execute(&db)
        .await?;
    Ok(())
}

pub async fn write_audit(
    db: SqlitePool,
    action: &'static str,
    subject: String,
) -> Result<(), sqlx::Error> {
    let request_id = TaskInfo::current().and_then(|t| t.request_id().map(|id| id.to_string()));
    sqlx::query("INSERT INTO audit_log (action, subject, request_id) VALUES (?, ?, ?)")
        .bind(action)
        .bind(subject)
        .bind(request_id)
        .execute(&db)
        .await?;
    Ok(())
}

/// The primary mail path. Addresses with `+bounce` are always refused; with `+flaky`, the
/// first attempt is refused (so the retry policy delivers it).
pub async fn send_welcome_email(db: SqlitePool, to: String) -> Result<(), EmailError> {
    let attempt = TaskInfo::current().map_or(1, |t| t.attempt());
    if to.contains("+bounce") || (to.contains("+flaky") && attempt == 1) {
        return Err(EmailError::Refused(MailRefused));
    }
    deliver(&db, &to, "primary").await?;
    tracing::info!(attempt, "welcome email sent");
    Ok(())
}

/// The second mail path, used by the welcome email's `on_error` with the original inputs.
pub async fn send_welcome_email_fallback(db: SqlitePool, to: String) -> Result<(), sqlx::Error> {
    deliver(&db, &to, "fallback").await?;
    tracing::info!("welcome email sent through the fallback path");
    Ok(())
}

async fn deliver(db: &SqlitePool, to: &str, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (recipient, subject, channel) VALUES (?, 'Welcome!', ?)")
        .bind(to)
        .bind(channel)
        .execute(db)
        .await?;
    Ok(())
}

/// Why a welcome email was not sent. Each variant keeps its cause as the `source()`, so a
/// retry policy can match `MailRefused` along the chain (`#[error(transparent)]` would not).
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("the welcome email was not sent")]
    Refused(#[from] MailRefused),
    #[error("the welcome email could not be recorded")]
    Database(#[from] sqlx::Error),
}

/// Simulates the payment provider for `processing_ms`, then records the result.
pub async fn process_payment(
    db: SqlitePool,
    payment_id: i64,
    order_id: i64,
    processing_ms: u64,
    declined: bool,
) -> Result<(), PaymentError> {
    tracing::info!(payment_id, "payment started");
    tokio::time::sleep(Duration::from_millis(processing_ms)).await; // the provider's call
    if declined {
        sqlx::query("UPDATE payments SET status = 'failed' WHERE id = ?")
            .bind(payment_id)
            .execute(&db)
            .await?;
        return Err(PaymentError::Declined(Declined));
    }
    let mut tx = crate::db::write_transaction(&db).await?;
    sqlx::query("UPDATE payments SET status = 'succeeded' WHERE id = ?")
        .bind(payment_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = ?")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(payment_id, "payment processed");
    Ok(())
}

/// Why a payment did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("payment failed")]
    Declined(#[from] Declined),
    #[error("payment could not be recorded")]
    Database(#[from] sqlx::Error),
}

/// Posts an alert about a failed critical task to the on-call webhook.
pub async fn alert_on_call(
    http: reqwest::Client,
    webhook: crate::app::Webhook,
    info: TaskInfo,
    error: TaskError,
) -> Result<(), reqwest::Error> {
    let alert = json!({
        "text": format!("critical task {} failed: {}", info.name(), chain(&error)),
        "task": info.name(),
        "task_id": info.id().as_u64(),
        "request_id": info.request_id().map(|id| id.to_string()),
        "fields": info.fields_json(),
    });
    let mut request = http.post(webhook.url).json(&alert);
    if let Some(token) = &webhook.token {
        request = request.bearer_auth(token);
    }
    request.send().await?.error_for_status()?;
    tracing::warn!(task = info.name(), "on-call alerted");
    Ok(())
}

/// An error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

pub async fn notify_purchasing(
    db: SqlitePool,
    sku: String,
    requested: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO notifications (kind, message) VALUES ('restock', ?)")
        .bind(format!("{sku}: customers asked for {requested}"))
        .execute(&db)
        .await?;
    tracing::info!(%sku, "purchasing notified");
    Ok(())
}

pub async fn build_nightly_report() -> Result<(), ReportFailed> {
    Err(ReportFailed)
}

pub async fn build_export(work_ms: u64) {
    tracing::info!("export started");
    tokio::time::sleep(Duration::from_millis(work_ms)).await; // simulated work
    tracing::info!("export finished");
}
