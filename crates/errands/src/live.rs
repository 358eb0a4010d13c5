//! [`Live`]: a count of what is in flight — requests, started tasks — that shutdown and
//! `idle()` can wait on to reach zero.
//!
//! Unlike a `TaskTracker` token, a member costs no reference count of its own: whoever counts
//! itself in already holds the owner of the count, and calls [`Live::exit`] when dropped.
//! Members that outlive such a holder (a blocking closure, a WebSocket connection) hold a
//! [`Member`].

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

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

/// Keeps one member in a [`Live`] count of its owner `T` (the runtime's tasks or requests)
/// until dropped, keeping the owner alive as long.
pub(crate) struct Member<T> {
    owner: Arc<T>,
    live: fn(&T) -> &Live,
}

impl<T> Member<T> {
    /// Counts a member of the `Live` count that `live` finds in `owner`.
    pub(crate) fn new(owner: &Arc<T>, live: fn(&T) -> &Live) -> Self {
        live(owner).enter();
        Member {
            owner: owner.clone(),
            live,
        }
    }
}

impl<T> Drop for Member<T> {
    fn drop(&mut self) {
        (self.live)(&self.owner).exit();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn poll<F: Future>(future: std::pin::Pin<&mut F>, waker: &Arc<Counting>) -> Poll<F::Output> {
        let waker = Waker::from(waker.clone());
        future.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn waiting_on_nothing_in_flight_resolves_at_once() {
        let live = Live::default();
        let waker = Arc::new(Counting::default());
        assert!(poll(pin!(live.wait()), &waker).is_ready());
    }

    #[test]
    fn the_last_exit_wakes_a_waiter_registered_before_it() {
        let live = Live::default();
        live.enter();
        live.enter();
        let waker = Arc::new(Counting::default());
        let mut wait = pin!(live.wait());
        assert!(poll(wait.as_mut(), &waker).is_pending());
        live.exit();
        assert_eq!(waker.0.load(SeqCst), 0, "one is still in flight");
        live.exit();
        assert_eq!(waker.0.load(SeqCst), 1, "the last exit wakes the waiter");
        assert!(poll(wait.as_mut(), &waker).is_ready());
    }

    #[test]
    fn an_exit_between_the_waiters_polls_is_not_missed() {
        let live = Live::default();
        live.enter();
        let waker = Arc::new(Counting::default());
        let mut wait = pin!(live.wait());
        assert!(poll(wait.as_mut(), &waker).is_pending());
        // Exit, then enter again, before the waiter is polled: it was woken, and on its next
        // poll it waits for the new member.
        live.exit();
        live.enter();
        assert_eq!(waker.0.load(SeqCst), 1);
        assert!(poll(wait.as_mut(), &waker).is_pending());
        live.exit();
        assert!(poll(wait.as_mut(), &waker).is_ready());
    }

    #[test]
    fn a_dropped_waiter_stops_counting_as_one() {
        let live = Live::default();
        live.enter();
        let waker = Arc::new(Counting::default());
        {
            let wait = pin!(live.wait());
            assert!(poll(wait, &waker).is_pending());
            assert_eq!(live.waiters.load(SeqCst), 1);
        }
        assert_eq!(
            live.waiters.load(SeqCst),
            0,
            "a cancelled wait leaves no waiter behind"
        );
        live.exit();
        assert_eq!(waker.0.load(SeqCst), 0, "nobody waits, so nobody is woken");
    }

    #[test]
    fn a_member_counts_until_dropped() {
        struct Owner(Live);
        let owner = Arc::new(Owner(Live::default()));
        let member = Member::new(&owner, |o| &o.0);
        assert_eq!(owner.0.len(), 1);
        drop(member);
        assert!(owner.0.is_empty());
    }
}
