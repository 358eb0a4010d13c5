//! The background work. In-memory tasks (analytics, the audit log, reports, exports) and
//! durable jobs (payments, the welcome email, purchasing notifications), which survive a
//! crash or a deploy. Their work is real database writes; external services (mail
//! providers, the payment provider) are simulated and write to tables instead.

use std::time::Duration;

use errands::jobs::{Job, JobContext, JobFailure};
use errands::{BoxError, RetryPolicy, TaskInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Webhook;
use crate::crash;
use crate::db::Db;

/// What the durable jobs reach.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub http: reqwest::Client,
    pub alert_webhook: Webhook,
}

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

pub async fn record_analytics(db: Db, event: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO analytics (event) VALUES ($1)")
        .bind(event)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn write_audit(db: Db, action: &'static str, subject: String) -> Result<(), sqlx::Error> {
    let request_id = TaskInfo::current().and_then(|t| t.request_id().map(|id| id.to_string()));
    sqlx::query("INSERT INTO audit_log (action, subject, request_id) VALUES ($1, $2, $3)")
        .bind(action)
        .bind(subject)
        .bind(request_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The welcome email of a new user: a durable job, retried when the mail provider refuses,
/// and sent through the fallback path when every attempt was refused.
#[derive(Serialize, Deserialize)]
pub struct WelcomeEmail {
    pub user_id: i64,
}

impl Job for WelcomeEmail {
    const NAME: &'static str = "welcome_email";
    type State = Services;

    /// The primary mail path. Addresses with `+bounce` are always refused; with `+flaky`,
    /// the first attempt is refused (so the retry policy delivers it).
    async fn run(self, cx: JobContext<Services>) -> Result<(), BoxError> {
        let db = &cx.state().db;
        let to = recipient(db, self.user_id).await?;
        let attempt = cx.attempt();
        if to.contains("+bounce") || (to.contains("+flaky") && attempt == 1) {
            return Err(EmailError::Refused(MailRefused).into());
        }
        deliver(db, &to, "primary").await?;
        tracing::info!(attempt, "welcome email sent");
        Ok(())
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(50))
            .max_attempts(3)
            .retry_on::<MailRefused>()
            .retry_on::<sqlx::Error>()
    }

    /// The second mail path.
    async fn on_failure(services: Services, failure: JobFailure) {
        let Some(user_id) = failure.fields["user_id"].as_i64() else {
            return;
        };
        let sent = async {
            let to = recipient(&services.db, user_id).await?;
            deliver(&services.db, &to, "fallback").await
        };
        match sent.await {
            Ok(()) => tracing::info!("welcome email sent through the fallback path"),
            Err(error) => tracing::error!(%error, "the welcome email's fallback path failed"),
        }
    }
}

async fn recipient(db: &Db, user_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(db.pool())
        .await
}

async fn deliver(db: &Db, to: &str, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (recipient, subject, channel) VALUES ($1, 'Welcome!', $2)")
        .bind(to)
        .bind(channel)
        .execute(db.pool())
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

/// A payment to process: a durable job, enqueued with the payment and released when the
/// response was sent. A crash or a deploy in between, or while the provider is called,
/// leaves it to the next process; the payment and its order are written once, with the
/// job's completion.
#[derive(Serialize, Deserialize)]
pub struct ProcessPayment {
    pub payment_id: i64,
    pub order_id: i64,
    pub processing_ms: u64,
    pub declined: bool,
}

impl Job for ProcessPayment {
    const NAME: &'static str = "process_payment";
    type State = Services;

    async fn run(self, cx: JobContext<Services>) -> Result<(), BoxError> {
        Ok(process_payment(&cx, self).await?)
    }

    /// The database may be busy: retried. A declined charge is not.
    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(500))
            .max_attempts(5)
            .retry_on::<sqlx::Error>()
    }

    /// Alerts the on-call engineer, once per failure: the alert carries the failure's key.
    async fn on_failure(services: Services, failure: JobFailure) {
        if let Err(error) = alert_on_call(&services, &failure).await {
            tracing::error!(error = %error, "alerting on-call failed");
        }
    }
}

/// Simulates the payment provider for `processing_ms`, then records the result.
async fn process_payment(
    cx: &JobContext<Services>,
    payment: ProcessPayment,
) -> Result<(), PaymentError> {
    let db = &cx.state().db;
    let ProcessPayment {
        payment_id,
        order_id,
        processing_ms,
        declined,
    } = payment;
    // The provider's call, with its own record (it is outside our transaction). The log line
    // follows the record, so whoever sees it knows the provider was called.
    sqlx::query("INSERT INTO provider_calls (payment_id) VALUES ($1)")
        .bind(payment_id)
        .execute(db.pool())
        .await?;
    tracing::info!(payment_id, attempt = cx.attempt(), "payment started");
    crash::point("mid_task");
    tokio::time::sleep(Duration::from_millis(processing_ms)).await;
    if declined {
        sqlx::query("UPDATE payments SET status = 'failed' WHERE id = $1")
            .bind(payment_id)
            .execute(db.pool())
            .await?;
        return Err(PaymentError::Declined(Declined));
    }
    let mut tx = db.write().await?;
    sqlx::query("UPDATE payments SET status = 'succeeded' WHERE id = $1 AND status = 'pending'")
        .bind(payment_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    // The job ends in the same transaction: paid once, even if we crash after the commit.
    cx.complete_in(&mut tx).await?;
    crash::point("completion_write");
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
    #[error("payment could not be recorded")]
    Job(#[from] errands::durable::StoreError),
}

/// Posts an alert about a failed critical job to the on-call webhook. The alert carries the
/// failure's key: a failure reported again after a crash alerts once.
async fn alert_on_call(services: &Services, failure: &JobFailure) -> Result<(), reqwest::Error> {
    let alert = json!({
        "key": failure.key(),
        "text": format!("critical task {} failed: {}", failure.kind, failure.error),
        "task": failure.kind,
        "job_id": failure.id,
        "request_id": failure.request_id,
        "fields": failure.fields,
    });
    let webhook = &services.alert_webhook;
    let mut request = services.http.post(&webhook.url).json(&alert);
    if let Some(token) = &webhook.token {
        request = request.bearer_auth(token);
    }
    request.send().await?.error_for_status()?;
    tracing::warn!(task = failure.kind, "on-call alerted");
    Ok(())
}

/// Tells purchasing that customers asked for more than the stock: a durable job.
#[derive(Serialize, Deserialize)]
pub struct NotifyPurchasing {
    pub sku: String,
    pub requested: i64,
}

impl Job for NotifyPurchasing {
    const NAME: &'static str = "notify_purchasing";
    type State = Services;

    async fn run(self, cx: JobContext<Services>) -> Result<(), BoxError> {
        let NotifyPurchasing { sku, requested } = self;
        sqlx::query("INSERT INTO notifications (kind, message) VALUES ('restock', $1)")
            .bind(format!("{sku}: customers asked for {requested}"))
            .execute(cx.state().db.pool())
            .await?;
        tracing::info!(%sku, "purchasing notified");
        Ok(())
    }
}

pub async fn build_nightly_report() -> Result<(), ReportFailed> {
    Err(ReportFailed)
}

pub async fn build_export(work_ms: u64) {
    tracing::info!("export started");
    tokio::time::sleep(Duration::from_millis(work_ms)).await; // simulated work
    tracing::info!("export finished");
}
