//! OpenAPI schemas of the error bodies errands sends (feature `utoipa`).
//!
//! Document a route's error responses with these bodies: [`ErrorBody`] for the errands
//! schema, [`ProblemBody`] with [`problem_json`](crate::ErrandsBuilder::problem_json), and
//! [`Violation`](crate::Violation) — the items of `details` of a `422 validation_error` —
//! which derives `ToSchema` with this feature too. A route's errors then read as they are
//! sent:
//!
//! ```
//! use errands::openapi::ErrorBody;
//! use utoipa::OpenApi;
//!
//! /// An order by id.
//! #[utoipa::path(get, path = "/orders/{id}", responses(
//!     (status = 200, description = "The order"),
//!     (status = 404, description = "No such order", body = ErrorBody),
//!     (status = 422, description = "The id is not a number", body = ErrorBody),
//!     (status = 500, description = "Anything unexpected; never internal text", body = ErrorBody),
//! ))]
//! async fn get_order() {}
//!
//! #[derive(OpenApi)]
//! #[openapi(paths(get_order), components(schemas(ErrorBody, errands::Violation)))]
//! struct Api;
//!
//! let json = Api::openapi().to_json().unwrap();
//! assert!(json.contains("#/components/schemas/ErrorBody"));
//! ```

use serde::Serialize;
use utoipa::ToSchema;

/// The errands error body (`application/json`): the default error format.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": false,
    "error": "Not enough items in stock.",
    "code": "insufficient_stock",
    "details": {"available": 2},
    "request_id": "0193a5c0-7f3e-7c1a-9b2d-4f6e8a1c3d5e"
}))]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// The public message; for a 5xx, only the message of its mapping.
    pub error: String,
    /// A stable, machine-readable code such as `not_found` or `validation_error`.
    pub code: String,
    /// Structured details: for `422 validation_error`, a list of `Violation`s; otherwise what
    /// the error's mapping gives, or `null`.
    pub details: Option<serde_json::Value>,
    /// The request's id, also in the `x-request-id` header.
    pub request_id: Option<String>,
}

/// The RFC 9457 problem details body (`application/problem+json`), sent when the service
/// chose problem details as its error format.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The public message.
    pub detail: String,
    /// A stable, machine-readable code.
    pub code: String,
    /// Structured details, as in the errands error body.
    pub details: Option<serde_json::Value>,
    /// The request's id.
    pub request_id: Option<String>,
}
