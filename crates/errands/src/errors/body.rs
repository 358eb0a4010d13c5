//! The error body: `{"success": false, "error", "code", "details", "request_id"}`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::request::RequestId;

/// A public description of an error, attached to a response as an extension so that the
/// errands layer can render it with the request's id.
#[derive(Clone, Debug)]
pub(crate) struct PublicError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    success: bool,
    error: &'a str,
    code: &'a str,
    details: Option<()>,
    request_id: Option<&'a str>,
}

impl PublicError {
    pub(crate) fn render(&self, request_id: Option<&RequestId>) -> Response {
        let body = ErrorBody {
            success: false,
            error: self.message,
            code: self.code,
            details: None,
            request_id: request_id.map(RequestId::as_str),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Body::from(json));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl IntoResponse for PublicError {
    fn into_response(self) -> Response {
        self.render(None)
    }
}
