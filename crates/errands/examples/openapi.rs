//! Documenting a route's error responses in OpenAPI with errands' error bodies
//! (feature `utoipa`).
//!
//! Run: `cargo run -p errands --features utoipa --example openapi`

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use errands::openapi::ErrorBody;
use errands::{ApiError, Errands, Violation};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(Serialize, ToSchema)]
struct Order {
    id: u64,
    total_cents: u64,
}

/// An order by id.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    params(("id" = u64, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`not_found`)", body = ErrorBody),
        (status = 422, description = "The id is not a number (`validation_error`, with \
            violations in `details`)", body = ErrorBody),
        (status = 500, description = "Anything unexpected (`internal_error`); the body never \
            carries internal text", body = ErrorBody),
    )
)]
async fn get_order(
    errands::extract::Path(id): errands::extract::Path<u64>,
) -> Result<Json<Order>, ApiError> {
    match id {
        7 => Ok(Json(Order {
            id,
            total_cents: 1999,
        })),
        _ => Err(ApiError::from_status(StatusCode::NOT_FOUND)),
    }
}

#[derive(OpenApi)]
#[openapi(paths(get_order), components(schemas(Order, ErrorBody, Violation)))]
struct Api;

#[tokio::main]
async fn main() {
    let errands = Errands::new();
    let _app: Router = Router::new()
        .route("/orders/{id}", get(get_order))
        .layer(errands.layer());

    let spec = serde_json::to_value(Api::openapi()).expect("the spec serializes");
    println!("{}", serde_json::to_string_pretty(&spec).expect("JSON"));
    let responses = &spec["paths"]["/orders/{id}"]["get"]["responses"];
    for status in ["404", "422", "500"] {
        assert_eq!(
            responses[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
    assert!(spec["components"]["schemas"]["Violation"].is_object());
}
