//! The response body wrapper that tells when the body was completely handed to the server.
//!
//! hyper 1.x often drops a body without polling it to the end: a body that is end-of-stream
//! from the start (empty) is never polled, and after a data frame that leaves
//! `is_end_stream()` true (a single-frame JSON body) it does not poll again. So the body
//! counts as complete when it was end-of-stream when wrapped, when `poll_frame` returned
//! `None` or trailers, or when a data frame left `is_end_stream()` true; the request's
//! `after_response` moment comes when the body is dropped, complete or not.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::lifecycle::Event;
use crate::report::{ErrorReport, Origin};
use crate::request::Delivery;
use crate::scope::RequestScope;
use crate::task::BoxError;

/// Keeps a request in flight until its response is over, then releases its batches.
///
/// Held by the response future while the handler runs, then by the response body. Dropping it
/// with no delivery means the handler never completed.
pub(crate) struct RequestGuard {
    pub(crate) scope: Arc<RequestScope>,
    delivery: Option<Delivery>,
    watched: Option<TaskTrackerToken>,
}

impl RequestGuard {
    pub(crate) fn new(scope: Arc<RequestScope>) -> Self {
        let rt = scope.rt();
        rt.requests().enter();
        rt.emit(Event::RequestStarted(scope.info()));
        RequestGuard {
            watched: scope.watch().map(|w| w.request()),
            scope,
            delivery: None,
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let (scope, rt) = (&self.scope, self.scope.rt());
        scope.response_finished(self.delivery);
        rt.requests().exit();
        drop(self.watched.take());
    }
}

pin_project! {
    /// A response body that releases its request's `after_response` tasks when dropped.
    pub(crate) struct CompletionBody<B> {
        #[pin]
        inner: B,
        guard: RequestGuard,
        // Set after the inner body panicked: it is never polled again.
        broken: bool,
    }
}

impl<B: Body> CompletionBody<B> {
    pub(crate) fn new(inner: B, mut guard: RequestGuard) -> Self {
        guard.delivery = Some(if inner.is_end_stream() {
            Delivery::Complete
        } else {
            Delivery::Interrupted
        });
        CompletionBody {
            inner,
            guard,
            broken: false,
        }
    }
}

impl<B> Body for CompletionBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.broken {
            return Poll::Ready(None);
        }
        let polled = crate::logs::catch(|| this.inner.as_mut().poll_frame(cx));
        let frame = match polled {
            Ok(frame) => frame,
            Err(panic) => {
                *this.broken = true;
                return Poll::Ready(Some(Err(body_panicked(&this.guard.scope, panic))));
            }
        };
        let complete = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || this.inner.is_end_stream(),
            _ => false,
        };
        if complete {
            this.guard.delivery = Some(Delivery::Complete);
        }
        frame.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.broken || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reports a panic raised while producing the body; the connection is then closed by the
/// server, since the status line is already sent.
fn body_panicked(scope: &RequestScope, panic: Box<dyn std::any::Any + Send>) -> BoxError {
    scope.rt().report(
        ErrorReport::new(Origin::Handler)
            .message("response body panicked while streaming")
            .panic(panic)
            .request(scope.info()),
    );
    "response body panicked".into()
}
