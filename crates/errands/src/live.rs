//! [`Live`]: a count of what is in flight — requests, started tasks — that shutdown and
//! `idle()` can wait on to reach zero.
//!
//! Unlike a `TaskTracker` token, a member costs no reference count of its own: the request
//! guard and the task record already hold the runtime, and call [`Live::exit`] when dropped.
//! Members that outlive those (a blocking closure, a WebSocket connection) hold a [`Member`].

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

use crate::runtime::Inner;

#[derive(Default)]
pub(crate) struct Live {
    count: AtomicUsize,
    /// Callers of `wait` right now: reaching zero notifies only if there are any, since
    /// `Notify::notify_waiters` takes a lock even when nobody waits.
    waiters: AtomicUsize,
    zero: Notify,
}

impl Live {
    /// One more in flight. Sequentially consistent, like the runtime's `closed` flag: a task
    /// that enters and then finds the runtime open is seen by a shutdown that closes it and
    /// then waits.
    pub(crate) fn enter(&self) {
        self.count.fetch_add(1, SeqCst);
    }

    /// One fewer in flight; wakes the waiters when none is left.
    pub(crate) fn exit(&self) {
        // Sequentially consistent with `wait`: either this sees the waiter, or the waiter,
        // which counts itself before it checks, sees the count at zero.
        if self.count.fetch_sub(1, SeqCst) == 1 && self.waiters.load(SeqCst) > 0 {
            self.zero.notify_waiters();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(SeqCst)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once nothing is in flight; at once if nothing is.
    pub(crate) async fn wait(&self) {
        let _waiting = Waiting::new(&self.waiters);
        loop {
            let mut zero = pin!(self.zero.notified());
            // Registered before the check, so an `exit` right after it is not missed.
            zero.as_mut().enable();
            if self.is_empty() {
                return;
            }
            zero.await;
        }
    }
}

/// Counts one caller of [`Live::wait`] for as long as it waits (or is dropped, cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Keeps one member in a runtime's [`Live`] count (its tasks or its requests) until dropped.
pub(crate) struct Member {
    rt: Arc<Inner>,
    live: fn(&Inner) -> &Live,
}

impl Member {
    /// Counts a member of `rt`'s started tasks.
    pub(crate) fn task(rt: &Arc<Inner>) -> Self {
        Member::new(rt, |rt| &rt.tasks)
    }

    /// Counts a member of `rt`'s requests in flight.
    #[cfg(feature = "ws")]
    pub(crate) fn request(rt: &Arc<Inner>) -> Self {
        Member::new(rt, |rt| &rt.requests)
    }

    fn new(rt: &Arc<Inner>, live: fn(&Inner) -> &Live) -> Self {
        live(rt).enter();
        Member {
            rt: rt.clone(),
            live,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        (self.live)(&self.rt).exit();
    }
}
