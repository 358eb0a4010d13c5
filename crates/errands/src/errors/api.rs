//! [`ApiError`]: an explicit, public error — status, stable code, message and details.

use std::borrow::Cow;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::Error;

/// An error with an explicit public face, like FastAPI's `HTTPException`: a status, a stable
/// machine-readable `code`, a public `message` and optional `details`.
///
/// Return it from a handler (directly or through [`Error`] with `?`), or produce it from a
/// catalog mapper. The errands layer renders it in the configured format with the request id.
///
/// ```
/// use axum::http::StatusCode;
/// use errands::ApiError;
///
/// async fn reserve(quantity: u32) -> Result<&'static str, ApiError> {
///     if quantity > 3 {
///         return Err(ApiError::new(StatusCode::CONFLICT, "insufficient_stock", "Not enough items in stock.")
///             .with_details(serde_json::json!({"available": 3})));
///     }
///     Ok("reserved")
/// }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a public `message`.
    ///
    /// `status` must be an error status (4xx or 5xx); anything else is treated as `500`, so
    /// an error can never be sent as a success.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let is_error = status.is_client_error() || status.is_server_error();
        ApiError {
            status: if is_error {
                status
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            code: code.into(),
            message: bounded_message(message.into()),
            details: None,
        }
    }

    /// Longest message kept, in bytes; a longer one (which may echo client input) is cut.
    pub const MAX_MESSAGE: usize = 1024;

    /// The error errands uses for `status` when nothing more specific is known: for example
    /// `404 not_found "Not found."`, `500 internal_error "Internal server error."`.
    ///
    /// ```
    /// let e = errands::ApiError::from_status(axum::http::StatusCode::METHOD_NOT_ALLOWED);
    /// assert_eq!((e.code(), e.message()), ("method_not_allowed", "Method not allowed."));
    /// ```
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "Bad request."),
            401 => ("unauthorized", "Authentication required."),
            403 => ("forbidden", "Forbidden."),
            404 => ("not_found", "Not found."),
            405 => ("method_not_allowed", "Method not allowed."),
            408 => ("request_timeout", "The request took too long."),
            409 => ("conflict", "Conflict."),
            410 => ("gone", "Gone."),
            413 => ("payload_too_large", "The request body is too large."),
            415 => ("unsupported_media_type", "Unsupported media type."),
            416 => ("range_not_satisfiable", "Range not satisfiable."),
            422 => ("validation_error", "Validation error."),
            429 => ("too_many_requests", "Too many requests."),
            501 => ("not_implemented", "Not implemented."),
            502 => ("bad_gateway", "An upstream service failed."),
            503 => ("service_unavailable", "The service is unavailable."),
            504 => (
                "gateway_timeout",
                "An upstream service did not answer in time.",
            ),
            500..=599 => ("internal_error", "Internal server error."),
            _ => ("error", "The request failed."),
        };
        ApiError::new(status, code, message)
    }

    /// `500 internal_error`: what every unmapped error and every panic becomes.
    pub fn internal() -> Self {
        ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Attaches details (any JSON), rendered as `details`. As they may echo client input,
    /// they are bounded: strings to 256 bytes, arrays and objects to 100 entries, nesting to
    /// 16 levels.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(crate::chain::bounded_json(details));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code, such as `not_found`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}

/// `message` cut to [`ApiError::MAX_MESSAGE`] bytes, without copying one that fits.
fn bounded_message(message: Cow<'static, str>) -> Cow<'static, str> {
    if message.len() <= ApiError::MAX_MESSAGE {
        return message;
    }
    Cow::Owned(crate::chain::bounded(
        message.into_owned(),
        ApiError::MAX_MESSAGE,
    ))
}
