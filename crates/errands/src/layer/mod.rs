//! The errands middleware: [`ErrandsLayer`] (made by
//! [`Errands::layer`](crate::Errands::layer)), its service [`ErrandsService`] and its
//! [`ResponseFuture`], in the manner of tower-http's middleware modules.
//!
//! For each request, top-down:
//!
//! 1. The service takes or makes the request id (a new one goes into the request header
//!    too), opens the request's scope, puts it in the request's extensions (the [`Tasks`]
//!    and [`RequestId`] extractors read it), and enters the request's span.
//! 2. The response future runs the inner service with panics caught. When it returns, the
//!    error pipeline renders and reports error responses; a panic becomes a
//!    `500 internal_error` response, reported once. Then the scope learns the final status
//!    and releases (or skips) the `after_route` tasks.
//! 3. The response gets the id in its `x-request-id` header, and its body is wrapped so that
//!    the body's drop releases the `after_response` tasks.
//!
//! [`Tasks`]: crate::Tasks

mod body;
mod future;
mod outer;

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::MatchedPath;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use tower::Layer;
use tower::Service;

use crate::errors::Pipeline;
use crate::request::{RequestId, RequestInfo};
use crate::runtime::Runtime;
use crate::scope::RequestScope;
use crate::task::BoxError;
use crate::watch::WatchSlot;

use body::RequestGuard;
pub use future::ResponseFuture;
use outer::Handoff;
pub(crate) use outer::OuterLayer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static(RequestId::HEADER);

/// The W3C trace context header, kept with the request's tasks and durable jobs.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The layer made by [`Errands::layer`](crate::Errands::layer).
#[derive(Clone)]
pub struct ErrandsLayer {
    rt: Arc<Runtime>,
    pipeline: Arc<Pipeline>,
}

impl ErrandsLayer {
    pub(crate) fn new(rt: Arc<Runtime>, pipeline: Arc<Pipeline>) -> Self {
        ErrandsLayer { rt, pipeline }
    }
}

impl std::fmt::Debug for ErrandsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrandsLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ErrandsLayer {
    type Service = ErrandsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrandsService {
            inner,
            rt: self.rt.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The service made by [`ErrandsLayer`].
#[derive(Clone)]
pub struct ErrandsService<S> {
    inner: S,
    rt: Arc<Runtime>,
    pipeline: Arc<Pipeline>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ErrandsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrandsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
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
        if let Some(probe) = request.extensions().get::<Probe>() {
            // `serve` checking, before it accepts, that the router has this layer.
            probe.0.store(true, std::sync::atomic::Ordering::Relaxed);
            return ResponseFuture::nested(self.inner.call(request));
        }
        if request.extensions().get::<Arc<RequestScope>>().is_some() {
            // An outer errands layer already owns this request: pass it through, so nothing
            // is tracked or reported twice.
            return ResponseFuture::nested(self.inner.call(request));
        }
        let handoff = request.extensions().get::<Arc<Handoff>>().cloned();
        let (guard, span) = open(&self.rt, &mut request);
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture::new(inner, guard, self.pipeline.clone(), span, handoff)
    }
}

/// Opens the request's scope: takes or makes its id (a new one goes into the request header
/// too, for inner layers and handlers that read it), puts the scope in the request's
/// extensions, counts the request in flight, and makes its span.
fn open<B>(rt: &Arc<Runtime>, request: &mut Request<B>) -> (RequestGuard, tracing::Span) {
    let (id, in_header) = request_id(request.headers());
    if !in_header {
        request
            .headers_mut()
            .insert(X_REQUEST_ID, id.header_value());
    }
    let watch = (request.extensions().get::<WatchSlot>()).map(|slot| slot.fill(&id));
    let info = RequestInfo::new(
        id,
        request.method().clone(),
        request.extensions().get::<MatchedPath>(),
    )
    .with_traceparent(request.headers().get(TRACEPARENT));
    let scope = Arc::new(RequestScope::new(rt.clone(), info, watch));
    let info = scope.info();
    let span = crate::logs::span_at!(
        rt.span_level(),
        target: "errands",
        "request",
        request_id = %info.id,
        method = %info.method,
        route = info.route(),
    );
    scope.set_span(&span);
    request.extensions_mut().insert(scope.clone());
    (RequestGuard::new(scope), span)
}

/// Marks the request [`Errands::serve`](crate::Errands::serve) sends through the router before
/// it accepts connections: an errands layer that sees it sets the flag and passes it through
/// untracked.
#[derive(Clone, Default)]
pub(crate) struct Probe(pub(crate) Arc<std::sync::atomic::AtomicBool>);

impl Probe {
    /// Whether `app` has an errands layer: sends it a request with a method of its own
    /// (`ERRANDS-PROBE`, which no CORS layer takes for a preflight) for a path no application
    /// serves, so it reaches the fallback, or a method-not-allowed answer, and no handler.
    pub(crate) async fn finds_layer(app: &axum::Router) -> bool {
        use tower::ServiceExt;
        let probe = Probe::default();
        let mut request = Request::new(Body::empty());
        *request.method_mut() =
            http::Method::from_bytes(b"ERRANDS-PROBE").expect("a valid method token");
        *request.uri_mut() = http::Uri::from_static("/.well-known/errands-probe");
        request.extensions_mut().insert(probe.clone());
        let _ = app.clone().oneshot(request).await;
        probe.0.load(std::sync::atomic::Ordering::Relaxed)
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
