//! Task accounting: the counters behind [`Errands::stats`](crate::Errands::stats).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use serde::Serialize;

use crate::task::{Outcome, TaskId};

/// A snapshot of the runtime's task counters.
///
/// Every scheduled task ends in exactly one terminal state, so at any quiet moment
/// (for example after [`Errands::idle`](crate::Errands::idle)):
///
/// `scheduled = succeeded + failed + panicked + timed_out + cancelled + aborted + skipped + in_flight`
///
/// where `in_flight = pending + queued + running`. `rejected` counts schedule calls that returned an
/// error; those tasks never count as scheduled. The counters are read one by one, so a
/// snapshot taken while tasks change state may be off by the tasks in motion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks accepted by `schedule`.
    pub scheduled: u64,
    /// Tasks that returned `()` or `Ok`.
    pub succeeded: u64,
    /// Tasks that returned `Err`.
    pub failed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks that ran past their timeout.
    pub timed_out: u64,
    /// Unshielded tasks cancelled by shutdown.
    pub cancelled: u64,
    /// Tasks still running at the shutdown deadline, or when a second signal came.
    pub aborted: u64,
    /// `after_*` tasks skipped because of how their request ended.
    pub skipped: u64,
    /// Schedule calls that returned an error.
    pub rejected: u64,
    /// Tasks waiting for their request's `after_route` or `after_response` moment.
    pub pending: u64,
    /// Tasks due to run, waiting for a free slot (`max_running`, or `max_blocking`).
    pub queued: u64,
    /// Tasks holding a slot and not yet terminal (including retries and `on_error`).
    pub running: u64,
    /// Requests inside the errands layer whose response is not over, and open
    /// [`ws::Hub`](crate::ws) connections.
    pub requests_in_flight: u64,
    /// Connections [`Errands::serve`](crate::Errands::serve) answered or closed by itself
    /// before a request existed: a malformed request (`400`), a head too large (`431`), or a
    /// head not received within the header read timeout. Those answers cannot carry the
    /// error schema or a request id.
    pub rejected_by_server: u64,
}

impl Stats {
    /// Tasks not terminal yet: `pending + queued + running`.
    pub fn in_flight(&self) -> u64 {
        self.pending + self.queued + self.running
    }

    /// Tasks in a terminal state.
    pub fn terminal(&self) -> u64 {
        self.succeeded
            + self.failed
            + self.panicked
            + self.timed_out
            + self.cancelled
            + self.aborted
            + self.skipped
    }

    /// Whether the accounting invariant holds: `scheduled = terminal + in_flight`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let errands = errands::Errands::new();
    /// errands.tasks().schedule(async {}).unwrap();
    /// errands.idle().await;
    /// let stats = errands.stats();
    /// assert!(stats.is_balanced());
    /// assert_eq!((stats.scheduled, stats.succeeded), (1, 1));
    /// # }
    /// ```
    pub fn is_balanced(&self) -> bool {
        self.scheduled == self.terminal() + self.in_flight()
    }
}

/// The live counters. Only what cannot be derived is counted: the tasks scheduled are the ids
/// handed out, and the running ones are the unfinished ones neither pending nor queued.
#[derive(Default)]
pub(crate) struct Counters {
    /// Tasks admitted so far; also the id of the latest one.
    scheduled: AtomicU64,
    /// Tasks admitted and not terminal yet: `pending + queued + running`.
    unfinished: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    aborted: AtomicU64,
    skipped: AtomicU64,
    rejected: AtomicU64,
    rejected_by_server: AtomicU64,
    pending: AtomicU64,
    queued: AtomicU64,
}

impl Counters {
    /// Counts one more task, admitted by its group, and hands out its id.
    pub(crate) fn admit(&self) -> TaskId {
        self.unfinished.fetch_add(1, AcqRel);
        TaskId(self.scheduled.fetch_add(1, Relaxed) + 1)
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected_by_server(&self) {
        self.rejected_by_server.fetch_add(1, Relaxed);
    }

    pub(crate) fn pending_added(&self) {
        self.pending.fetch_add(1, Relaxed);
    }

    pub(crate) fn pending_removed(&self) {
        self.pending.fetch_sub(1, Relaxed);
    }

    /// A task is due and waits for a slot.
    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Relaxed);
    }

    /// A queued task got its slot.
    pub(crate) fn dequeued(&self) {
        self.queued.fetch_sub(1, Relaxed);
    }

    /// A task reached `outcome`: from running, from the queue (`queued`), or — skipped — from
    /// pending.
    pub(crate) fn finished(&self, outcome: Outcome, queued: bool) {
        let counter = match outcome {
            Outcome::Succeeded => &self.succeeded,
            Outcome::Failed => &self.failed,
            Outcome::Panicked => &self.panicked,
            Outcome::TimedOut => &self.timed_out,
            Outcome::Cancelled => &self.cancelled,
            Outcome::Aborted => &self.aborted,
            Outcome::Skipped => &self.skipped,
        };
        counter.fetch_add(1, Relaxed);
        if queued {
            self.queued.fetch_sub(1, Relaxed);
        }
        self.unfinished.fetch_sub(1, AcqRel);
    }

    pub(crate) fn snapshot(&self, requests_in_flight: usize) -> Stats {
        let (pending, queued) = (self.pending.load(Relaxed), self.queued.load(Relaxed));
        let unfinished = self.unfinished.load(Acquire);
        Stats {
            scheduled: self.scheduled.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            panicked: self.panicked.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            aborted: self.aborted.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            pending,
            queued,
            running: unfinished.saturating_sub(pending + queued),
            requests_in_flight: requests_in_flight as u64,
            rejected_by_server: self.rejected_by_server.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_handed_out_in_order() {
        let counters = Counters::default();
        let ids: Vec<u64> = (0..3).map(|_| counters.admit().as_u64()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(counters.snapshot(0).running, 3);
    }

    #[test]
    fn every_stage_is_counted_once_and_the_invariant_holds() {
        let counters = Counters::default();
        for _ in 0..3 {
            counters.admit();
        }
        counters.pending_added();
        counters.queued();
        let stats = counters.snapshot(0);
        assert_eq!((stats.pending, stats.queued, stats.running), (1, 1, 1));
        assert!(stats.is_balanced());
        counters.pending_removed();
        counters.finished(Outcome::Skipped, false);
        counters.finished(Outcome::Cancelled, true);
        counters.finished(Outcome::Failed, false);
        let stats = counters.snapshot(0);
        assert_eq!((stats.skipped, stats.cancelled, stats.failed), (1, 1, 1));
        assert_eq!(stats.in_flight(), 0);
        assert!(stats.is_balanced());
    }
}
