//! The outer guard [`Errands::serve`](crate::Errands::serve) puts around the application.
//!
//! A layer outside the application's errands layer may answer by itself: tower-http's
//! `TimeoutLayer` drops the errands layer's future and answers 408; `RequestBodyLimitLayer`
//! answers 413 before the errands layer runs. The guard finishes what the errands layer could
//! not: a request whose errands future was dropped unfinished is parked in its [`Handoff`],
//! and the guard completes it with the response that was sent (rendered, reported once, its
//! tasks skipped for that status — not for a client that never left); an error response for
//! a request no errands layer saw gets a scope of its own. Requests the errands layer
//! finished, and successful responses of routes outside any errands layer, pass untouched.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::body::RequestGuard;
use super::future::complete;
use crate::errors::Pipeline;
use crate::runtime::Runtime;
use crate::task::BoxError;

/// What became of one request in the application's errands layer.
#[derive(Default)]
pub(crate) struct Handoff(Mutex<Stage>);

#[derive(Default)]
enum Stage {
    /// No errands layer has seen the request.
    #[default]
    Unseen,
    /// An errands layer owns the request.
    Entered,
    /// The errands layer's future was dropped before the handler completed.
    Parked(RequestGuard),
}

impl Handoff {
    pub(super) fn entered(&self) {
        *self.stage() = Stage::Entered;
    }

    pub(super) fn park(&self, guard: RequestGuard) {
        *self.stage() = Stage::Parked(guard);
    }

    fn take(&self) -> Stage {
        std::mem::take(&mut *self.stage())
    }

    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The layer of the outer guard.
#[derive(Clone)]
pub(crate) struct OuterLayer {
    rt: Arc<Runtime>,
    pipeline: Arc<Pipeline>,
}

impl OuterLayer {
    pub(crate) fn new(rt: Arc<Runtime>, pipeline: Arc<Pipeline>) -> Self {
        OuterLayer { rt, pipeline }
    }
}

impl<S> Layer<S> for OuterLayer {
    type Service = Outer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Outer {
            inner,
            rt: self.rt.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The service of the outer guard.
#[derive(Clone)]
pub(crate) struct Outer<S> {
    inner: S,
    rt: Arc<Runtime>,
    pipeline: Arc<Pipeline>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Outer<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = OuterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let handoff = Arc::new(Handoff::default());
        request.extensions_mut().insert(handoff.clone());
        // Kept for a request no errands layer sees: its method, route and id header.
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        *head.headers_mut() = request.headers().clone();
        if let Some(path) = request.extensions().get::<axum::extract::MatchedPath>() {
            head.extensions_mut().insert(path.clone());
        }
        OuterFuture {
            inner: self.inner.call(request),
            handoff,
            head: Some(head),
            rt: self.rt.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

pin_project! {
    /// The response future of the outer guard.
    pub(crate) struct OuterFuture<F> {
        #[pin]
        inner: F,
        handoff: Arc<Handoff>,
        head: Option<Request<()>>,
        rt: Arc<Runtime>,
        pipeline: Arc<Pipeline>,
    }
}

impl<F, ResBody, E> Future for OuterFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match std::task::ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let response = match this.handoff.take() {
            Stage::Entered => response.map(Body::new),
            Stage::Parked(guard) => complete(this.pipeline, response, guard),
            Stage::Unseen if response.status().as_u16() < 400 => response.map(Body::new),
            Stage::Unseen => {
                let mut head = this.head.take().expect("polled after completion");
                let (guard, _span) = super::open(this.rt, &mut head);
                complete(this.pipeline, response, guard)
            }
        };
        Poll::Ready(Ok(response))
    }
}
