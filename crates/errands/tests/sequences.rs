//! Property test: an arbitrary sequence of tasks — succeeding, failing, panicking, timing
//! out, retried, cancelled and aborted by shutdown, with `on_error` handlers that succeed,
//! fail or panic, in all three timing modes, from a handler that may answer an error status
//! — ends with every task counted once in its exact terminal state, the accounting invariant
//! holding, and exactly one report per non-success (plus one per failed `on_error`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use errands::testing::TestClient;
use errands::{Errands, Origin, Outcome, RetryPolicy, Stats, Tasks};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Succeed,
    Fail,
    Panic,
    /// Hangs past a one-second timeout.
    Timeout,
    /// Fails `failures` times, with at most `attempts` attempts.
    Retry {
        failures: u32,
        attempts: u32,
    },
    /// Hangs, unshielded: shutdown cancels it.
    Cancel,
    /// Hangs, shielded: shutdown aborts it at the deadline.
    Abort,
}

#[derive(Clone, Copy, Debug)]
enum Handler {
    Default,
    Succeeds,
    Fails,
    Panics,
}

#[derive(Clone, Copy, Debug)]
struct Step {
    kind: Kind,
    timing: u8,
    on_error: Handler,
}

impl Step {
    /// The terminal state this step must reach when its request answers `ok` or not.
    fn outcome(&self, request_ok: bool) -> Outcome {
        if !request_ok && self.timing != 0 {
            return Outcome::Skipped;
        }
        match self.kind {
            Kind::Succeed => Outcome::Succeeded,
            Kind::Fail => Outcome::Failed,
            Kind::Panic => Outcome::Panicked,
            Kind::Timeout => Outcome::TimedOut,
            Kind::Retry { failures, attempts } if failures < attempts => Outcome::Succeeded,
            Kind::Retry { .. } => Outcome::Failed,
            Kind::Cancel => Outcome::Cancelled,
            Kind::Abort => Outcome::Aborted,
        }
    }

    /// Whether this step's `on_error` runs and fails.
    fn handler_fails(&self, outcome: Outcome) -> bool {
        let runs = matches!(
            outcome,
            Outcome::Failed | Outcome::Panicked | Outcome::TimedOut
        );
        runs && matches!(self.on_error, Handler::Fails | Handler::Panics)
    }

    fn schedule(self, tasks: &Tasks, index: usize) {
        let builder = match self.timing {
            0 => tasks.immediate(),
            1 => tasks.after_route(),
            _ => tasks.after_response(),
        };
        // Every task that ends by itself is shielded, so that the shutdown which ends the
        // case waits for it instead of cancelling it.
        let mut builder = builder.name(format!("step{index}"));
        if !matches!(self.kind, Kind::Cancel) {
            builder = builder.shield();
        }
        builder = match self.on_error {
            Handler::Default => builder,
            Handler::Succeeds => builder.on_error(|_, _| async {}),
            Handler::Fails => {
                builder.on_error(|_, _| async { Err::<(), _>(io::Error::other("handler")) })
            }
            Handler::Panics => builder.on_error(|_, _| async { panic!("handler panicked") as () }),
        };
        let scheduled = match self.kind {
            Kind::Succeed => builder.schedule(async {}),
            Kind::Fail => builder.schedule(async { Err::<(), _>(io::Error::other("failed")) }),
            Kind::Panic => builder.schedule(async { panic!("task panicked") as () }),
            Kind::Timeout => builder
                .timeout(Duration::from_secs(1))
                .schedule(std::future::pending::<()>()),
            Kind::Retry { failures, attempts } => {
                let runs = Arc::new(AtomicU32::new(0));
                builder
                    .retry(
                        RetryPolicy::exponential(Duration::from_millis(10)).max_attempts(attempts),
                    )
                    .schedule(move || {
                        let run = runs.fetch_add(1, Ordering::Relaxed) + 1;
                        async move {
                            if run <= failures {
                                return Err(io::Error::other("not yet"));
                            }
                            Ok(())
                        }
                    })
            }
            Kind::Cancel | Kind::Abort => builder.schedule(std::future::pending::<()>()),
        };
        scheduled.expect("scheduled");
    }
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![
        3 => Just(Kind::Succeed),
        2 => Just(Kind::Fail),
        1 => Just(Kind::Panic),
        1 => Just(Kind::Timeout),
        2 => (0..4u32, 1..4u32).prop_map(|(failures, attempts)| Kind::Retry { failures, attempts }),
        1 => Just(Kind::Cancel),
        1 => Just(Kind::Abort),
    ];
    let on_error = prop_oneof![
        Just(Handler::Default),
        Just(Handler::Succeeds),
        Just(Handler::Fails),
        Just(Handler::Panics),
    ];
    (kind, 0..3u8, on_error).prop_map(|(kind, timing, on_error)| Step {
        kind,
        timing,
        on_error,
    })
}

/// Runs the steps from one request (answering 200 or 409), then shuts the runtime down;
/// returns the stats and each report's origin, task name and outcome.
fn run(steps: &[Step], request_ok: bool) -> (Stats, Vec<(Origin, String, Outcome)>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let errands = Errands::builder()
            .without_tracing_reporter()
            .shutdown_deadline(Duration::from_secs(3600))
            .build();
        let steps = steps.to_vec();
        let app = Router::new()
            .route(
                "/",
                post(move |tasks: Tasks| async move {
                    for (index, step) in steps.iter().enumerate() {
                        step.schedule(&tasks, index);
                    }
                    if request_ok {
                        StatusCode::OK
                    } else {
                        StatusCode::CONFLICT
                    }
                }),
            )
            .layer(errands.layer());
        let client = TestClient::new(app, &errands);
        client.post("/").await;
        errands.shutdown().await;
        let reports = client
            .reports()
            .into_iter()
            .filter_map(|r| {
                let task = r.task.as_ref()?;
                Some((r.origin, task.name().to_owned(), r.outcome?))
            })
            .collect();
        (errands.stats(), reports)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_sequence_of_outcomes_is_counted_and_reported_exactly_once(
        steps in proptest::collection::vec(step(), 0..24),
        request_ok in any::<bool>(),
    ) {
        let (stats, reports) = run(&steps, request_ok);

        let mut expected = Stats::default();
        let mut expected_reports = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let outcome = step.outcome(request_ok);
            *match outcome {
                Outcome::Succeeded => &mut expected.succeeded,
                Outcome::Failed => &mut expected.failed,
                Outcome::Panicked => &mut expected.panicked,
                Outcome::TimedOut => &mut expected.timed_out,
                Outcome::Cancelled => &mut expected.cancelled,
                Outcome::Aborted => &mut expected.aborted,
                Outcome::Skipped => &mut expected.skipped,
                _ => unreachable!(),
            } += 1;
            let name = format!("step{index}");
            if outcome != Outcome::Succeeded {
                expected_reports.push((Origin::Task, name.clone(), outcome));
            }
            if step.handler_fails(outcome) {
                let how = match step.on_error {
                    Handler::Panics => Outcome::Panicked,
                    _ => Outcome::Failed,
                };
                expected_reports.push((Origin::ErrorHandler, name, how));
            }
        }
        expected.scheduled = steps.len() as u64;

        prop_assert!(stats.is_balanced(), "{:?}", stats);
        prop_assert_eq!(stats.in_flight(), 0);
        prop_assert_eq!(stats.rejected, 0);
        prop_assert_eq!(
            (stats.scheduled, stats.succeeded, stats.failed, stats.panicked),
            (expected.scheduled, expected.succeeded, expected.failed, expected.panicked)
        );
        prop_assert_eq!(
            (stats.timed_out, stats.cancelled, stats.aborted, stats.skipped),
            (expected.timed_out, expected.cancelled, expected.aborted, expected.skipped)
        );
        let mut reports = reports;
        reports.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
        expected_reports.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
        prop_assert_eq!(reports, expected_reports);
    }
}
