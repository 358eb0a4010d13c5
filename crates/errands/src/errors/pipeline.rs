//! The pipeline step of the layer: turn a handler's response into the response to send, and
//! report every error response exactly once.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use super::error::Carried;
use super::{ApiError, Error, ErrorContext};
use crate::report::{ErrorReport, Origin};
use crate::request::RequestScope;
use crate::task::BoxError;

/// Renders what needs rendering and reports every error status once:
///
/// * a response carrying an [`Error`]: resolved through the catalog, rendered, reported with
///   the error's chain;
/// * an error status with an empty body: rendered with the status's default code;
/// * any other error status (a body the handler wrote itself): sent as is, reported.
pub(crate) fn respond<B>(response: Response<B>, scope: &Arc<RequestScope>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if let Some(Carried(error)) = response.extensions().get::<Carried>().cloned() {
        return render_error(&error, response.headers(), scope);
    }
    let status = response.status();
    if !is_error(status) {
        return response.map(Body::new);
    }
    let origin = if response.headers().contains_key(header::ALLOW) || scope.route().is_none() {
        Origin::Rejection
    } else {
        Origin::Handler
    };
    if response.body().size_hint().exact() == Some(0) {
        let public = ApiError::from_status(status);
        report(scope, origin, &public, "error status", Vec::new(), true);
        return rendered(&public, response.headers(), scope);
    }
    let mut report = ErrorReport::new(origin)
        .message("handler returned an error response")
        .request(scope)
        .handled(true);
    report.status = Some(status);
    scope.rt.report(report);
    response.map(Body::new)
}

/// The response for a handler that panicked: `500 internal_error`, reported once with the
/// panic message (which never reaches the body).
pub(crate) fn respond_to_panic(
    scope: &Arc<RequestScope>,
    panic: Box<dyn std::any::Any + Send>,
) -> Response<Body> {
    let public = ApiError::internal();
    let mut report = ErrorReport::new(Origin::Handler)
        .message("handler panicked")
        .panic(panic)
        .request(scope);
    report.status = Some(public.status());
    report.code = Some(public.code().to_owned());
    scope.rt.report(report);
    scope.rt.config.format.render(&public, Some(&scope.id))
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn render_error(error: &Error, headers: &HeaderMap, scope: &Arc<RequestScope>) -> Response<Body> {
    let ctx = ErrorContext::new(scope);
    let resolved = std::panic::catch_unwind(AssertUnwindSafe(|| {
        scope.rt.config.catalog.resolve(error.get(), &ctx)
    }));
    let (public, handled) = match resolved {
        Ok(Some(public)) => (public, true),
        Ok(None) => (ApiError::internal(), false),
        Err(panic) => {
            scope.rt.report(
                ErrorReport::new(Origin::ErrorHandler)
                    .message("error mapper panicked")
                    .panic(panic)
                    .request(scope),
            );
            (ApiError::internal(), false)
        }
    };
    let message = match error.origin() {
        Origin::Rejection => "request rejected",
        _ => "handler error",
    };
    report(
        scope,
        error.origin(),
        &public,
        message,
        error.chain(),
        handled,
    );
    rendered(&public, headers, scope)
}

fn report(
    scope: &RequestScope,
    origin: Origin,
    public: &ApiError,
    message: &str,
    chain: Vec<crate::report::ErrorLink>,
    handled: bool,
) {
    let mut report = ErrorReport::new(origin)
        .message(message)
        .request(scope)
        .handled(handled);
    report.chain = chain;
    report.status = Some(public.status());
    report.code = Some(public.code().to_owned());
    scope.rt.report(report);
}

/// Renders `public` with the request id, keeping the handler's other headers (such as
/// `allow` on a 405).
fn rendered(public: &ApiError, headers: &HeaderMap, scope: &RequestScope) -> Response<Body> {
    let mut response = scope.rt.config.format.render(public, Some(&scope.id));
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}
