//! [`TimedBody`]: a request body that fails when the client stops sending it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::request::BodyTimedOut;

pin_project! {
    /// A request body with an inactivity timeout: each wait for the next frame may last at
    /// most `limit`.
    pub(super) struct TimedBody<B> {
        #[pin]
        inner: B,
        limit: Duration,
        #[pin]
        timer: Sleep,
        waiting: bool,
    }
}

impl<B> TimedBody<B> {
    pub(super) fn new(inner: B, limit: Duration) -> Self {
        TimedBody {
            inner,
            limit,
            timer: tokio::time::sleep(limit),
            waiting: false,
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
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if !*this.waiting {
            *this.waiting = true;
            this.timer.as_mut().reset(Instant::now() + *this.limit);
        }
        ready!(this.timer.poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(*this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
