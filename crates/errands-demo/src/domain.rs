//! Domain errors and how they look to clients.

use axum::http::StatusCode;
use errands::{ApiError, ErrandsBuilder, ErrorContext};
use serde_json::json;

/// An order asked for more than the stock holds.
#[derive(Debug, thiserror::Error)]
#[error("insufficient stock for {sku}: {available} available, {requested} requested")]
pub struct InsufficientStock {
    pub sku: String,
    pub available: i64,
    pub requested: i64,
}

/// An order named a product the catalog does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown product {0}")]
pub struct UnknownProduct(pub String);

/// An order named a user that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown user {0}")]
pub struct UnknownUser(pub i64);

/// Registers the public face of each domain error.
pub fn register(builder: ErrandsBuilder) -> ErrandsBuilder {
    builder
        .map_error(|e: &InsufficientStock, _: &ErrorContext| {
            ApiError::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Not enough items in stock.",
            )
            .with_details(json!({"sku": e.sku, "available": e.available, "requested": e.requested}))
        })
        .map_error(|e: &UnknownProduct, _: &ErrorContext| {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_product", "No such product.")
                .with_details(json!({"sku": e.0}))
        })
        .map_error(|e: &UnknownUser, _: &ErrorContext| {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_user", "No such user.")
                .with_details(json!({"user_id": e.0}))
        })
}
