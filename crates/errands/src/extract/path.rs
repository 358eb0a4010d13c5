use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, RawPathParams};
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
                match violation(failed.kind(), only_param(parts, state).await) {
                    Some(v) => Err(Error::rejection(ValidationError::from(v))),
                    None => Err(Error::from(failed)),
                }
            }
            Err(other) => Err(Error::from(other)),
        }
    }
}

/// The name of the route's parameter when it has exactly one: axum reports a bad value of a
/// single primitive parameter without its name.
async fn only_param<S: Send + Sync>(parts: &mut Parts, state: &S) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    let mut names = params.iter().map(|(name, _)| name);
    match (names.next(), names.next()) {
        (Some(name), None) => Some(name.to_owned()),
        _ => None,
    }
}

/// The violation for a client's bad value; `None` for the route's own misconfiguration.
fn violation(kind: &ErrorKind, only_param: Option<String>) -> Option<Violation> {
    let invalid = |loc: Vec<serde_json::Value>, expected: &str| {
        Violation::new(loc, format!("expected {expected}"), "invalid_type")
    };
    Some(match kind {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => invalid(vec!["path".into(), key.as_str().into()], expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => invalid(vec!["path".into(), (*index).into()], expected_type),
        ErrorKind::ParseError { expected_type, .. } => {
            let loc = std::iter::once("path".to_owned()).chain(only_param);
            invalid(loc.map(Into::into).collect(), expected_type)
        }
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
