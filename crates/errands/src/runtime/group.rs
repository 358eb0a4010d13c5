//! Task groups: running and queued limits of their own, so that one group's storm cannot take
//! the capacity another's work needs.
//!
//! A runtime's tasks are partitioned into groups. The default group has the runtime's
//! `max_running` and `max_queued`; each named group (declared with
//! [`ErrandsBuilder::group`](crate::ErrandsBuilder::group), chosen per task with
//! [`TaskBuilder::group`](crate::TaskBuilder::group)) has its own, and a task counts against
//! its own group's limits only. Blocking closures share `max_blocking` whatever their group.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use tokio::sync::Semaphore;

pub(crate) use crate::task::GroupId;

/// One group's limits and the count of its unfinished tasks.
pub(crate) struct Group {
    pub(crate) name: &'static str,
    /// One permit per running (async) task of the group.
    pub(crate) slots: Semaphore,
    /// `max_running + max_queued`: how many unfinished tasks the group admits.
    cap: u64,
    unfinished: AtomicU64,
}

impl Group {
    pub(crate) fn new(name: &'static str, max_running: usize, max_queued: usize) -> Self {
        Group {
            name,
            slots: Semaphore::new(max_running),
            cap: max_running.saturating_add(max_queued) as u64,
            unfinished: AtomicU64::new(0),
        }
    }

    /// Admits one more task unless the group holds `cap` unfinished ones. The count never
    /// passes the cap, even for a moment.
    pub(crate) fn admit(&self) -> bool {
        self.unfinished
            .fetch_update(AcqRel, Acquire, |n| (n < self.cap).then_some(n + 1))
            .is_ok()
    }

    /// One of the group's tasks became terminal (or was never started).
    pub(crate) fn release(&self) {
        self.unfinished.fetch_sub(1, AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_exactly_at_the_cap_and_resumes_when_a_task_ends() {
        let group = Group::new("exports", 1, 2);
        assert!((0..3).all(|_| group.admit()));
        assert!(!group.admit(), "the fourth is refused at the cap");
        group.release();
        assert!(group.admit());
        assert!(!group.admit());
    }

    #[test]
    fn a_cap_of_zero_admits_nothing() {
        assert!(!Group::new("none", 0, 0).admit());
    }

    #[test]
    fn concurrent_admissions_never_pass_the_cap() {
        let group = Group::new("busy", 40, 60);
        let admitted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| group.admit()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
    }
}
