//! Watching one request's work, for [`testing`](crate::testing): which of its tasks are not
//! terminal yet, and a wait until none is and its response is over.
//!
//! Only requests that carry a [`WatchSlot`] are watched, so production requests pay for none
//! of it: the layer fills the slot with the request's [`Watch`], the request's guard and each
//! of its tasks hold a [`Ticket`] until they are over, and the test waits on the watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use crate::request::RequestId;
use crate::task::{TaskId, TaskInfo};

/// The work of one watched request.
pub(crate) struct Watch {
    /// Tracks the request itself (until its response is over) and each of its tasks; kept
    /// closed so that `wait()` returns whenever the count reaches zero.
    tracker: TaskTracker,
    /// Tasks of the request that are not terminal yet, for naming them.
    live: Mutex<HashMap<TaskId, TaskInfo>>,
}

impl Watch {
    fn new() -> Self {
        let tracker = TaskTracker::new();
        tracker.close();
        Watch {
            tracker,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, TaskInfo>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the request itself until the token is dropped.
    pub(crate) fn request(&self) -> TaskTrackerToken {
        self.tracker.token()
    }

    /// Counts one of the request's tasks until the ticket is dropped.
    pub(crate) fn task(self: &Arc<Self>, info: &TaskInfo) -> Ticket {
        self.live().insert(info.id(), info.clone());
        Ticket {
            watch: self.clone(),
            id: info.id(),
            _token: self.tracker.token(),
        }
    }

    /// Resolves once the request's response is over and every task it started is terminal.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub(crate) async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// The tasks not terminal yet, as `name (id N, timing)`, in the order scheduled.
    pub(crate) fn unfinished(&self) -> Vec<String> {
        let live = self.live();
        let mut live: Vec<&TaskInfo> = live.values().collect();
        live.sort_by_key(|t| t.id());
        live.iter()
            .map(|t| format!("{} (id {}, {})", t.name(), t.id(), t.timing()))
            .collect()
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("unfinished", &self.unfinished())
            .finish_non_exhaustive()
    }
}

/// One task of a watched request, counted until dropped.
pub(crate) struct Ticket {
    watch: Arc<Watch>,
    id: TaskId,
    // Dropped after the task left `live` (fields drop after `drop` runs).
    _token: TaskTrackerToken,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.watch.live().remove(&self.id);
    }
}

/// Put in a request's extensions to have it watched; the layer fills it with the request's
/// id and [`Watch`].
#[derive(Clone, Default)]
pub(crate) struct WatchSlot(Arc<OnceLock<(RequestId, Arc<Watch>)>>);

impl WatchSlot {
    /// Makes the watch of the request that carries this slot.
    pub(crate) fn fill(&self, id: &RequestId) -> Arc<Watch> {
        let watch = Arc::new(Watch::new());
        let _ = self.0.set((id.clone(), watch.clone()));
        watch
    }

    /// The request's id and watch, once the layer has seen the request.
    pub(crate) fn get(&self) -> Option<&(RequestId, Arc<Watch>)> {
        self.0.get()
    }
}
