use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::errors::{Error, ValidationError, Violation};

/// Path parameters, validated: a value that does not parse is a `422 validation_error`
/// located at `["path", <name>]`. A route whose parameters do not fit the type at all is a
/// programming error and stays `500 internal_error`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(failed)) => {
                match violation(failed.kind()) {
                    Some(v) => Err(Error::rejection(ValidationError::from(v))),
                    None => Err(Error::from(failed)),
                }
            }
            Err(other) => Err(Error::from(other)),
        }
    }
}

/// The violation for a client's bad value; `None` for the route's own misconfiguration.
fn violation(kind: &ErrorKind) -> Option<Violation> {
    let invalid = |loc: Vec<serde_json::Value>, expected: &str| {
        Violation::new(loc, format!("expected {expected}"), "invalid_type")
    };
    Some(match kind {
        ErrorKind::ParseErrorAtKey { key, expected_type, .. } => {
            invalid(vec!["path".into(), key.as_str().into()], expected_type)
        }
        ErrorKind::ParseErrorAtIndex { index, expected_type, .. } => {
            invalid(vec!["path".into(), (*index).into()], expected_type)
        }
        ErrorKind::ParseError { expected_type, .. } => invalid(vec!["path".into()], expected_type),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            Violation::new(["path", key.as_str()], "not valid UTF-8", "invalid_utf8")
        }
        ErrorKind::DeserializeError { key, message, .. } => {
            Violation::new(["path", key.as_str()], message.as_str(), "value_error")
        }
        ErrorKind::WrongNumberOfParameters { .. } | ErrorKind::UnsupportedType { .. } => {
            return None;
        }
        other => Violation::new(["path"], other.to_string(), "value_error"),
    })
}
