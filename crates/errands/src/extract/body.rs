//! Reading a request body with a required content type.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;

use axum::RequestExt;
use http_body::Body as _;

use crate::errors::{ApiError, Error, media_type};
use crate::request::BodyTimedOut;

/// The body's bytes, if the request's content type satisfies `accepts`; otherwise `415`.
/// A body over the limit (axum's `DefaultBodyLimit`) is `413` — at once when its declared
/// `content-length` is over it, without waiting for the body. A client that stops sending
/// the body past the server's body read timeout gets `408`.
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
    let declared = request.body().size_hint().exact();
    let request = request.with_limited_body();
    // The limited body's upper bound is the limit, when the declared length passes it.
    let limit = request.body().size_hint().upper();
    if declared
        .zip(limit)
        .is_some_and(|(declared, limit)| declared > limit)
    {
        return Err(Error::rejection(ApiError::from_status(
            StatusCode::PAYLOAD_TOO_LARGE,
        )));
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let public = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
            } else if crate::chain::find::<BodyTimedOut>(&rejection).is_some() {
                ApiError::from_status(StatusCode::REQUEST_TIMEOUT)
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
