//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! errands records; the application chooses and installs the recorder (a Prometheus exporter,
//! StatsD, OpenTelemetry…) — errands never installs one. Install it **before building the
//! runtime**: errands registers its metrics when it is built and keeps their handles, so a
//! recorder installed later does not see them.
//!
//! Every metric is fed by the runtime's one lifecycle seam, the same events that feed
//! [`Errands::stats`](crate::Errands::stats): the counters equal the stats, always.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `errands_tasks_scheduled_total` | counter | `task`, `timing` | tasks admitted (`Stats::scheduled`) |
//! | `errands_tasks_finished_total` | counter | `task`, `timing`, `outcome` | tasks that reached a terminal state (`Stats::succeeded`, `failed`, …) |
//! | `errands_tasks_rejected_total` | counter | `task`, `reason` | schedule calls refused (`Stats::rejected`); `reason`: `shutting_down`, `overloaded`, `no_runtime`, `unknown_group` |
//! | `errands_task_retries_total` | counter | `task`, `timing` | attempts that failed and were retried, durable jobs' included |
//! | `errands_tasks` | gauge | `state` | tasks `pending`, `queued` or `running` (`Stats::pending`, …) |
//! | `errands_task_wait_duration_seconds` | histogram | `task`, `timing` | from the moment a task was due — scheduled, or released by its request's response — until it got its slot |
//! | `errands_task_duration_seconds` | histogram | `task`, `timing`, `outcome` | how long a task held its slot, retries and `on_error` included |
//! | `errands_errors_reported_total` | counter | `origin`, `code` | reports: every error of the service, and every task that did not succeed, exactly once |
//! | `errands_requests_in_flight` | gauge | | requests inside the errands layer whose response is not over |
//! | `errands_requests_rejected_by_server_total` | counter | | connections `serve` answered or closed before a request existed (`Stats::rejected_by_server`) |
//! | `errands_jobs` | gauge | `queue`, `state` | unfinished durable jobs: `held`, `available`, `running` |
//! | `errands_jobs_oldest_runnable_age_seconds` | gauge | `queue` | how long the oldest runnable durable job has waited: the queue's lag (0 when none waits) |
//! | `errands_jobs_rescued_total` | counter | | durable jobs whose lease expired (their worker died or hung) and were taken back |
//!
//! **Labels are bounded.** `task` is the task's name: the first [`MAX_TASK_LABELS`] distinct
//! names get their own label, later ones fold into `other`; give tasks stable names with
//! [`TaskBuilder::name`](crate::TaskBuilder::name). `code` is the error's stable code (`none`
//! for reports without one), bounded the same way. Request ids, routes and fields are never
//! labels. `timing` is `immediate`, `after_route` or `after_response`; `outcome` one of
//! [`Outcome`]'s names; `origin` one of [`Origin`]'s.
//!
//! The durable job gauges are read from the store by each process's worker, every third of
//! the lease (10 s by default); every process reports the same queue, so aggregate them with
//! `max`, not `sum`.
//!
//! Histograms are recorded in seconds; exporters that need buckets can use
//! [`RECOMMENDED_BUCKETS`].
//!
//! ```
//! # fn main() {
//! use errands::metrics::{RECOMMENDED_BUCKETS, TASK_DURATION};
//!
//! // With metrics-exporter-prometheus, for example:
//! // PrometheusBuilder::new()
//! //     .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), RECOMMENDED_BUCKETS)?
//! //     .install_recorder()?;
//! assert_eq!(TASK_DURATION, "errands_task_duration_seconds");
//! assert!(RECOMMENDED_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, SharedString, Unit};

use crate::report::{ErrorReport, Origin};
use crate::task::{Outcome, ScheduleError, Timing};

/// Buckets, in seconds, for errands' histograms: from a millisecond (a task that starts at
/// once) to ten minutes (a long job).
pub const RECOMMENDED_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// How many distinct task names, and error codes, get a label of their own.
pub const MAX_TASK_LABELS: usize = 100;

/// The label value that the names and codes beyond [`MAX_TASK_LABELS`] fold into.
pub const OTHER: &str = "other";

/// `errands_tasks_scheduled_total`.
pub const TASKS_SCHEDULED: &str = "errands_tasks_scheduled_total";
/// `errands_tasks_finished_total`.
pub const TASKS_FINISHED: &str = "errands_tasks_finished_total";
/// `errands_tasks_rejected_total`.
pub const TASKS_REJECTED: &str = "errands_tasks_rejected_total";
/// `errands_task_retries_total`.
pub const TASK_RETRIES: &str = "errands_task_retries_total";
/// `errands_tasks`.
pub const TASKS: &str = "errands_tasks";
/// `errands_task_wait_duration_seconds`.
pub const TASK_WAIT: &str = "errands_task_wait_duration_seconds";
/// `errands_task_duration_seconds`.
pub const TASK_DURATION: &str = "errands_task_duration_seconds";
/// `errands_errors_reported_total`.
pub const ERRORS_REPORTED: &str = "errands_errors_reported_total";
/// `errands_requests_in_flight`.
pub const REQUESTS_IN_FLIGHT: &str = "errands_requests_in_flight";
/// `errands_requests_rejected_by_server_total`.
pub const REJECTED_BY_SERVER: &str = "errands_requests_rejected_by_server_total";
/// `errands_jobs`.
pub const JOBS: &str = "errands_jobs";
/// `errands_jobs_oldest_runnable_age_seconds`.
pub const JOBS_OLDEST_RUNNABLE_AGE: &str = "errands_jobs_oldest_runnable_age_seconds";
/// `errands_jobs_rescued_total`.
pub const JOBS_RESCUED: &str = "errands_jobs_rescued_total";

const OUTCOMES: [Outcome; 7] = [
    Outcome::Succeeded,
    Outcome::Failed,
    Outcome::Panicked,
    Outcome::TimedOut,
    Outcome::Cancelled,
    Outcome::Aborted,
    Outcome::Skipped,
];

const TIMINGS: [Timing; 3] = [Timing::Immediate, Timing::AfterRoute, Timing::AfterResponse];

/// The metrics of one task name in one timing mode, registered once.
struct TaskMetrics {
    scheduled: Counter,
    retries: Counter,
    wait: Histogram,
    /// By outcome, in [`OUTCOMES`]' order.
    finished: [Counter; 7],
    duration: [Histogram; 7],
}

impl TaskMetrics {
    fn new(task: &SharedString, timing: Timing) -> Self {
        let labels = |outcome: Option<Outcome>| {
            let mut labels = vec![
                Label::new("task", task.clone()),
                Label::new("timing", timing.as_str()),
            ];
            labels.extend(outcome.map(|outcome| Label::new("outcome", outcome.as_str())));
            labels
        };
        TaskMetrics {
            scheduled: metrics::counter!(TASKS_SCHEDULED, labels(None)),
            retries: metrics::counter!(TASK_RETRIES, labels(None)),
            wait: metrics::histogram!(TASK_WAIT, labels(None)),
            finished: OUTCOMES.map(|o| metrics::counter!(TASKS_FINISHED, labels(Some(o)))),
            duration: OUTCOMES.map(|o| metrics::histogram!(TASK_DURATION, labels(Some(o)))),
        }
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0)
}

fn timing_index(timing: Timing) -> usize {
    TIMINGS.iter().position(|t| *t == timing).unwrap_or(0)
}

/// One task name's metrics, by timing mode, each registered when first used.
#[derive(Default)]
struct ByTiming([OnceLock<TaskMetrics>; 3]);

/// Values of a label, at most [`MAX_TASK_LABELS`] of them, then [`OTHER`]; each with what
/// hangs on it.
struct Capped<T> {
    known: RwLock<HashMap<Box<str>, Labelled<T>>>,
    other: Labelled<T>,
}

/// A label's value, and what hangs on it.
type Labelled<T> = Arc<(SharedString, T)>;

impl<T: Default> Capped<T> {
    fn new() -> Self {
        Capped {
            known: RwLock::default(),
            other: Arc::new((SharedString::const_str(OTHER), T::default())),
        }
    }

    fn get(&self, value: &str) -> Labelled<T> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = known.get(value) {
            return found.clone();
        }
        drop(known);
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = known.get(value) {
            return found.clone();
        }
        if known.len() >= MAX_TASK_LABELS {
            return self.other.clone();
        }
        let entry = Arc::new((SharedString::from(value.to_owned()), T::default()));
        known.insert(value.into(), entry.clone());
        entry
    }
}

/// The lifecycle's metrics consumer.
pub(crate) struct Metrics {
    tasks: Capped<ByTiming>,
    codes: Capped<[OnceLock<Counter>; 7]>,
    pending: Gauge,
    queued: Gauge,
    running: Gauge,
    requests: Gauge,
    rejected_by_server: Counter,
}

impl Metrics {
    /// Describes errands' metrics to the recorder installed now, and registers those
    /// without labels.
    pub(crate) fn new() -> Self {
        describe();
        Metrics {
            tasks: Capped::new(),
            codes: Capped::new(),
            pending: metrics::gauge!(TASKS, "state" => "pending"),
            queued: metrics::gauge!(TASKS, "state" => "queued"),
            running: metrics::gauge!(TASKS, "state" => "running"),
            requests: metrics::gauge!(REQUESTS_IN_FLIGHT),
            rejected_by_server: metrics::counter!(REJECTED_BY_SERVER),
        }
    }

    fn task<R>(&self, name: &str, timing: Timing, f: impl FnOnce(&TaskMetrics) -> R) -> R {
        let entry = self.tasks.get(name);
        let (label, by_timing) = &*entry;
        let metrics =
            by_timing.0[timing_index(timing)].get_or_init(|| TaskMetrics::new(label, timing));
        f(metrics)
    }

    pub(crate) fn scheduled(&self, name: &str, timing: Timing) {
        self.task(name, timing, |m| m.scheduled.increment(1));
        self.running.increment(1.0);
    }

    pub(crate) fn rejected(&self, name: &str, error: &ScheduleError) {
        let reason = match error {
            ScheduleError::ShuttingDown => "shutting_down",
            ScheduleError::Overloaded => "overloaded",
            ScheduleError::NoRuntime => "no_runtime",
            ScheduleError::UnknownGroup(_) => "unknown_group",
        };
        let task = self.tasks.get(name).0.clone();
        metrics::counter!(TASKS_REJECTED, "task" => task, "reason" => reason).increment(1);
    }

    pub(crate) fn held(&self) {
        self.pending.increment(1.0);
        self.running.decrement(1.0);
    }

    pub(crate) fn released(&self) {
        self.pending.decrement(1.0);
        self.running.increment(1.0);
    }

    pub(crate) fn queued(&self) {
        self.queued.increment(1.0);
        self.running.decrement(1.0);
    }

    pub(crate) fn started(&self, name: &str, timing: Timing, queued: bool, waited: Duration) {
        self.task(name, timing, |m| m.wait.record(waited));
        if queued {
            self.queued.decrement(1.0);
            self.running.increment(1.0);
        }
    }

    pub(crate) fn retried(&self, name: &str, timing: Timing) {
        self.task(name, timing, |m| m.retries.increment(1));
    }

    pub(crate) fn finished(
        &self,
        name: &str,
        timing: Timing,
        outcome: Outcome,
        queued: bool,
        ran: Option<Duration>,
    ) {
        let index = outcome_index(outcome);
        self.task(name, timing, |m| {
            m.finished[index].increment(1);
            if let Some(ran) = ran {
                m.duration[index].record(ran);
            }
        });
        if queued {
            self.queued.decrement(1.0);
        } else {
            self.running.decrement(1.0);
        }
    }

    pub(crate) fn request_started(&self) {
        self.requests.increment(1.0);
    }

    pub(crate) fn request_finished(&self) {
        self.requests.decrement(1.0);
    }

    pub(crate) fn rejected_by_server(&self) {
        self.rejected_by_server.increment(1);
    }

    pub(crate) fn reported(&self, report: &ErrorReport) {
        let entry = self.codes.get(report.code.as_deref().unwrap_or("none"));
        let (code, by_origin) = &*entry;
        let origin = report.origin;
        by_origin[origin_index(origin)]
            .get_or_init(|| {
                metrics::counter!(ERRORS_REPORTED, "origin" => origin.as_str(), "code" => code.clone())
            })
            .increment(1);
    }
}

fn origin_index(origin: Origin) -> usize {
    match origin {
        Origin::Handler => 0,
        Origin::Rejection => 1,
        Origin::Task => 2,
        Origin::ErrorHandler => 3,
        Origin::Teardown => 4,
        Origin::WebSocket => 5,
        Origin::Runtime => 6,
    }
}

/// The durable job gauges of one queue: its unfinished jobs by state, and the age of its
/// oldest runnable job.
#[cfg(feature = "durable")]
pub(crate) fn queue(queue: &str, held: u64, available: u64, running: u64, oldest: Duration) {
    let queue = SharedString::from(queue.to_owned());
    for (state, count) in [
        ("held", held),
        ("available", available),
        ("running", running),
    ] {
        metrics::gauge!(JOBS, "queue" => queue.clone(), "state" => state).set(count as f64);
    }
    metrics::gauge!(JOBS_OLDEST_RUNNABLE_AGE, "queue" => queue).set(oldest.as_secs_f64());
}

/// Durable jobs whose lease expired were taken back.
#[cfg(feature = "durable")]
pub(crate) fn rescued(count: usize) {
    metrics::counter!(JOBS_RESCUED).increment(count as u64);
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(TASKS_SCHEDULED, "Tasks admitted by schedule calls");
    describe_counter!(TASKS_FINISHED, "Tasks that reached a terminal state");
    describe_counter!(TASKS_REJECTED, "Schedule calls refused");
    describe_counter!(TASK_RETRIES, "Task attempts that failed and were retried");
    describe_gauge!(TASKS, "Tasks pending, queued or running");
    describe_histogram!(TASK_WAIT, Unit::Seconds, "From due to started, per task");
    describe_histogram!(TASK_DURATION, Unit::Seconds, "How long tasks ran");
    describe_counter!(
        ERRORS_REPORTED,
        "Errors and unsuccessful tasks reported, once each"
    );
    describe_gauge!(REQUESTS_IN_FLIGHT, "Requests whose response is not over");
    describe_counter!(
        REJECTED_BY_SERVER,
        "Connections answered before a request existed"
    );
    describe_gauge!(JOBS, "Unfinished durable jobs by queue and state");
    describe_gauge!(
        JOBS_OLDEST_RUNNABLE_AGE,
        Unit::Seconds,
        "Age of the oldest runnable durable job"
    );
    describe_counter!(
        JOBS_RESCUED,
        "Durable jobs taken back after their lease expired"
    );
}
