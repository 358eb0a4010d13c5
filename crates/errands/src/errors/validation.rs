//! [`ValidationError`]: `422 validation_error` with `details: [{loc, msg, type}]`.

use std::fmt;

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Error;
use crate::chain::bounded;

/// One violation: where (`loc`, for example `["body", "email"]`), what (`msg`), and a stable
/// `type` such as `missing`, `invalid_type` or `json_invalid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Violation {
    /// The location: `body`, `query`, `path`, `form` or `header`, then the field path.
    pub loc: Vec<serde_json::Value>,
    /// A human-readable message (at most 256 bytes, then cut: `Violation::MAX_MSG`).
    pub msg: String,
    /// A stable type.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Violation {
    /// Longest message kept, in bytes; longer ones (which may quote large inputs) are cut.
    pub const MAX_MSG: usize = 256;

    /// Longest location segment kept, in bytes (a map key comes from the client).
    pub const MAX_SEGMENT: usize = 128;

    /// A violation at `loc`.
    pub fn new(
        loc: impl IntoIterator<Item = impl Into<serde_json::Value>>,
        msg: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        Violation {
            loc: loc
                .into_iter()
                .map(Into::into)
                .map(bounded_segment)
                .collect(),
            msg: bounded(msg.into(), Self::MAX_MSG),
            kind: kind.into(),
        }
    }

    fn location(&self) -> String {
        let parts: Vec<String> = self
            .loc
            .iter()
            .map(|p| match p {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        parts.join(".")
    }
}

/// Request validation failed: renders as `422 validation_error` with the violations as
/// `details`. The errands extractors produce it; handlers may too.
///
/// Its `Display` (which reaches reports and logs) names only locations and types, never the
/// submitted values.
///
/// ```
/// use errands::{ValidationError, Violation};
///
/// fn check(email: &str) -> Result<(), ValidationError> {
///     if !email.contains('@') {
///         return Err(Violation::new(["body", "email"], "must contain @", "value_error").into());
///     }
///     Ok(())
/// }
/// assert!(check("nope").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    violations: Vec<Violation>,
}

impl ValidationError {
    /// A validation error with these violations.
    pub fn new(violations: Vec<Violation>) -> Self {
        ValidationError { violations }
    }

    /// The violations.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
}

impl From<Violation> for ValidationError {
    fn from(violation: Violation) -> Self {
        ValidationError::new(vec![violation])
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request validation failed")?;
        for (i, v) in self.violations.iter().enumerate() {
            let sep = if i == 0 { " at " } else { ", " };
            write!(f, "{sep}{} ({})", v.location(), v.kind)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

impl IntoResponse for ValidationError {
    fn into_response(self) -> Response {
        Error::rejection(self).into_response()
    }
}

fn bounded_segment(segment: serde_json::Value) -> serde_json::Value {
    match segment {
        serde_json::Value::String(s) => bounded(s, Violation::MAX_SEGMENT).into(),
        other => other,
    }
}

/// Builds the violation for a deserialization error at `path` below `root`.
pub(crate) fn violation_at(
    root: &'static str,
    path: &serde_path_to_error::Path,
    message: &str,
) -> Violation {
    use serde_path_to_error::Segment;
    let mut loc: Vec<serde_json::Value> = vec![root.into()];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push((*index).into()),
            Segment::Map { key } => loc.push(key.clone().into()),
            Segment::Enum { variant } => loc.push(variant.clone().into()),
            Segment::Unknown => {}
        }
    }
    let kind = classify(message);
    if kind == "missing"
        && let Some(field) = message.split('`').nth(1)
    {
        loc.push(field.into());
    }
    Violation::new(loc, message, kind)
}

/// A stable type for serde's standard error messages.
fn classify(message: &str) -> &'static str {
    const KINDS: [(&str, &str); 6] = [
        ("missing field", "missing"),
        ("unknown field", "extra_forbidden"),
        ("invalid type", "invalid_type"),
        ("invalid value", "invalid_value"),
        ("invalid length", "invalid_length"),
        ("unknown variant", "invalid_variant"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("value_error", |(_, kind)| kind)
}
