//! The per-request scope: where `after_route` and `after_response` tasks wait for their moment.
//!
//! A scope moves through three phases, driven by the errands layer:
//!
//! 1. `Handling` — the handler runs. Immediate tasks start at once; `after_*` tasks queue.
//! 2. `Responding` — the handler returned a response (or panicked). The `after_route` batch is
//!    released: started if the status is below 400, otherwise skipped (but `always` tasks start).
//!    With an error status the `after_response` tasks that are not `always` are skipped now.
//! 3. `Done` — the response body was dropped by the server, whether completely sent or not, or
//!    the response future was dropped before the handler completed (client gone). The
//!    `after_response` batch is released. From here on, the scope behaves like no request:
//!    every task starts at once, so a handle that outlives its request never drops a task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::extract::MatchedPath;
use http::{Extensions, Method, StatusCode};
use tokio_util::task::TaskTracker;

use crate::runtime::Inner;
use crate::task::{Pending, SkipReason, TaskId, TaskInfo, Timing};

use super::RequestId;
use super::batch::Batch;

/// Whether a response body reached the server completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The body reached its end: every byte was handed to the server.
    Complete,
    /// The body was dropped before its end, typically because the client disconnected.
    Interrupted,
}

enum Phase {
    Handling,
    Responding(Option<SkipReason>),
    Done,
}

struct State {
    phase: Phase,
    after_route: Batch,
    after_response: Batch,
}

/// What `errands::testing` needs to wait for exactly this request's work: kept only for test
/// requests, so production requests pay for none of it.
pub(crate) struct Watch {
    /// Tracks the request itself (until `Done`) and each of its tasks; kept closed so that
    /// `wait()` returns whenever the count reaches zero.
    pub(crate) tracker: TaskTracker,
    /// Tasks of this request that are not terminal yet, for naming them in `settle()`.
    live: Mutex<HashMap<TaskId, TaskInfo>>,
}

pub(crate) struct RequestScope {
    pub(crate) rt: Arc<Inner>,
    pub(crate) id: RequestId,
    pub(crate) method: Method,
    /// The route, when the layer runs inside the router (`Router::layer`).
    route: Option<MatchedPath>,
    /// The route learned later from the extractors, when the layer wraps the whole router.
    late_route: OnceLock<MatchedPath>,
    /// The final status, once the handler has returned; 0 until then.
    status: AtomicU16,
    /// The response's [`Delivery`] (`1 + its index`), once the response is over; 0 until then.
    delivery: AtomicU8,
    pub(crate) watch: Option<Box<Watch>>,
    state: Mutex<State>,
}

enum Verdict {
    Start,
    Queue(Timing),
    Skip(SkipReason),
}

impl RequestScope {
    /// A scope for a request whose route is known already when it is matched inside the
    /// router (the layer added with `Router::layer`), or learned later by `learn_route`.
    pub(crate) fn new(
        rt: Arc<Inner>,
        id: RequestId,
        method: Method,
        route: Option<&MatchedPath>,
        watched: bool,
    ) -> Self {
        let watch = watched.then(|| {
            let tracker = TaskTracker::new();
            tracker.close();
            Box::new(Watch {
                tracker,
                live: Mutex::new(HashMap::new()),
            })
        });
        RequestScope {
            rt,
            id,
            method,
            route: route.cloned(),
            late_route: OnceLock::new(),
            status: AtomicU16::new(0),
            delivery: AtomicU8::new(0),
            watch,
            state: Mutex::new(State {
                phase: Phase::Handling,
                after_route: Batch::default(),
                after_response: Batch::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn route(&self) -> Option<&str> {
        self.route
            .as_ref()
            .or_else(|| self.late_route.get())
            .map(MatchedPath::as_str)
    }

    /// The final status of the response, once the handler has returned it.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        StatusCode::from_u16(self.status.load(Ordering::Acquire)).ok()
    }

    /// Whether the response body reached the server completely, once the response is over.
    pub(crate) fn delivery(&self) -> Option<Delivery> {
        match self.delivery.load(Ordering::Acquire) {
            1 => Some(Delivery::Complete),
            2 => Some(Delivery::Interrupted),
            _ => None,
        }
    }

    /// Learns the route from a request's extensions, unless it is known already.
    pub(crate) fn learn_route(&self, extensions: &Extensions) {
        if self.route().is_none()
            && let Some(route) = extensions.get::<MatchedPath>()
        {
            let _ = self.late_route.set(route.clone());
        }
    }

    /// Takes a newly scheduled task of this request and starts, queues or skips it.
    pub(crate) fn admit<P: Pending + 'static>(&self, task: P) {
        if let Some(watch) = &self.watch {
            let mut live = watch.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.insert(task.info().id(), task.info().clone());
        }
        let mut state = self.state();
        let info = task.info();
        let verdict = match (&state.phase, info.timing()) {
            (Phase::Done, _) | (_, Timing::Immediate) => Verdict::Start,
            (Phase::Handling, timing) => Verdict::Queue(timing),
            (Phase::Responding(None), Timing::AfterRoute) => Verdict::Start,
            (Phase::Responding(None), timing) => Verdict::Queue(timing),
            (Phase::Responding(Some(_)), Timing::AfterRoute) if info.is_always() => Verdict::Start,
            (Phase::Responding(Some(_)), timing) if info.is_always() => Verdict::Queue(timing),
            (Phase::Responding(Some(reason)), _) => Verdict::Skip(*reason),
        };
        match verdict {
            Verdict::Queue(timing) => {
                self.rt.counters.pending_added();
                let batch = match timing {
                    Timing::AfterRoute => &mut state.after_route,
                    _ => &mut state.after_response,
                };
                batch.push(Box::new(task));
            }
            Verdict::Start => {
                drop(state);
                task.start();
            }
            Verdict::Skip(reason) => {
                drop(state);
                task.skip(reason);
            }
        }
    }

    /// A task of this request reached its terminal state.
    pub(crate) fn task_ended(&self, id: TaskId) {
        if let Some(watch) = &self.watch {
            watch
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }

    /// Names of the tasks of this request that are not terminal yet, in the order scheduled.
    pub(crate) fn unfinished(&self) -> Vec<String> {
        let Some(watch) = &self.watch else {
            return Vec::new();
        };
        let live = watch.live.lock().unwrap_or_else(PoisonError::into_inner);
        let mut live: Vec<&TaskInfo> = live.values().collect();
        live.sort_by_key(|t| t.id());
        live.iter()
            .map(|t| format!("{} (id {}, {})", t.name(), t.id(), t.timing()))
            .collect()
    }

    /// The handler returned a response with `status`, or panicked (`skip` says why tasks skip).
    pub(crate) fn route_finished(&self, status: StatusCode, skip: Option<SkipReason>) {
        self.status.store(status.as_u16(), Ordering::Release);
        let (route_batch, skipped) = {
            let mut state = self.state();
            state.phase = Phase::Responding(skip);
            let route_batch = std::mem::take(&mut state.after_route);
            let skipped = match skip {
                Some(_) => {
                    let (keep, skipped) = std::mem::take(&mut state.after_response)
                        .into_iter()
                        .partition(|t| t.info().is_always());
                    state.after_response = keep;
                    skipped
                }
                None => Batch::default(),
            };
            (route_batch, skipped)
        };
        self.release(route_batch, skip);
        self.release(skipped, skip);
    }

    /// The response is over: its body was dropped (`delivery` says whether it was complete),
    /// or the handler was dropped before it completed (`delivery` is `None`).
    pub(crate) fn response_finished(&self, delivery: Option<Delivery>) {
        let (reason, route_batch, response_batch) = {
            let mut state = self.state();
            let reason = match std::mem::replace(&mut state.phase, Phase::Done) {
                Phase::Handling => Some(SkipReason::ClientDisconnected),
                Phase::Responding(reason) => reason,
                Phase::Done => return,
            };
            let delivery = match delivery {
                None => 0,
                Some(Delivery::Complete) => 1,
                Some(Delivery::Interrupted) => 2,
            };
            self.delivery.store(delivery, Ordering::Release);
            (
                reason,
                std::mem::take(&mut state.after_route),
                std::mem::take(&mut state.after_response),
            )
        };
        self.release(route_batch, reason);
        self.release(response_batch, reason);
    }

    /// Starts the tasks of a batch, or skips them with `reason` (`always` tasks still start).
    /// A task due after shutdown closed the runtime is skipped by `start` itself.
    fn release(&self, batch: Batch, reason: Option<SkipReason>) {
        if batch.is_empty() {
            return;
        }
        for task in batch {
            self.rt.counters.pending_removed();
            match reason {
                None => task.start_boxed(),
                Some(_) if task.info().is_always() => task.start_boxed(),
                Some(reason) => task.skip_boxed(reason),
            }
        }
    }
}
