//! Slots: a task runs only while it holds one, so at most `max_running` tasks (blocking work:
//! `max_blocking`) run at once.
//!
//! A slot is a permit of one of the runtime's semaphores, taken and forgotten, then given back
//! with `add_permits`: the task record, which holds the runtime anyway, gives it back, so a
//! slot costs no reference count of its own. Only work that outlives its record (a blocking
//! closure) keeps a [`HeldSlot`].

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::runtime::Inner;

/// Which limit a slot counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slots {
    /// `max_running`: async tasks.
    Running,
    /// `max_blocking`: blocking tasks.
    Blocking,
}

impl Slots {
    fn semaphore(self, rt: &Inner) -> &Semaphore {
        match self {
            Slots::Running => &rt.slots,
            Slots::Blocking => &rt.blocking_slots,
        }
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_take(self, rt: &Inner) -> bool {
        self.semaphore(rt)
            .try_acquire()
            .map(SemaphorePermit::forget)
            .is_ok()
    }

    /// Waits in line for a slot; `false` only if the semaphore was closed (it never is).
    pub(crate) async fn take(self, rt: &Inner) -> bool {
        self.semaphore(rt)
            .acquire()
            .await
            .map(SemaphorePermit::forget)
            .is_ok()
    }

    /// Gives a slot taken with [`try_take`](Slots::try_take) or [`take`](Slots::take) back.
    pub(crate) fn give_back(self, rt: &Inner) {
        self.semaphore(rt).add_permits(1);
    }
}

/// A slot held apart from its task's record; given back when dropped.
pub(crate) struct HeldSlot {
    rt: Arc<Inner>,
    slots: Slots,
}

impl HeldSlot {
    pub(crate) fn new(rt: &Arc<Inner>, slots: Slots) -> Self {
        HeldSlot {
            rt: rt.clone(),
            slots,
        }
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.slots.give_back(&self.rt);
    }
}
