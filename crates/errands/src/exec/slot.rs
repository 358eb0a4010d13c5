//! Slots: a task runs only while it holds one, so at most `max_running` tasks (blocking work:
//! `max_blocking`) run at once.
//!
//! A slot is a permit of a semaphore, taken and forgotten, then given back with
//! `add_permits`: the task record, which holds the runtime anyway, gives it back, so a slot
//! costs no reference count of its own. Only work that outlives its record (a blocking
//! closure) keeps a [`HeldSlot`].

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Takes a slot if one is free.
pub(crate) fn try_take(slots: &Semaphore) -> bool {
    slots.try_acquire().map(SemaphorePermit::forget).is_ok()
}

/// Waits in line for a slot; `false` only if the semaphore was closed (it never is).
pub(crate) async fn take(slots: &Semaphore) -> bool {
    slots.acquire().await.map(SemaphorePermit::forget).is_ok()
}

/// Gives a slot taken with [`try_take`] or [`take`] back.
pub(crate) fn give_back(slots: &Semaphore) {
    slots.add_permits(1);
}

/// A slot of the semaphore that `slots` finds in its owner `T`, held apart from its task's
/// record; given back when dropped.
pub(crate) struct HeldSlot<T> {
    owner: Arc<T>,
    slots: fn(&T) -> &Semaphore,
}

impl<T> HeldSlot<T> {
    /// Takes over a slot already taken.
    pub(crate) fn new(owner: &Arc<T>, slots: fn(&T) -> &Semaphore) -> Self {
        HeldSlot {
            owner: owner.clone(),
            slots,
        }
    }
}

impl<T> Drop for HeldSlot<T> {
    fn drop(&mut self) {
        give_back((self.slots)(&self.owner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_taken_once_and_given_back() {
        let slots = Semaphore::new(1);
        assert!(try_take(&slots));
        assert!(!try_take(&slots), "the only slot is taken");
        give_back(&slots);
        assert!(try_take(&slots), "given back, it can be taken again");
    }

    #[test]
    fn a_held_slot_is_given_back_when_dropped() {
        let owner = Arc::new(Semaphore::new(1));
        assert!(try_take(&owner));
        let held = HeldSlot::new(&owner, |s| s);
        assert_eq!(owner.available_permits(), 0);
        drop(held);
        assert_eq!(owner.available_permits(), 1);
    }
}
