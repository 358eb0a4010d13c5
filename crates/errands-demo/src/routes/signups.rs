//! `POST /signups`, `GET /users/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use errands::extract::{Json, Path};
use errands::jobs::DurableTask;
use errands::{Tasks, ValidationError, Violation};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::jobs;

#[derive(Deserialize)]
pub struct NewUser {
    email: String,
}

#[derive(Serialize)]
pub struct User {
    id: i64,
    email: String,
}

/// Creates a user. Analytics are recorded at once, the audit record after the route, and the
/// welcome email — a durable job committed with the user — after the response: retried,
/// then sent through the fallback path.
pub async fn create(
    State(state): State<AppState>,
    tasks: Tasks,
    Json(new): Json<NewUser>,
) -> errands::Result<(StatusCode, Json<User>)> {
    let email = new.email.trim().to_owned();
    if !email.contains('@') || email.len() > 254 {
        return Err(ValidationError::from(Violation::new(
            ["body", "email"],
            "must be an email address",
            "value_error",
        ))
        .into());
    }
    // The user is committed last, once its tasks are scheduled: if scheduling is refused
    // (overloaded, shutting down), nothing is written. A duplicate violates the unique
    // index: 409 conflict, through the sqlx mapping.
    let mut tx = state.db.write().await?;
    let id: i64 = sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;

    tasks
        .after_route()
        .field("user_id", id)
        .schedule(jobs::write_audit(
            state.db.clone(),
            "user.created",
            id.to_string(),
        ))?;
    tasks
        .after_response()
        .field("user_id", id)
        .durable(jobs::WelcomeEmail { user_id: id })
        .enqueue_in(&mut tx)
        .await?;
    tasks.schedule(jobs::record_analytics(state.db.clone(), "signup"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(User { id, email })))
}

/// Shows a user; an unknown id is `404 not_found` (row not found, through the sqlx mapping).
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> errands::Result<Json<User>> {
    let (id, email): (i64, String) = sqlx::query_as("SELECT id, email FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(state.db.pool())
        .await?;
    Ok(Json(User { id, email }))
}
