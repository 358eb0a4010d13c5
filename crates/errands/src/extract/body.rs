//! Reading a request body with a required content type.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;

use crate::errors::{ApiError, Error, media_type};

/// The body's bytes, if the request's content type satisfies `accepts`; otherwise `415`.
/// A body over the limit (axum's `DefaultBodyLimit`) is `413`.
pub(super) async fn read<S: Send + Sync>(
    request: Request,
    state: &S,
    accepts: fn(&str) -> bool,
    expected: &'static str,
) -> Result<Bytes, Error> {
    if !media_type(request.headers())
        .as_deref()
        .is_some_and(accepts)
    {
        return Err(Error::rejection(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            expected,
        )));
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let public = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "The request body could not be read.",
                )
            };
            Error::rejection(public)
        })
}

/// The message of a deserialization error, without serde_json's ` at line L column C`.
pub(super) fn without_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}
