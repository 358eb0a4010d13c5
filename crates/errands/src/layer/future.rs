//! [`ResponseFuture`]: runs the inner service, then the error pipeline, and releases the
//! request's `after_route` batch.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use pin_project_lite::pin_project;

use super::X_REQUEST_ID;
use super::body::{CompletionBody, RequestGuard};
use super::outer::Handoff;
use crate::errors::{self, Pipeline};
use crate::report::{ErrorReport, Origin};
use crate::task::{BoxError, SkipReason};

pin_project! {
    /// The response future of [`ErrandsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RequestGuard>,
        // `None` when an outer errands layer owns the request.
        pipeline: Option<Arc<Pipeline>>,
        span: tracing::Span,
        // Set under `Errands::serve`: where an unfinished request goes when this future is
        // dropped, for the outer guard to finish.
        handoff: Option<Arc<Handoff>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let (Some(guard), Some(handoff)) = (this.guard.take(), this.handoff.as_ref()) {
                handoff.park(guard);
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        inner: F,
        guard: RequestGuard,
        pipeline: Arc<Pipeline>,
        span: tracing::Span,
        handoff: Option<Arc<Handoff>>,
    ) -> Self {
        ResponseFuture {
            inner,
            guard: Some(guard),
            pipeline: Some(pipeline),
            span,
            handoff,
        }
    }

    /// Passes the request through: an outer errands layer already owns it.
    pub(super) fn nested(inner: F) -> Self {
        ResponseFuture {
            inner,
            guard: None,
            pipeline: None,
            span: tracing::Span::none(),
            handoff: None,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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
        let Some(pipeline) = this.pipeline.as_deref() else {
            // A panic is caught here, closest to the handler, and travels to the outer layer
            // as a response: layers in between (tower-http's `CatchPanicLayer`) never see it.
            return match crate::logs::catch(|| this.inner.poll(cx)) {
                Ok(polled) => polled.map(|result| result.map(|r| r.map(Body::new))),
                Err(panic) => Poll::Ready(Ok(errors::carry_panic(panic))),
            };
        };
        let _entered = this.span.enter();
        let polled = crate::logs::catch(|| this.inner.poll(cx));
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
        let result = match result {
            Ok(Ok(response)) => match errors::carried_panic(&response) {
                // Headers that layers in between added (CORS, say) stay.
                Some(message) => Err((message, response.into_parts().0.headers)),
                None => Ok(Ok(response)),
            },
            Ok(Err(error)) => Ok(Err(error)),
            Err(panic) => Err((crate::task::panic_message(panic), http::HeaderMap::new())),
        };
        match result {
            Ok(Ok(response)) => Poll::Ready(Ok(complete(pipeline, response, guard))),
            Ok(Err(error)) => {
                // The service failed without a response; the server will close the connection.
                scope.rt().report(
                    ErrorReport::new(Origin::Handler)
                        .message("the inner service failed without a response")
                        .request(scope.info()),
                );
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                scope.route_finished(status, Some(SkipReason::ErrorStatus(status)));
                drop(guard);
                Poll::Ready(Err(error))
            }
            Err((message, headers)) => {
                let response = errors::respond_to_panic(pipeline, scope, message, &headers);
                scope.route_finished(response.status(), Some(SkipReason::HandlerPanicked));
                Poll::Ready(Ok(finish(response, guard)))
            }
        }
    }
}

/// Runs the error pipeline on `response`, tells the scope the final status (releasing or
/// skipping the `after_route` batch), and hands the response to the server.
pub(super) fn complete<B>(
    pipeline: &Pipeline,
    response: Response<B>,
    guard: RequestGuard,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let scope = &guard.scope;
    // Error mappers may attach tasks here: the batch is still open.
    let response = errors::respond(pipeline, response, scope);
    let status = response.status();
    let skip = (status.as_u16() >= 400).then_some(SkipReason::ErrorStatus(status));
    scope.route_finished(status, skip);
    finish(response, guard)
}

fn finish(mut response: Response<Body>, guard: RequestGuard) -> Response<Body> {
    response
        .headers_mut()
        .insert(X_REQUEST_ID, guard.scope.info().id.header_value());
    response.map(|body| Body::new(CompletionBody::new(body, guard)))
}
