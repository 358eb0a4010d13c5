//! The errands middleware: [`ErrandsLayer`], its service and its response future.
//!
//! Read top-down, the request path is:
//!
//! 1. `call`: take or make the request id (a new one goes into the request header too), open
//!    the request's [`RequestScope`], put it in the request extensions (the extractors read
//!    the id from it), and enter the request's span.
//! 2. `ResponseFuture::poll`: run the inner service with panics caught. When it returns, the
//!    error pipeline ([`errors::respond`]) renders and reports error responses; a panic
//!    becomes a `500 internal_error` response, reported once. Then the scope learns the final
//!    status and releases (or skips) the `after_route` batch.
//! 3. `finish`: echo the id in the `x-request-id` header, and wrap the body so that its drop
//!    releases the `after_response` batch.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::MatchedPath;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::Layer;
use tower::Service;

use crate::body::{CompletionBody, RequestGuard};
use crate::errors;
use crate::report::{ErrorReport, Origin};
use crate::request::{RequestId, RequestScope};
use crate::runtime::Inner;
use crate::task::{BoxError, SkipReason};
use crate::testing::WorkSlot;

const X_REQUEST_ID: HeaderName = HeaderName::from_static(RequestId::HEADER);

/// The layer made by [`Errands::layer`](crate::Errands::layer).
#[derive(Clone)]
pub struct ErrandsLayer {
    rt: Arc<Inner>,
}

impl ErrandsLayer {
    pub(crate) fn new(rt: Arc<Inner>) -> Self {
        ErrandsLayer { rt }
    }
}

impl<S> Layer<S> for ErrandsLayer {
    type Service = ErrandsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrandsService {
            inner,
            rt: self.rt.clone(),
        }
    }
}

/// The service made by [`ErrandsLayer`].
#[derive(Clone)]
pub struct ErrandsService<S> {
    inner: S,
    rt: Arc<Inner>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ErrandsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if request.extensions().get::<Arc<RequestScope>>().is_some() {
            // An outer errands layer already owns this request: pass it through, so nothing
            // is tracked or reported twice.
            return ResponseFuture {
                inner: self.inner.call(request),
                guard: None,
                span: tracing::Span::none(),
                nested: true,
            };
        }
        let (id, in_header) = request_id(request.headers());
        if !in_header {
            // Inner layers and handlers that read the header see the id too.
            request
                .headers_mut()
                .insert(X_REQUEST_ID, id.header_value());
        }
        let slot = request.extensions().get::<WorkSlot>().cloned();
        let scope = Arc::new(RequestScope::new(
            self.rt.clone(),
            id,
            request.method().clone(),
            request.extensions().get::<MatchedPath>(),
            slot.is_some(),
        ));
        let span = tracing::debug_span!(
            target: "errands",
            "request",
            request_id = %scope.id,
            method = %request.method(),
            route = scope.route(),
        );
        if let Some(slot) = slot {
            slot.fill(&scope);
        }
        request.extensions_mut().insert(scope.clone());
        let guard = RequestGuard::new(scope);
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner,
            guard: Some(guard),
            span,
            nested: false,
        }
    }
}

pin_project! {
    /// The response future of [`ErrandsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RequestGuard>,
        span: tracing::Span,
        nested: bool,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.nested {
            // Panics propagate to the outer layer, which catches them.
            return this
                .inner
                .poll(cx)
                .map(|result| result.map(|r| r.map(Body::new)));
        }
        let _entered = this.span.enter();
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(panic) => Err(panic),
        };
        let guard = this
            .guard
            .take()
            .expect("errands ResponseFuture polled after completion");
        let scope = &guard.scope;
        match result {
            Ok(Ok(response)) => {
                // Error mappers may attach tasks here: the batch is still open.
                let response = errors::respond(response, scope);
                let status = response.status();
                let skip = (status.as_u16() >= 400).then_some(SkipReason::ErrorStatus(status));
                scope.route_finished(status, skip);
                Poll::Ready(Ok(finish(response, guard)))
            }
            Ok(Err(error)) => {
                // The service failed without a response; the server will close the connection.
                scope.rt.report(
                    ErrorReport::new(Origin::Handler)
                        .message("the inner service failed without a response")
                        .request(scope),
                );
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                scope.route_finished(status, Some(SkipReason::ErrorStatus(status)));
                drop(guard);
                Poll::Ready(Err(error))
            }
            Err(panic) => {
                let response = errors::respond_to_panic(scope, panic);
                scope.route_finished(response.status(), Some(SkipReason::HandlerPanicked));
                Poll::Ready(Ok(finish(response, guard)))
            }
        }
    }
}

/// The request's id, and whether the request header already carries exactly it: the first
/// `x-request-id` value when valid, otherwise a new one.
fn request_id(headers: &HeaderMap) -> (RequestId, bool) {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    let first = values.next();
    let id = RequestId::from_header(first);
    let kept = first.is_some_and(|value| value.as_bytes() == id.as_str().as_bytes());
    (id, kept && values.next().is_none())
}

fn finish(mut response: Response<Body>, guard: RequestGuard) -> Response<Body> {
    response
        .headers_mut()
        .insert(X_REQUEST_ID, guard.scope.id.header_value());
    response.map(|body| Body::new(CompletionBody::new(body, guard)))
}
