//! How error bodies look: the errands JSON schema, or RFC 9457 problem details.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};
use serde::Serialize;

use super::ApiError;
use crate::request::RequestId;

/// The error body format, chosen once for the whole service.
///
/// * [`Format::Json`] (default), `application/json`:
///   `{"success": false, "error": <message>, "code": <code>, "details": <details or null>, "request_id": <id>}`
/// * [`Format::Problem`], RFC 9457 `application/problem+json`:
///   `{"type": "about:blank", "title": <status phrase>, "status": <status>, "detail": <message>, "code": <code>, "details": <details or null>, "request_id": <id>}`
///
/// ```
/// let errands = errands::Errands::builder().problem_json().build();
/// # let _ = errands;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The errands schema.
    #[default]
    Json,
    /// RFC 9457 problem details.
    Problem,
}

#[derive(Serialize)]
struct JsonBody<'a> {
    success: bool,
    error: &'a str,
    code: &'a str,
    details: Option<&'a serde_json::Value>,
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    details: Option<&'a serde_json::Value>,
    request_id: Option<&'a str>,
}

impl Format {
    /// Renders `error` as a complete response.
    pub(crate) fn render(self, error: &ApiError, request_id: Option<&RequestId>) -> Response {
        let request_id = request_id.map(RequestId::as_str);
        let status = error.status();
        let (json, content_type) = match self {
            Format::Json => (
                serde_json::to_vec(&JsonBody {
                    success: false,
                    error: error.message(),
                    code: error.code(),
                    details: error.details(),
                    request_id,
                }),
                "application/json",
            ),
            Format::Problem => (
                serde_json::to_vec(&ProblemBody {
                    kind: "about:blank",
                    title: status.canonical_reason().unwrap_or("Error"),
                    status: status.as_u16(),
                    detail: error.message(),
                    code: error.code(),
                    details: error.details(),
                    request_id,
                }),
                "application/problem+json",
            ),
        };
        let mut response = Response::new(Body::from(json.unwrap_or_default()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}
