//! `GET /products`, `POST /orders`, `GET /orders/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use errands::extract::{Json, Path};
use errands::jobs::DurableTask;
use errands::{Tasks, ValidationError, Violation};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::domain::{InsufficientStock, UnknownProduct, UnknownUser};
use crate::jobs;

#[derive(Serialize)]
pub struct Product {
    sku: String,
    name: String,
    price_cents: i64,
    stock: i64,
}

pub async fn products(State(state): State<AppState>) -> errands::Result<Json<Vec<Product>>> {
    let rows: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT sku, name, price_cents, stock FROM products ORDER BY sku")
            .fetch_all(state.db.pool())
            .await?;
    let products = rows
        .into_iter()
        .map(|(sku, name, price_cents, stock)| Product {
            sku,
            name,
            price_cents,
            stock,
        })
        .collect();
    Ok(Json(products))
}

#[derive(Deserialize)]
pub struct NewOrder {
    user_id: i64,
    items: Vec<Item>,
}

#[derive(Deserialize, Serialize)]
pub struct Item {
    sku: String,
    quantity: i64,
}

#[derive(Serialize)]
pub struct Order {
    id: i64,
    user_id: i64,
    status: String,
    total_cents: i64,
    items: Vec<Item>,
}

/// Places an order in one transaction: stock is taken line by line, and any failure — an
/// unknown user or product, insufficient stock — rolls everything back.
pub async fn create(
    State(state): State<AppState>,
    tasks: Tasks,
    Json(order): Json<NewOrder>,
) -> errands::Result<(StatusCode, Json<Order>)> {
    validate(&order)?;
    let mut tx = state.db.write().await?;
    let user: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
        .bind(order.user_id)
        .fetch_optional(&mut *tx)
        .await?;
    if user.is_none() {
        return Err(UnknownUser(order.user_id).into());
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, status, total_cents) VALUES ($1, 'placed', 0) RETURNING id",
    )
    .bind(order.user_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut total = 0;
    for item in &order.items {
        let product: Option<(i64, i64)> =
            sqlx::query_as("SELECT price_cents, stock FROM products WHERE sku = $1")
                .bind(&item.sku)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((price, stock)) = product else {
            return Err(UnknownProduct(item.sku.clone()).into());
        };
        if stock < item.quantity {
            // Nothing of the order is kept; purchasing hears of the shortage once the
            // client has its 409 (`always`: a task of a failed request).
            tx.rollback().await?;
            tasks
                .after_response()
                .always()
                .field("sku", item.sku.clone())
                .durable(jobs::NotifyPurchasing {
                    sku: item.sku.clone(),
                    requested: item.quantity,
                })
                .enqueue()
                .await?;
            return Err(InsufficientStock {
                sku: item.sku.clone(),
                available: stock,
                requested: item.quantity,
            }
            .into());
        }
        sqlx::query("UPDATE products SET stock = stock - $1 WHERE sku = $2")
            .bind(item.quantity)
            .bind(&item.sku)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO order_lines (order_id, sku, quantity) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&item.sku)
            .bind(item.quantity)
            .execute(&mut *tx)
            .await?;
        total += price * item.quantity;
    }
    sqlx::query("UPDATE orders SET total_cents = $1 WHERE id = $2")
        .bind(total)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // Scheduled before the commit: if scheduling is refused, the order is rolled back.
    tasks
        .after_route()
        .field("order_id", id)
        .schedule(jobs::write_audit(
            state.db.clone(),
            "order.placed",
            id.to_string(),
        ))?;
    tx.commit().await?;
    let order = Order {
        id,
        user_id: order.user_id,
        status: "placed".into(),
        total_cents: total,
        items: order.items,
    };
    Ok((StatusCode::CREATED, Json(order)))
}

fn validate(order: &NewOrder) -> Result<(), ValidationError> {
    if order.items.is_empty() || order.items.len() > 50 {
        return Err(
            Violation::new(["body", "items"], "must list 1 to 50 items", "value_error").into(),
        );
    }
    let mut skus = std::collections::HashSet::new();
    for (i, item) in order.items.iter().enumerate() {
        if !skus.insert(item.sku.as_str()) {
            let loc = serde_json::json!(["body", "items", i, "sku"]);
            let loc = loc.as_array().cloned().unwrap_or_default();
            return Err(Violation::new(loc, "each sku may be listed once", "value_error").into());
        }
        if !(1..=1000).contains(&item.quantity) {
            let loc = serde_json::json!(["body", "items", i, "quantity"]);
            let loc = loc.as_array().cloned().unwrap_or_default();
            return Err(Violation::new(loc, "must be between 1 and 1000", "value_error").into());
        }
    }
    Ok(())
}

/// Shows an order; an unknown id is `404 not_found`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> errands::Result<Json<Order>> {
    let (id, user_id, status, total_cents): (i64, i64, String, i64) =
        sqlx::query_as("SELECT id, user_id, status, total_cents FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(state.db.pool())
            .await?;
    let lines: Vec<(String, i64)> =
        sqlx::query_as("SELECT sku, quantity FROM order_lines WHERE order_id = $1 ORDER BY sku")
            .bind(id)
            .fetch_all(state.db.pool())
            .await?;
    let items = lines
        .into_iter()
        .map(|(sku, quantity)| Item { sku, quantity })
        .collect();
    Ok(Json(Order {
        id,
        user_id,
        status,
        total_cents,
        items,
    }))
}
