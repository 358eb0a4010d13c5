//! The central error pipeline.
//!
//! Every error of the service takes one path. A handler returns an [`Error`] (anything
//! converts into it with `?`), an [`ApiError`], or a [`ValidationError`] from the errands
//! extractors; it renders a provisional body and travels to the errands layer in the response's
//! extensions. The layer resolves it through the catalog — mappers registered with
//! [`ErrandsBuilder::map_error`](crate::ErrandsBuilder::map_error), then the built-in
//! mappings, along the `source()` chain — renders the public face in the configured
//! [`Format`] with the request id, and reports it once. Other error responses — empty (axum's
//! unknown route and wrong method, a bare `StatusCode`), 5xx, or with a non-JSON body — get
//! the same body; a handler's own JSON body for a 4xx is kept. Every response with a status
//! of 400 or more is reported exactly once.

mod api;
mod catalog;
mod error;
mod format;
mod layer_missing;
mod pipeline;
mod schedule;
#[cfg(feature = "sqlx")]
mod sqlx;
#[cfg(feature = "durable")]
mod store;
mod text;
mod validation;

pub use api::ApiError;
pub use catalog::ErrorContext;
pub use error::{Error, Result};
pub use format::Format;
pub use layer_missing::LayerMissing;
pub(crate) use pipeline::{Pipeline, carried_panic, carry_panic, respond, respond_to_panic};
pub(crate) use validation::violation_at;
pub use validation::{ValidationError, Violation};

/// The media type of a `content-type` header, lowercased, without parameters.
pub(crate) fn media_type(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// `application/json`, or any `application/…+json`.
pub(crate) fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}
