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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::StatusCode;

use crate::exec::Pending;
use crate::lifecycle::Event;
use crate::request::{Delivery, RequestInfo};
use crate::runtime::Runtime;
use crate::task::{SkipReason, Timing};
use crate::watch::Watch;

mod batch;

use batch::Batch;

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

pub(crate) struct RequestScope {
    rt: Arc<Runtime>,
    info: Arc<RequestInfo>,
    /// Set when a test watches the request.
    watch: Option<Arc<Watch>>,
    state: Mutex<State>,
    /// The request's span: released tasks start inside it, so their spans are its children
    /// even when they start after the handler returned.
    span: std::sync::OnceLock<tracing::Span>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Start,
    Queue(Timing),
    Skip(SkipReason),
}

impl RequestScope {
    pub(crate) fn new(rt: Arc<Runtime>, info: RequestInfo, watch: Option<Arc<Watch>>) -> Self {
        RequestScope {
            rt,
            info: Arc::new(info),
            watch,
            state: Mutex::new(State {
                phase: Phase::Handling,
                after_route: Batch::default(),
                after_response: Batch::default(),
            }),
            span: std::sync::OnceLock::new(),
        }
    }

    /// Keeps the request's span, for the tasks released later.
    pub(crate) fn set_span(&self, span: &tracing::Span) {
        if !span.is_disabled() {
            let _ = self.span.set(span.clone());
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The runtime the request belongs to.
    pub(crate) fn rt(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// What is known about the request.
    pub(crate) fn info(&self) -> &Arc<RequestInfo> {
        &self.info
    }

    /// The request's watch, when a test watches it.
    pub(crate) fn watch(&self) -> Option<&Arc<Watch>> {
        self.watch.as_ref()
    }

    /// Takes a newly scheduled task of this request and starts, queues or skips it.
    pub(crate) fn admit<P: Pending + 'static>(&self, task: P) {
        let mut state = self.state();
        let info = task.info();
        match verdict(&state.phase, info.timing(), info.is_always()) {
            Verdict::Queue(timing) => {
                self.rt.emit(Event::Held(info));
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

    /// The handler returned a response with `status`, or panicked (`skip` says why tasks skip).
    pub(crate) fn route_finished(&self, status: StatusCode, skip: Option<SkipReason>) {
        self.info.set_status(status);
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
            self.info.set_delivery(delivery);
            (
                reason,
                std::mem::take(&mut state.after_route),
                std::mem::take(&mut state.after_response),
            )
        };
        // The response is over before its tasks are released.
        self.rt.emit(Event::RequestFinished(&self.info));
        self.release(route_batch, reason);
        self.release(response_batch, reason);
    }

    /// Starts the tasks of a batch, or skips them with `reason` (`always` tasks still start).
    /// A task due after shutdown closed the runtime is skipped by `start` itself.
    fn release(&self, batch: Batch, reason: Option<SkipReason>) {
        if batch.is_empty() {
            return;
        }
        let _in_request = self.span.get().map(tracing::Span::enter);
        for task in batch {
            self.rt.emit(Event::Released(task.info()));
            match reason {
                None => task.start_boxed(),
                Some(_) if task.info().is_always() => task.start_boxed(),
                Some(reason) => task.skip_boxed(reason),
            }
        }
    }
}

/// What becomes of a task scheduled in `phase` with `timing`: the skip rules of the
/// semantics page, in one table.
fn verdict(phase: &Phase, timing: Timing, always: bool) -> Verdict {
    match (phase, timing) {
        (Phase::Done, _) | (_, Timing::Immediate) => Verdict::Start,
        (Phase::Handling, timing) => Verdict::Queue(timing),
        (Phase::Responding(None), Timing::AfterRoute) => Verdict::Start,
        (Phase::Responding(None), timing) => Verdict::Queue(timing),
        (Phase::Responding(Some(_)), Timing::AfterRoute) if always => Verdict::Start,
        (Phase::Responding(Some(_)), timing) if always => Verdict::Queue(timing),
        (Phase::Responding(Some(reason)), _) => Verdict::Skip(*reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERROR: SkipReason = SkipReason::ErrorStatus(StatusCode::CONFLICT);
    const TIMINGS: [Timing; 3] = [Timing::Immediate, Timing::AfterRoute, Timing::AfterResponse];

    #[test]
    fn immediate_tasks_start_in_every_phase() {
        for phase in [
            Phase::Handling,
            Phase::Responding(None),
            Phase::Responding(Some(ERROR)),
            Phase::Done,
        ] {
            for always in [false, true] {
                assert_eq!(verdict(&phase, Timing::Immediate, always), Verdict::Start);
            }
        }
    }

    #[test]
    fn while_the_handler_runs_after_tasks_wait_for_their_moment() {
        for always in [false, true] {
            for timing in [Timing::AfterRoute, Timing::AfterResponse] {
                assert_eq!(
                    verdict(&Phase::Handling, timing, always),
                    Verdict::Queue(timing)
                );
            }
        }
    }

    #[test]
    fn after_a_success_after_route_starts_and_after_response_waits() {
        let phase = Phase::Responding(None);
        for always in [false, true] {
            assert_eq!(verdict(&phase, Timing::AfterRoute, always), Verdict::Start);
            assert_eq!(
                verdict(&phase, Timing::AfterResponse, always),
                Verdict::Queue(Timing::AfterResponse)
            );
        }
    }

    #[test]
    fn after_an_error_after_tasks_skip_unless_always() {
        for reason in [
            ERROR,
            SkipReason::HandlerPanicked,
            SkipReason::ClientDisconnected,
        ] {
            let phase = Phase::Responding(Some(reason));
            for timing in [Timing::AfterRoute, Timing::AfterResponse] {
                assert_eq!(verdict(&phase, timing, false), Verdict::Skip(reason));
            }
            assert_eq!(verdict(&phase, Timing::AfterRoute, true), Verdict::Start);
            assert_eq!(
                verdict(&phase, Timing::AfterResponse, true),
                Verdict::Queue(Timing::AfterResponse)
            );
        }
    }

    #[test]
    fn once_the_response_is_over_every_task_starts() {
        for timing in TIMINGS {
            for always in [false, true] {
                assert_eq!(verdict(&Phase::Done, timing, always), Verdict::Start);
            }
        }
    }
}
