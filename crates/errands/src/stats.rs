//! Task accounting: the counters behind [`Errands::stats`](crate::Errands::stats).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::task::Outcome;

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

#[derive(Default)]
pub(crate) struct Counters {
    scheduled: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    aborted: AtomicU64,
    skipped: AtomicU64,
    rejected: AtomicU64,
    pending: AtomicU64,
    queued: AtomicU64,
    running: AtomicU64,
}

impl Counters {
    pub(crate) fn scheduled(&self) {
        self.scheduled.fetch_add(1, Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
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

    /// A task got a slot as it started, without waiting in line.
    pub(crate) fn started_running(&self) {
        self.running.fetch_add(1, Relaxed);
    }

    /// A queued task got its slot.
    pub(crate) fn now_running(&self) {
        self.running.fetch_add(1, Relaxed);
        self.queued.fetch_sub(1, Relaxed);
    }

    /// A task reached `outcome`, from running or (when `running` is false) from the queue;
    /// skipped tasks were never queued.
    pub(crate) fn finished(&self, outcome: Outcome, running: bool) {
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
        match (outcome, running) {
            (Outcome::Skipped, _) => {}
            (_, true) => {
                self.running.fetch_sub(1, Relaxed);
            }
            (_, false) => {
                self.queued.fetch_sub(1, Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self, requests_in_flight: usize) -> Stats {
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
            pending: self.pending.load(Relaxed),
            queued: self.queued.load(Relaxed),
            running: self.running.load(Relaxed),
            requests_in_flight: requests_in_flight as u64,
        }
    }
}
