use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::body;
use crate::errors::{Error, ValidationError, Violation, is_json, violation_at};

/// A JSON body, validated: any failure is a `422 validation_error` whose `details` locate the
/// problem (`["body", "items", 0, "quantity"]`). As a response, serializes like `axum::Json`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body::read(
            request,
            state,
            is_json,
            "Expected a request with `Content-Type: application/json`.",
        )
        .await?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| invalid(Some(e.path()), e.inner()))?;
        deserializer.end().map_err(|e| invalid(None, &e))?;
        Ok(Json(value))
    }
}

/// A data error (wrong type, missing field…) is located by its path; anything else
/// (malformed JSON, trailing characters) is `json_invalid` at `["body"]`.
fn invalid(path: Option<&serde_path_to_error::Path>, error: &serde_json::Error) -> Error {
    let message = error.to_string();
    let violation = match path {
        Some(path) if error.is_data() => {
            violation_at("body", path, body::without_position(&message))
        }
        _ => Violation::new(["body"], message, "json_invalid"),
    };
    Error::rejection(ValidationError::from(violation))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
