//! A durable job held for its request's moment: an in-memory task of that request, with the
//! same timing and skip rules as any other, whose work is the job's release.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Durable, HandBack};
use crate::durable::{JobId, Store};
use crate::exec::{BodyCx, Work};
use crate::lifecycle::Event;
use crate::report::ErrorReport;
use crate::runtime::{Runtime, SlotKind};
use crate::task::TaskError;
use crate::watch::Ticket;

/// The in-memory group the releases run in, apart from the application's tasks: a release
/// is one short write, and a full default group must not hold a committed job back.
pub(crate) const GROUP: &str = "errands.durable";

/// Releases the held job `id` when its request's moment comes; records its skip otherwise.
pub(crate) struct Release {
    pub(crate) durable: Arc<Durable>,
    pub(crate) id: JobId,
}

impl Work for Release {
    type Body = BoxFuture<'static, Result<(), TaskError>>;

    const SLOTS: SlotKind = SlotKind::Running;

    fn into_body(self, cx: BodyCx<'_>) -> Self::Body {
        let stopped = HandBack(Some(cx.rt.clone()));
        Box::pin(async move {
            let _stopped = stopped;
            crate::faults::point("release");
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.durable.store.release(self.id).await {
                    Ok(released) => {
                        if released {
                            self.durable.worker.wake();
                        }
                        _stopped.disarm();
                        // Not held: its transaction rolled back, or an operator acted.
                        return Ok(());
                    }
                    // Until it is written, or shutdown stops the task: the process then
                    // releases what it still holds as it stops.
                    Err(error) => {
                        tracing::warn!(target: "errands", job_id = self.id.0, error = %crate::chain::line(&error), ?backoff, "releasing a held durable job failed: retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    /// Records the skip, then reports it: a crash in between leaves the report owed to the
    /// next process; a crash before leaves the job held, and so released with its orphans.
    fn skipped(
        self,
        rt: &Arc<Runtime>,
        report: ErrorReport,
        finished: Event<'_>,
        ticket: Option<Ticket>,
    ) {
        rt.emit(finished);
        let Release { durable, id } = self;
        let rt = rt.clone();
        let reason = report
            .skip_reason
            .map_or_else(|| "skipped".to_owned(), |reason| reason.to_string());
        let tracker = durable.writes.clone();
        let write = async move {
            let _ticket = ticket;
            match durable.store.skip(id, &reason).await {
                Ok(true) => {
                    rt.report(report);
                    crate::faults::point("report_write");
                    let _ = durable.store.reported(id).await;
                }
                // Never stored (its transaction rolled back), or no longer held.
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(target: "errands", job_id = id.0, error = %crate::chain::line(&error), "a skipped durable job could not be recorded as skipped: it stays held, and runs once released");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(tracker.spawn_on(write, &handle)),
            Err(_) => {
                tracing::warn!(target: "errands", job_id = id.0, "a durable job was skipped outside a tokio runtime: it stays held")
            }
        }
    }
}
