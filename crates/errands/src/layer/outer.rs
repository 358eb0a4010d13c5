//! The outer guard [`Errands::serve`](crate::Errands::serve) puts around the application.
//!
//! A layer outside the application's errands layer may answer by itself: tower-http's
//! `TimeoutLayer` drops the errands layer's future and answers 408; `RequestBodyLimitLayer`
//! answers 413 before the errands layer runs. The guard finishes what the errands layer could
//! not: a request whose errands future was dropped unfinished is parked in its [`Handoff`],
//! and the guard completes it with the response that was sent (rendered, reported once, its
//! tasks skipped for that status — not for a client that never left). Everything else passes
//! untouched: requests the errands layer finished, and requests no errands layer saw —
//! routes the application keeps outside it, and answers of layers outside it that never let
//! the request in (put those inside; see the semantics page).

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
use crate::task::BoxError;

/// Where the application's errands layer leaves a request its future was dropped before the
/// handler completed.
#[derive(Default)]
pub(crate) struct Handoff(Mutex<Option<RequestGuard>>);

impl Handoff {
    pub(super) fn park(&self, guard: RequestGuard) {
        *self.slot() = Some(guard);
    }

    fn take(&self) -> Option<RequestGuard> {
        self.slot().take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<RequestGuard>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The layer of the outer guard.
#[derive(Clone)]
pub(crate) struct OuterLayer {
    pipeline: Arc<Pipeline>,
}

impl OuterLayer {
    pub(crate) fn new(pipeline: Arc<Pipeline>) -> Self {
        OuterLayer { pipeline }
    }
}

impl<S> Layer<S> for OuterLayer {
    type Service = Outer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Outer {
            inner,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The service of the outer guard.
#[derive(Clone)]
pub(crate) struct Outer<S> {
    inner: S,
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
        OuterFuture {
            inner: self.inner.call(request),
            handoff,
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
        pipeline: Arc<Pipeline>,
    }

    impl<F> PinnedDrop for OuterFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // A request parked after its answer, or never answered (the client left): ended
            // here, even if something else still holds the hand-off.
            drop(this.project().handoff.take());
        }
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
            Some(parked) => complete(this.pipeline, response, parked),
            None => response.map(Body::new),
        };
        Poll::Ready(Ok(response))
    }
}
