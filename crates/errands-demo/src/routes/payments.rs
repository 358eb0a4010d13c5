//! `POST /orders/{id}/payments`, `GET /payments/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use errands::extract::{Json, Path};
use errands::jobs::DurableTask;
use errands::{ApiError, Tasks};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::{crash, jobs};

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

/// Accepts a payment and processes it after the response, as a durable job committed with
/// the payment: shutdown waits for it up to its deadline, then hands it back to the store; a
/// crash leaves it to the next process. If the provider declines, the on-call webhook is
/// alerted.
pub async fn create(
    State(state): State<AppState>,
    tasks: Tasks,
    Path(order_id): Path<i64>,
    Json(payment): Json<NewPayment>,
) -> errands::Result<(StatusCode, Json<Payment>)> {
    let processing_ms = payment.processing_ms.min(600_000);
    let mut tx = state.db.write().await?;
    // An unknown order is 404 (row not found); a paid order, or one with a payment under
    // way, is 409 `already_paid`.
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status IN ('pending', 'succeeded')",
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
        "INSERT INTO payments (order_id, status) VALUES ($1, 'pending') RETURNING id",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    tasks
        .after_response()
        .shield()
        .field("payment_id", id)
        .field("order_id", order_id)
        .durable(jobs::ProcessPayment {
            payment_id: id,
            order_id,
            processing_ms,
            declined: payment.card == "declined",
        })
        .enqueue_in(&mut tx)
        .await?;
    crash::point("before_commit");
    // The payment and its job commit together, or neither does.
    tx.commit().await?;
    crash::point("after_commit");
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
        sqlx::query_as("SELECT id, order_id, status FROM payments WHERE id = $1")
            .bind(id)
            .fetch_one(state.db.pool())
            .await?;
    Ok(Json(Payment {
        id,
        order_id,
        status,
    }))
}
