//! `POST /orders/{id}/payments`, `GET /payments/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use errands::extract::{Json, Path};
use errands::{ApiError, TaskError, TaskInfo, Tasks};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::jobs;

#[derive(Deserialize)]
pub struct NewPayment {
    /// `"declined"` makes the simulated provider decline the charge.
    #[serde(default)]
    card: String,
    /// How long the simulated provider takes, in milliseconds (at most 10 minutes).
    #[serde(default = "default_processing_ms")]
    processing_ms: u64,
}

fn default_processing_ms() -> u64 {
    200
}

#[derive(Serialize)]
pub struct Payment {
    id: i64,
    order_id: i64,
    status: String,
}

/// Accepts a payment and processes it after the response, in a shielded task: shutdown
/// waits for it. If the provider declines, the on-call webhook is alerted.
pub async fn create(
    State(state): State<AppState>,
    tasks: Tasks,
    Path(order_id): Path<i64>,
    Json(payment): Json<NewPayment>,
) -> errands::Result<(StatusCode, Json<Payment>)> {
    let processing_ms = payment.processing_ms.min(600_000);
    let mut tx = crate::db::write_transaction(&state.db).await?;
    // An unknown order is 404 (row not found); a paid order, or one with a payment under
    // way, is 409 `already_paid`.
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE order_id = ? AND status IN ('pending', 'succeeded')",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    if status != "placed" || open > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_paid",
            "This order is paid or has a payment under way.",
        )
        .into());
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO payments (order_id, status) VALUES (?, 'pending') RETURNING id",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    let (http, webhook) = (state.http.clone(), state.alert_webhook.clone());
    tasks
        .after_response()
        .name("process_payment")
        .shield()
        .field("payment_id", id)
        .field("order_id", order_id)
        .on_error(move |info: TaskInfo, error: TaskError| {
            jobs::alert_on_call(http, webhook, info, error)
        })
        .schedule(jobs::process_payment(
            state.db.clone(),
            id,
            order_id,
            processing_ms,
            payment.card == "declined",
        ))?;
    // Committed once the task is scheduled: a refused schedule leaves no pending payment.
    tx.commit().await?;
    let payment = Payment {
        id,
        order_id,
        status: "pending".into(),
    };
    Ok((StatusCode::ACCEPTED, Json(payment)))
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> errands::Result<Json<Payment>> {
    let (id, order_id, status): (i64, i64, String) =
        sqlx::query_as("SELECT id, order_id, status FROM payments WHERE id = ?")
            .bind(id)
            .fetch_one(&state.db)
            .await?;
    Ok(Json(Payment {
        id,
        order_id,
        status,
    }))
}
