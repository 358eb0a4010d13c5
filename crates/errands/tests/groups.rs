//! The semantics page, "Retries, timeouts, limits": task groups have running and queued
//! limits of their own, so one group's storm stops at its limits and leaves the runtime's
//! capacity to everything else.

mod common;

use errands::{Errands, ScheduleError};
use tokio::sync::watch;

/// A task that runs until the gate opens.
fn held(gate: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut gate = gate.clone();
    async move {
        let _ = gate.wait_for(|open| *open).await;
    }
}

#[tokio::test]
async fn a_groups_storm_stops_at_its_limits_and_leaves_the_rest_to_others() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_running(2)
        .max_queued(2)
        .group("exports", 1, 1)
        .build();
    let (open, gate) = watch::channel(false);
    let tasks = errands.tasks();
    let exports: Vec<_> = (0..5)
        .map(|_| tasks.immediate().group("exports").schedule(held(&gate)))
        .collect();
    assert_eq!(exports.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(
        exports[2..]
            .iter()
            .all(|r| *r == Err(ScheduleError::Overloaded))
    );
    let stats = errands.stats();
    assert_eq!(
        (stats.running, stats.queued),
        (1, 1),
        "one export runs, one waits"
    );

    // The runtime's own capacity is untouched by the storm.
    let others: Vec<_> = (0..5).map(|_| tasks.schedule(held(&gate))).collect();
    assert_eq!(others.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(others[4], Err(ScheduleError::Overloaded));
    let stats = errands.stats();
    assert_eq!((stats.running, stats.queued), (3, 3));
    assert_eq!(stats.rejected, 4);

    open.send(true).unwrap();
    common::idle(&errands).await;
    common::assert_balanced(&errands);
    assert_eq!(errands.stats().succeeded, 6);
    // Capacity is given back: the group admits again.
    assert!(
        tasks
            .immediate()
            .group("exports")
            .schedule(async {})
            .is_ok()
    );
    common::idle(&errands).await;
}

#[tokio::test]
async fn an_unknown_group_is_refused_and_counted() {
    let errands = Errands::builder().without_tracing_reporter().build();
    let refused = errands.tasks().immediate().group("typo").schedule(async {});
    assert_eq!(refused, Err(ScheduleError::UnknownGroup("typo")));
    assert_eq!(errands.stats().rejected, 1);
    assert_eq!(errands.stats().scheduled, 0);
}
