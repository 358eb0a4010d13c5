//! `errands::metrics` (feature `metrics`): under load over real TCP, the counters equal
//! `Errands::stats()` exactly, the task gauges equal the stats' pending / queued / running,
//! the reported errors equal the reports the reporters received, and task-name labels stop
//! at `MAX_TASK_LABELS`.
//!
//! One test: the recorder is process-global, and this binary installs it once.

#![cfg(feature = "metrics")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use errands::metrics::{
    ERRORS_REPORTED, MAX_TASK_LABELS, OTHER, TASK_DURATION, TASK_RETRIES, TASK_WAIT, TASKS,
    TASKS_FINISHED, TASKS_REJECTED, TASKS_SCHEDULED,
};
use errands::{ApiError, Errands, ErrorReport, RetryPolicy, Stats, Tasks};
use futures_util::StreamExt;
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::{Notify, watch};

/// What the recorder holds: `(name, labels, value)`, totalled over its snapshots (each
/// snapshot of the debugging recorder takes what changed since the one before, gauges too).
#[derive(Default)]
struct Recorded(Vec<Series>);

/// A metric's name, its labels (sorted), and its value.
type Series = (String, Vec<(String, String)>, DebugValue);

impl Recorded {
    /// Adds what was recorded since the last snapshot; returns the total.
    fn take(&mut self, snapshotter: &Snapshotter) -> &Self {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let name = key.name().to_owned();
            let found = self
                .0
                .iter_mut()
                .find(|(n, l, _)| *n == name && *l == labels);
            match (found, value) {
                (Some((_, _, DebugValue::Counter(total))), DebugValue::Counter(n)) => *total += n,
                (Some((_, _, DebugValue::Gauge(total))), DebugValue::Gauge(n)) => *total += n,
                (Some((_, _, DebugValue::Histogram(all))), DebugValue::Histogram(new)) => {
                    all.extend(new)
                }
                (Some((_, _, old)), value) => *old = value,
                (None, value) => self.0.push((name, labels, value)),
            }
        }
        self
    }

    /// The series of `name` whose labels include every `(key, value)` of `with`.
    fn series<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Series> {
        self.0.iter().filter(move |(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The sum of the counter `name` over the series matching `with`.
    fn counter(&self, name: &str, with: &[(&str, &str)]) -> u64 {
        self.series(name, with)
            .map(|(_, _, value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    fn gauge(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.series(name, with)
            .map(|(_, _, value)| match value {
                DebugValue::Gauge(n) => n.into_inner(),
                other => panic!("{name} is not a gauge: {other:?}"),
            })
            .sum()
    }

    /// How many observations the histogram `name` took.
    fn observations(&self, name: &str) -> usize {
        self.series(name, &[])
            .map(|(_, _, value)| match value {
                DebugValue::Histogram(values) => values.len(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// The distinct values of `label` on `name`.
    fn label_values(&self, name: &str, label: &str) -> std::collections::BTreeSet<String> {
        self.series(name, &[])
            .flat_map(|(_, labels, _)| labels.iter().filter(|(k, _)| k == label))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Every counter and task gauge against the stats.
fn assert_equal(recorded: &Recorded, stats: &Stats) {
    assert_eq!(recorded.counter(TASKS_SCHEDULED, &[]), stats.scheduled);
    assert_eq!(recorded.counter(TASKS_REJECTED, &[]), stats.rejected);
    for (outcome, count) in [
        ("succeeded", stats.succeeded),
        ("failed", stats.failed),
        ("panicked", stats.panicked),
        ("timed_out", stats.timed_out),
        ("cancelled", stats.cancelled),
        ("aborted", stats.aborted),
        ("skipped", stats.skipped),
    ] {
        let counted = recorded.counter(TASKS_FINISHED, &[("outcome", outcome)]);
        assert_eq!(counted, count, "{outcome}");
    }
    for (state, count) in [
        ("pending", stats.pending),
        ("queued", stats.queued),
        ("running", stats.running),
    ] {
        assert_eq!(
            recorded.gauge(TASKS, &[("state", state)]),
            count as f64,
            "{state}"
        );
    }
}

async fn route(tasks: Tasks, Path(kind): Path<String>) -> errands::Result<&'static str> {
    match kind.as_str() {
        "ok" => {
            tasks.immediate().name("ok").schedule(async {})?;
        }
        "flaky" => {
            tasks
                .after_response()
                .name("flaky")
                .retry(RetryPolicy::exponential(Duration::ZERO).max_attempts(3))
                .schedule(|| async { Err::<(), _>("the provider is down") })?;
        }
        "panic" => {
            tasks
                .immediate()
                .name("boom")
                .schedule(async { panic!("a bug") as () })?;
        }
        "fail" => {
            // Skipped: its request failed.
            tasks.after_route().name("audit").schedule(async {})?;
            return Err(ApiError::internal().into());
        }
        "burst" => {
            // The narrow group refuses some of these under load: counted as rejected.
            for _ in 0..3 {
                let _ = tasks
                    .immediate()
                    .name("burst")
                    .group("narrow")
                    .schedule(tokio::task::yield_now());
            }
        }
        named => {
            // A distinct name per request: the labels stop at the cap.
            tasks
                .immediate()
                .name(named.to_owned())
                .schedule(async {})?;
        }
    }
    Ok("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_stats_under_load_and_labels_are_capped() {
    // The tasks' panics are expected: kept out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"a bug") {
            default_hook(info);
        }
    }));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let queue_measured = Arc::new(Notify::new());
    metrics::set_global_recorder(Notifying {
        inner: recorder,
        queue_measured: queue_measured.clone(),
    })
    .expect("the only recorder of this binary");

    let reports = Arc::new(AtomicU64::new(0));
    let counted = reports.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |_: &ErrorReport| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .group("narrow", 1, 1)
        .group("gated", 2, 3)
        .build();
    let app = Router::new()
        .route("/{kind}", get(route))
        .layer(errands.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn({
        let errands = errands.clone();
        async move { errands.serve(listener, app).await }
    });

    let kinds = ["ok", "flaky", "panic", "fail", "burst", "ok", "burst", "ok"];
    let client = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::stream::iter(0..2_000usize)
        .map(|n| {
            let url = match n % 10 {
                8 => format!("{base}/name-{}", n / 10), // 200 names
                9 => format!("{base}/no/such/route"),
                k => format!("{base}/{}", kinds[k]),
            };
            let client = client.clone();
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| [200, 404, 500].contains(s)));
    errands.idle().await;

    let mut recorded = Recorded::default();
    recorded.take(&snapshotter);
    let stats = errands.stats();
    assert!(stats.is_balanced());
    assert!(stats.failed > 0 && stats.panicked > 0 && stats.skipped > 0 && stats.rejected > 0);
    assert_equal(&recorded, &stats);
    assert_eq!(
        recorded.counter(ERRORS_REPORTED, &[]),
        reports.load(Ordering::Relaxed),
        "every report counted once"
    );
    assert!(recorded.counter(ERRORS_REPORTED, &[("origin", "rejection")]) >= 200);
    assert_eq!(
        recorded.counter(TASK_RETRIES, &[("task", "flaky")]),
        2 * stats.failed,
        "two retries before each failure"
    );
    let started = stats.scheduled - stats.skipped;
    assert_eq!(recorded.observations(TASK_WAIT) as u64, started);
    assert_eq!(recorded.observations(TASK_DURATION) as u64, started);
    let names = recorded.label_values(TASKS_SCHEDULED, "task");
    assert!(
        names.contains(OTHER),
        "the names beyond the cap fold into `other`"
    );
    assert_eq!(names.len(), MAX_TASK_LABELS + 1);

    // The gauges follow tasks that are running and queued.
    let (open, gate) = watch::channel(false);
    let tasks = errands.tasks();
    for _ in 0..5 {
        let mut gate = gate.clone();
        tasks
            .immediate()
            .name("gated")
            .group("gated")
            .schedule(async move {
                let _ = gate.wait_for(|open| *open).await;
            })
            .unwrap();
    }
    let stats = errands.stats();
    assert_eq!((stats.running, stats.queued), (2, 3));
    assert_equal(recorded.take(&snapshotter), &stats);
    open.send(true).unwrap();
    errands.idle().await;
    assert_equal(recorded.take(&snapshotter), &errands.stats());

    errands.begin_shutdown();
    server.await.unwrap().unwrap();

    #[cfg(feature = "sqlite")]
    {
        durable_queues(&snapshotter, &queue_measured, &mut recorded).await;
        durable_retries(&snapshotter, &mut recorded).await;
    }
}

/// A durable job whose first attempt fails and whose second succeeds.
#[cfg(feature = "sqlite")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Flaky;

#[cfg(feature = "sqlite")]
impl errands::jobs::Job for Flaky {
    const NAME: &'static str = "flaky_job";
    type State = tokio::sync::mpsc::UnboundedSender<u32>;

    async fn run(
        self,
        cx: errands::jobs::JobContext<Self::State>,
    ) -> Result<(), errands::BoxError> {
        let _ = cx.state().send(cx.attempt());
        match cx.attempt() {
            1 => Err("the provider timed out".into()),
            _ => Ok(()),
        }
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(2)
    }
}

/// A durable attempt that failed and was retried counts in the retries, as an in-memory
/// retry does; both attempts' tasks end `succeeded` (their results recorded), and nothing is
/// reported.
#[cfg(feature = "sqlite")]
async fn durable_retries(snapshotter: &Snapshotter, recorded: &mut Recorded) {
    let before = recorded.take(snapshotter);
    let (retries, succeeded, reported) = (
        before.counter(TASK_RETRIES, &[]),
        before.counter(TASKS_FINISHED, &[("outcome", "succeeded")]),
        before.counter(ERRORS_REPORTED, &[]),
    );
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = errands::durable::SqliteStore::new(pool).await.unwrap();
    let (attempts, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(store)
        .job::<Flaky>(attempts)
        .build();
    errands.jobs().enqueue(Flaky).await.unwrap();
    let patience = Duration::from_secs(20);
    for attempt in 1..=2 {
        let ran = tokio::time::timeout(patience, ran.recv()).await;
        assert_eq!(ran.expect("the attempt ran"), Some(attempt));
    }
    tokio::time::timeout(patience, errands.idle())
        .await
        .expect("idle");
    let after = recorded.take(snapshotter);
    assert_eq!(after.counter(TASK_RETRIES, &[]) - retries, 1);
    assert_eq!(
        after.counter(TASKS_FINISHED, &[("outcome", "succeeded")]) - succeeded,
        2
    );
    assert_eq!(
        after.counter(ERRORS_REPORTED, &[]),
        reported,
        "not reported"
    );
    errands.shutdown().await;
}

/// The durable job gauges: a queue's unfinished jobs by state, and its lag.
#[cfg(feature = "sqlite")]
async fn durable_queues(snapshotter: &Snapshotter, measured: &Notify, recorded: &mut Recorded) {
    use errands::durable::{NewJob, SqliteStore, Store};
    use errands::metrics::{JOBS, JOBS_OLDEST_RUNNABLE_AGE};
    use std::time::SystemTime;

    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = SqliteStore::new(pool).await.unwrap();
    // Jobs of a queue no worker here runs: one due a minute ago, one due in an hour.
    let now = SystemTime::now();
    for run_at in [
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    ] {
        let job = NewJob::new("export", serde_json::json!({})).queue("exports");
        store.enqueue(job.run_at(run_at)).await.unwrap();
    }
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(store)
        .job_lease(Duration::from_millis(300))
        .build();
    let _ = errands.jobs(); // starts the worker: it measures the queues at once
    // The second measurement's registration comes after the first one's values were set.
    measured.notified().await;
    measured.notified().await;
    let recorded = recorded.take(snapshotter);
    let exports = |state| recorded.gauge(JOBS, &[("queue", "exports"), ("state", state)]);
    assert_eq!(
        (exports("held"), exports("available"), exports("running")),
        (0.0, 2.0, 0.0)
    );
    let lag = recorded.gauge(JOBS_OLDEST_RUNNABLE_AGE, &[("queue", "exports")]);
    assert!(
        (60.0..120.0).contains(&lag),
        "the lag is the due job's wait: {lag}"
    );
    let idle = recorded.gauge(JOBS_OLDEST_RUNNABLE_AGE, &[("queue", "default")]);
    assert_eq!(idle, 0.0, "a queue this worker runs, with nothing waiting");
    errands.shutdown().await;
}

/// The debugging recorder, telling when the durable queues' gauges are registered (each time
/// the worker measures them).
struct Notifying {
    inner: DebuggingRecorder,
    queue_measured: Arc<Notify>,
}

impl metrics::Recorder for Notifying {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_counter(key, unit, text)
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_gauge(key, unit, text)
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_histogram(key, unit, text)
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> metrics::Counter {
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> metrics::Gauge {
        if key.name() == errands::metrics::JOBS_OLDEST_RUNNABLE_AGE
            && key.labels().any(|l| l.value() == "exports")
        {
            self.queue_measured.notify_one();
        }
        self.inner.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> metrics::Histogram {
        self.inner.register_histogram(key, metadata)
    }
}
