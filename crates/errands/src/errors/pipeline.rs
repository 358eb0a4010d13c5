//! The pipeline step of the layer: turn a handler's response into the response to send, and
//! report every error response exactly once.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use super::catalog::Catalog;
use super::error::Carried;
use super::text;
use super::{ApiError, Error, ErrorContext, Format, is_json, media_type};
use crate::report::{ErrorLink, ErrorReport, Origin};
use crate::request::RequestId;
use crate::scope::RequestScope;
use crate::task::BoxError;

/// The application's own error body: see
/// [`ErrandsBuilder::render_errors`](crate::ErrandsBuilder::render_errors).
pub(crate) type Renderer = Arc<dyn Fn(&ApiError, &RequestId) -> Response + Send + Sync>;

/// How the pipeline maps and renders errors: the catalog, the body format, and the
/// application's renderer, which replaces the format when set.
#[derive(Default)]
pub(crate) struct Pipeline {
    pub(crate) catalog: Catalog,
    pub(crate) format: Format,
    pub(crate) renderer: Option<Renderer>,
}

impl Pipeline {
    /// The error body for `public`: the application's renderer, or the configured format
    /// (also when the renderer panics, which is reported).
    fn render(&self, public: &ApiError, scope: &RequestScope) -> Response<Body> {
        let id = &scope.info().id;
        if let Some(renderer) = &self.renderer {
            match crate::logs::catch(|| renderer(public, id)) {
                Ok(response) => return response,
                Err(panic) => scope.rt().report(
                    ErrorReport::new(Origin::ErrorHandler)
                        .message("error renderer panicked")
                        .panic(panic)
                        .request(scope.info()),
                ),
            }
        }
        self.format.render(public, Some(id))
    }
}

/// Renders what needs rendering and reports every error status once:
///
/// * a response carrying an [`Error`]: resolved through the catalog, rendered, reported with
///   the error's chain;
/// * a 4xx response with a JSON body the handler wrote itself: sent as it is, reported;
/// * any other error status — empty, a 5xx body (which might carry internal text), a non-JSON
///   4xx body such as axum's own plain-text rejections — is rendered with the status's
///   default code and message.
pub(crate) fn respond<B>(
    pipeline: &Pipeline,
    response: Response<B>,
    scope: &Arc<RequestScope>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if let Some(Carried(error)) = response.extensions().get::<Carried>().cloned() {
        return render_error(pipeline, &error, response.headers(), scope);
    }
    let status = response.status();
    if !is_error(status) {
        return response.map(Body::new);
    }
    // axum's router answers an unknown route (404, no matched route) and a wrong method
    // (405) itself: those are rejections, everything else came from a handler.
    let routed = scope.info().route().is_some();
    let origin = match status {
        StatusCode::METHOD_NOT_ALLOWED => Origin::Rejection,
        StatusCode::NOT_FOUND if !routed => Origin::Rejection,
        _ => Origin::Handler,
    };
    if keeps_own_body(&response) {
        let mut report = ErrorReport::new(origin)
            .message("handler returned an error response")
            .request(scope.info())
            .handled(true);
        report.status = Some(status);
        scope.rt().report(report);
        return response.map(Body::new);
    }
    let (parts, body) = response.into_parts();
    let text = text::read(&parts.headers, body);
    let (public, origin, message) = match text.as_deref().and_then(|t| text::public(status, t)) {
        Some((public, Origin::Rejection)) => (public, Origin::Rejection, "request rejected"),
        Some((public, _)) => (public, origin, "error status"),
        None => (ApiError::from_status(status), origin, "error status"),
    };
    let mut report = request_report(scope, origin, &public, message, true);
    report.chain = text.into_iter().map(ErrorLink::text).collect();
    scope.rt().report(report);
    rendered(pipeline, &public, &parts.headers, scope)
}

/// Whether an error response keeps the body its handler wrote: only a non-empty JSON body
/// with a client-error status.
fn keeps_own_body<B: http_body::Body>(response: &Response<B>) -> bool {
    let json = media_type(response.headers()).is_some_and(|t| is_json(&t));
    response.status().is_client_error() && json && response.body().size_hint().exact() != Some(0)
}

/// A panic caught by a nested errands layer, on its way to the outer one.
#[derive(Clone)]
struct CarriedPanic(String);

/// The response a nested errands layer gives for a panic: `500 internal_error`, carrying the
/// panic's message to the outer layer (never in the body).
pub(crate) fn carry_panic(panic: Box<dyn std::any::Any + Send>) -> Response<Body> {
    let mut response = Format::Json.render(&ApiError::internal(), None);
    let message = crate::task::panic_message(panic);
    response.extensions_mut().insert(CarriedPanic(message));
    response
}

/// The message of a panic a nested errands layer caught.
pub(crate) fn carried_panic<B>(response: &Response<B>) -> Option<String> {
    let carried = response.extensions().get::<CarriedPanic>()?;
    Some(carried.0.clone())
}

/// The response for a handler that panicked: `500 internal_error`, reported once with the
/// panic message (which never reaches the body).
pub(crate) fn respond_to_panic(
    pipeline: &Pipeline,
    scope: &Arc<RequestScope>,
    message: String,
    headers: &HeaderMap,
) -> Response<Body> {
    let public = ApiError::internal();
    scope.rt().report(
        ErrorReport::new(Origin::Handler)
            .message("handler panicked")
            .panic_message(message)
            .request(scope.info())
            .public(public.status(), public.code()),
    );
    rendered(pipeline, &public, headers, scope)
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn render_error(
    pipeline: &Pipeline,
    error: &Error,
    headers: &HeaderMap,
    scope: &Arc<RequestScope>,
) -> Response<Body> {
    let ctx = ErrorContext::new(scope);
    let resolved = crate::logs::catch(|| pipeline.catalog.resolve(error.inner(), &ctx));
    let (public, handled) = match resolved {
        Ok(Some(public)) => (public, true),
        Ok(None) => (ApiError::internal(), false),
        Err(panic) => {
            scope.rt().report(
                ErrorReport::new(Origin::ErrorHandler)
                    .message("error mapper panicked")
                    .panic(panic)
                    .request(scope.info()),
            );
            (ApiError::internal(), false)
        }
    };
    let message = match error.origin() {
        Origin::Rejection => "request rejected",
        _ => "handler error",
    };
    let report = request_report(scope, error.origin(), &public, message, handled)
        .original(&error.shared(), error.type_name());
    scope.rt().report(report);
    rendered(pipeline, &public, headers, scope)
}

fn request_report(
    scope: &RequestScope,
    origin: Origin,
    public: &ApiError,
    message: &'static str,
    handled: bool,
) -> ErrorReport {
    ErrorReport::new(origin)
        .message(message)
        .request(scope.info())
        .handled(handled)
        .public(public.status(), public.code())
}

/// Headers that describe the replaced body, and so must not travel with the new one.
const REPRESENTATION: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// Renders `public` with the request id, keeping the handler's other headers (such as
/// `allow` on a 405).
fn rendered(
    pipeline: &Pipeline,
    public: &ApiError,
    headers: &HeaderMap,
    scope: &RequestScope,
) -> Response<Body> {
    let mut response = pipeline.render(public, scope);
    for (name, value) in headers {
        if !REPRESENTATION.contains(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}
