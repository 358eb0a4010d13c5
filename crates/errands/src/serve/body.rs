//! [`TimedBody`]: a request body that fails when the client stops sending it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::request::BodyTimedOut;

pin_project! {
    /// A request body with an inactivity timeout: each wait for the next frame may last at
    /// most `limit`. The timer exists only once the body had to wait: a body that arrives
    /// with its head (most do) never costs one.
    pub(super) struct TimedBody<B> {
        #[pin]
        inner: B,
        limit: Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> TimedBody<B> {
    pub(super) fn new(inner: B, limit: Duration) -> Self {
        TimedBody {
            inner,
            limit,
            timer: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::task::BoxError>,
{
    type Data = Bytes;
    type Error = crate::task::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            // A frame came: the next wait starts afresh.
            *this.timer = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = *this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
