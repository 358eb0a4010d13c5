//! Plain-text 4xx bodies: the handler's own message, or the location and reason of one of
//! axum's extractor rejections.
//!
//! axum's idiomatic `Err((StatusCode::BAD_REQUEST, "email already taken"))` and the
//! rejections of axum's own `Json`, `Query`, `Path` and `Form` extractors reach the layer as
//! `text/plain` responses. Both texts are public by their author's choice — the handler's, or
//! axum's, which sends them as they are without errands — so the pipeline keeps them: a
//! rejection, recognised by the fixed text axum starts it with, becomes a [`Violation`] in
//! `details` with the default message of its status; any other text becomes the `message`.
//! Both are bounded like validation messages. A 5xx text never reaches the client; like
//! every replaced text, it goes to the report's chain.

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use super::{ApiError, Violation, media_type};
use crate::report::Origin;

/// Longest text body read, in bytes (it is in memory already; what is kept of it is bounded
/// like a validation message); a longer one keeps the status's default message.
const MAX_BODY: usize = 64 * 1024;

/// axum's rejection texts: how each starts, where the problem is, and its stable type.
const REJECTIONS: [(&str, &[&str], &str); 10] = [
    (
        "Failed to deserialize the JSON body into the target type",
        &["body"],
        "json_invalid",
    ),
    (
        "Failed to parse the request body as JSON",
        &["body"],
        "json_syntax",
    ),
    (
        "Expected request with `Content-Type: application/json`",
        &["header", "content-type"],
        "content_type",
    ),
    (
        "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
        &["header", "content-type"],
        "content_type",
    ),
    ("Failed to deserialize form body", &["body"], "form_invalid"),
    ("Failed to deserialize form", &["query"], "form_invalid"),
    (
        "Failed to deserialize query string",
        &["query"],
        "query_invalid",
    ),
    ("Invalid URL", &["path"], "path_invalid"),
    (
        "Failed to buffer the request body",
        &["body"],
        "body_unreadable",
    ),
    (
        "Request body didn't contain valid UTF-8",
        &["body"],
        "utf8_invalid",
    ),
];

/// The public face of a 4xx response's text, and where it came from; `None` for a 5xx or an
/// empty text.
pub(super) fn public(status: StatusCode, text: &str) -> Option<(ApiError, Origin)> {
    let text = text.trim();
    if !status.is_client_error() || text.is_empty() {
        return None;
    }
    let default = ApiError::from_status(status);
    if let Some(violation) = rejection(text) {
        let details = serde_json::to_value([violation]).unwrap_or_default();
        return Some((default.with_details(details), Origin::Rejection));
    }
    let message = crate::chain::bounded(text.to_owned(), Violation::MAX_MSG);
    let own = ApiError::new(status, default.code().to_owned(), message);
    Some((own, Origin::Handler))
}

/// The text of a small, complete, unencoded `text/plain` body. For a 5xx it only goes to the
/// report (it may be internal), never to the client.
pub(super) fn read<B>(headers: &HeaderMap, body: B) -> Option<String>
where
    B: http_body::Body<Data = Bytes>,
{
    let plain = media_type(headers).as_deref() == Some("text/plain");
    if !plain || headers.contains_key(http::header::CONTENT_ENCODING) {
        return None;
    }
    let size = body.size_hint();
    if size.exact().is_none_or(|n| n > MAX_BODY as u64) {
        return None;
    }
    // A complete body (axum's `String`, `&str` and rejection bodies) is ready at once; a
    // streaming one keeps the default message rather than make the response wait.
    let collected = body.collect().now_or_never()?.ok()?;
    String::from_utf8(collected.to_bytes().to_vec()).ok()
}

/// The violation an axum rejection text stands for.
fn rejection(text: &str) -> Option<Violation> {
    REJECTIONS.iter().find_map(|&(start, loc, kind)| {
        let rest = text.strip_prefix(start)?;
        let reason = rest.strip_prefix(": ").unwrap_or(text);
        Some(Violation::new(loc.iter().copied(), reason, kind))
    })
}

#[cfg(test)]
mod tests {
    use super::rejection;

    #[test]
    fn axum_rejection_texts_become_violations() {
        let json = rejection(
            "Failed to deserialize the JSON body into the target type: email: missing field `email`",
        )
        .unwrap();
        assert_eq!(json.loc, ["body"]);
        assert_eq!(json.msg, "email: missing field `email`");
        assert_eq!(json.kind, "json_invalid");
        let form = rejection("Failed to deserialize form body: missing field `q`").unwrap();
        assert_eq!(
            (form.loc[0].as_str(), form.kind.as_str()),
            (Some("body"), "form_invalid")
        );
        let query = rejection("Failed to deserialize form: missing field `q`").unwrap();
        assert_eq!(query.loc, ["query"]);
        let media = rejection("Expected request with `Content-Type: application/json`").unwrap();
        assert_eq!(media.loc, ["header", "content-type"]);
        assert_eq!(
            media.msg,
            "Expected request with `Content-Type: application/json`"
        );
        assert!(rejection("email already taken").is_none());
    }
}
