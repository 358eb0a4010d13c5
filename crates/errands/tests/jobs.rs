//! Durable jobs in the runtime (`errands::jobs`), on a real SQLite file: they run once, retry
//! by their policy, fail reported once, survive a shutdown that interrupts them and a worker
//! that dies, and never run when the transaction that enqueued them rolled back. Waiting is
//! on the jobs' own signals and the runtime's idleness, never on sleeps.
#![cfg(feature = "sqlite")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use errands::durable::{JobState, NewJob, SqliteStore, Store};
use errands::jobs::{Job, JobContext};
use errands::{BoxError, Errands, ErrorReport, RetryPolicy};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use tokio::sync::mpsc;

/// What the jobs tell the test.
#[derive(Clone)]
struct Signals(mpsc::UnboundedSender<String>);

#[derive(Serialize, Deserialize)]
struct Greet {
    name: String,
}

impl Job for Greet {
    const NAME: &'static str = "greet";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let _ = cx
            .state()
            .0
            .send(format!("hello {} #{}", self.name, cx.attempt()));
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Flaky {
    succeed_on: u32,
}

impl Job for Flaky {
    const NAME: &'static str = "flaky";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let _ = cx.state().0.send(format!("attempt {}", cx.attempt()));
        if cx.attempt() >= self.succeed_on {
            Ok(())
        } else {
            Err(format!("provider down (attempt {})", cx.attempt()).into())
        }
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(3)
    }
}

/// Panics at its first attempt and hangs past its timeout at the second; its type's failure
/// hook tells the test.
#[derive(Serialize, Deserialize)]
struct Stuck;

impl Job for Stuck {
    const NAME: &'static str = "stuck";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let _ = cx.state().0.send(format!("stuck #{}", cx.attempt()));
        if cx.attempt() == 1 {
            panic!("the provider's client panicked");
        }
        std::future::pending().await
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(2)
    }

    fn timeout() -> Option<Duration> {
        Some(Duration::from_millis(50))
    }

    async fn on_failure(signals: Signals, failure: errands::jobs::JobFailure) {
        let _ = signals
            .0
            .send(format!("on_failure {} {}", failure.key(), failure.error));
    }
}

/// Runs until its runtime stops it: a payment whose provider never answers.
#[derive(Serialize, Deserialize)]
struct Hangs;

impl Job for Hangs {
    const NAME: &'static str = "hangs";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        hang(cx).await
    }
}

/// Says it started, then never ends.
async fn hang(cx: JobContext<Signals>) -> Result<(), BoxError> {
    let _ = cx.state().0.send("started".to_owned());
    std::future::pending().await
}

/// Like `Hangs`, but stopped when the drain ends rather than at the deadline.
#[derive(Serialize, Deserialize)]
struct HangsUnshielded;

impl Job for HangsUnshielded {
    const NAME: &'static str = "hangs_unshielded";
    const SHIELD: bool = false;
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        hang(cx).await
    }
}

/// The same stored name as `Hangs`, finishing at once: the code after a deploy.
#[derive(Serialize, Deserialize)]
struct Finishes;

impl Job for Finishes {
    const NAME: &'static str = "hangs";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let _ = cx.state().0.send(format!("finished #{}", cx.attempt()));
        Ok(())
    }
}

/// Reports what trace it runs in, then fails (one attempt).
#[derive(Serialize, Deserialize)]
struct Traced;

impl Job for Traced {
    const NAME: &'static str = "traced";
    type State = Signals;

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::ZERO).max_attempts(1)
    }

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let trace = errands::TaskInfo::current().and_then(|t| t.traceparent().map(str::to_owned));
        let _ = cx.state().0.send(format!("trace {trace:?}"));
        Err("the export failed".into())
    }
}

async fn store() -> (SqliteStore, std::path::PathBuf) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "errands-jobs-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    (SqliteStore::new(pool).await.unwrap(), path)
}

fn runtime(
    store: &SqliteStore,
    reports: &Arc<Mutex<Vec<String>>>,
) -> (Errands, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let signals = Signals(tx);
    let sink = reports.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &ErrorReport| {
            let name = r.task.as_ref().map(|t| t.name().to_owned());
            let key = r
                .key
                .as_deref()
                .map(|key| format!(" [{key}]"))
                .unwrap_or_default();
            let trace = r
                .traceparent
                .as_deref()
                .map(|trace| format!(" <{trace}>"))
                .unwrap_or_default();
            sink.lock()
                .unwrap()
                .push(format!("{name:?}: {}{key}{trace}", r.chain_text()));
        })
        .shutdown_deadline(Duration::from_millis(100))
        .durable(store.clone())
        .job::<Greet>(signals.clone())
        .job::<Flaky>(signals.clone())
        .job::<Stuck>(signals.clone())
        .job::<HangsUnshielded>(signals.clone())
        .job::<Traced>(signals.clone())
        .job::<Hangs>(signals)
        .build();
    (errands, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(common::PATIENCE, rx.recv())
        .await
        .expect("the job ran")
        .unwrap()
}

#[tokio::test]
async fn an_enqueued_job_runs_once_and_its_status_says_so() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let id = errands
        .jobs()
        .enqueue(Greet { name: "ada".into() })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "hello ada #1");
    common::idle(&errands).await;
    let status = errands.jobs().status(id).await.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    // In JSON, as a client polling it reads it: times in RFC 3339, UTC.
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "succeeded");
    for time in ["enqueued_at", "run_at", "finished_at"] {
        let text = json[time]
            .as_str()
            .unwrap_or_else(|| panic!("{time}: {json}"));
        assert!(
            text.len() == 24 && text.as_bytes()[10] == b'T' && text.ends_with('Z'),
            "{time}: {text}"
        );
    }
    assert!(reports.lock().unwrap().is_empty());
    assert!(ran.try_recv().is_err(), "once");
}

#[tokio::test]
async fn a_failing_job_retries_by_its_policy_and_its_final_failure_is_reported_once() {
    let (store, _path) = store().await;
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let recovers = errands
        .jobs()
        .enqueue(Flaky { succeed_on: 2 })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "attempt 1");
    assert_eq!(next(&mut ran).await, "attempt 2");
    common::idle(&errands).await;
    assert_eq!(
        errands.jobs().status(recovers).await.unwrap().state,
        JobState::Succeeded
    );
    assert!(
        reports.lock().unwrap().is_empty(),
        "retries are not reported"
    );

    let fails = errands
        .jobs()
        .enqueue(Flaky { succeed_on: 9 })
        .await
        .unwrap();
    for attempt in 1..=3 {
        assert_eq!(next(&mut ran).await, format!("attempt {attempt}"));
    }
    common::idle(&errands).await;
    let status = errands.jobs().status(fails).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Failed, 3));
    // Each attempt is a task: those that left a retry in the store ended `succeeded`, the
    // last one `failed`; the accounting invariant holds.
    let stats = errands.stats();
    assert_eq!(
        (stats.scheduled, stats.succeeded, stats.failed),
        (5, 4, 1),
        "{stats:?}"
    );
    common::assert_balanced(&errands);
    assert_eq!(
        *reports.lock().unwrap(),
        [format!(
            r#"Some("flaky"): provider down (attempt 3) [job:{fails}:3]"#
        )],
        "one report, keyed by the job and its attempt"
    );
    assert!(
        store
            .unreported(SystemTime::now(), Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "the report is recorded as delivered"
    );

    // An operator's retry: a new run of three attempts, numbered on, whose failure is a new
    // report with a key of its own (an alert sink de-duplicating by key keeps both).
    errands.jobs().retry(fails).await.unwrap();
    for attempt in 4..=6 {
        assert_eq!(next(&mut ran).await, format!("attempt {attempt}"));
    }
    common::idle(&errands).await;
    let status = errands.jobs().status(fails).await.unwrap();
    assert_eq!(
        (status.state, status.attempt, status.max_attempts),
        (JobState::Failed, 6, 6)
    );
    assert_eq!(
        reports.lock().unwrap().last().unwrap(),
        &format!(r#"Some("flaky"): provider down (attempt 6) [job:{fails}:6]"#)
    );
    assert_eq!(reports.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let mut tx = store.pool().begin().await.unwrap();
    let rolled_back = errands
        .jobs()
        .enqueue_in(
            &mut tx,
            Greet {
                name: "ghost".into(),
            },
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    errands
        .jobs()
        .enqueue_in(&mut tx, Greet { name: "bo".into() })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next(&mut ran).await, "hello bo #1");
    common::idle(&errands).await;
    assert!(ran.try_recv().is_err(), "the rolled-back job never ran");
    // SQLite hands the rolled-back id out again: it is the committed job's now.
    let status = errands.jobs().status(rolled_back).await.unwrap();
    assert_eq!(status.state, JobState::Succeeded);
    assert!(
        store
            .unreported(SystemTime::now(), Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_job_interrupted_by_shutdown_goes_back_and_the_next_process_finishes_it() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let id = errands.jobs().enqueue(Hangs).await.unwrap();
    assert_eq!(next(&mut ran).await, "started");
    let summary = errands.shutdown().await;
    assert_eq!(summary.aborted, 1, "still running at the deadline");
    assert_eq!(summary.handed_back, 1);
    assert!(!summary.lost_work(), "handed back, not lost: {summary:?}");
    let status = store.status(id).await.unwrap();
    assert_eq!(
        (status.state, status.attempt),
        (JobState::Available, 0),
        "back to available, the interrupted attempt not counted"
    );

    // The next process (the same store, the job type's new code) finishes it.
    let (tx, mut finished) = mpsc::unbounded_channel();
    let next_process = Errands::builder()
        .without_tracing_reporter()
        .durable(store.clone())
        .job::<Finishes>(Signals(tx))
        .build();
    let _ = next_process.jobs();
    assert_eq!(next(&mut finished).await, "finished #1");
    common::idle(&next_process).await;
    assert_eq!(store.status(id).await.unwrap().state, JobState::Succeeded);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_rescued_once_its_lease_expired() {
    let (store, _path) = store().await;
    // A worker of a process that was killed a minute ago: it claimed the job, and its
    // lease has run out since.
    let a_minute_ago = SystemTime::now() - Duration::from_secs(60);
    let id = store
        .enqueue(
            NewJob::new("greet", serde_json::json!({"name": "cy"}))
                .max_attempts(2)
                .run_at(a_minute_ago),
        )
        .await
        .unwrap()
        .id();
    let dead = store
        .claim(
            "default",
            "killed-process",
            a_minute_ago,
            Duration::from_secs(30),
            1,
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let _ = errands.jobs();
    assert_eq!(next(&mut ran).await, "hello cy #2");
    common::idle(&errands).await;
    assert_eq!(store.status(id).await.unwrap().state, JobState::Succeeded);
}

#[tokio::test]
async fn undecodable_arguments_and_unknown_types_fail_once_and_are_reported() {
    let (store, _path) = store().await;
    let bad = store
        .enqueue(NewJob::new("greet", serde_json::json!({"nom": 1})).max_attempts(5))
        .await
        .unwrap()
        .id();
    let unknown = store
        .enqueue(NewJob::new("retired_type", serde_json::json!({})).max_attempts(5))
        .await
        .unwrap()
        .id();
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let (errands, _ran) = runtime(&store, &reports);
    let _ = errands.jobs();
    // Both fail at their first claim; wait for the two reports through the runtime.
    tokio::time::timeout(common::PATIENCE, async {
        loop {
            common::idle(&errands).await;
            if reports.lock().unwrap().len() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both reported");
    for id in [bad, unknown] {
        let status = store.status(id).await.unwrap();
        assert_eq!(
            (status.state, status.attempt),
            (JobState::Failed, 1),
            "never retried"
        );
    }
    let reports = reports.lock().unwrap().clone();
    assert!(
        reports.iter().any(|r| r.contains("do not decode")),
        "{reports:?}"
    );
    assert!(
        reports
            .iter()
            .any(|r| r.contains("no job type named \"retired_type\"")),
        "{reports:?}"
    );
}

#[tokio::test]
async fn a_scheduled_job_waits_for_its_time_and_a_unique_key_returns_the_live_job() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let later = errands
        .jobs()
        .prepare(Greet {
            name: "later".into(),
        })
        .unique("greet-later")
        .run_after(Duration::from_millis(300))
        .enqueue()
        .await
        .unwrap();
    let again = errands
        .jobs()
        .prepare(Greet {
            name: "again".into(),
        })
        .unique("greet-later")
        .enqueue()
        .await
        .unwrap();
    assert_eq!(again, errands::durable::Enqueued::Duplicate(later.id()));
    errands
        .jobs()
        .enqueue(Greet { name: "now".into() })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "hello now #1", "the due job first");
    assert_eq!(
        next(&mut ran).await,
        "hello later #1",
        "then the scheduled one"
    );
    common::idle(&errands).await;
    assert!(ran.try_recv().is_err(), "the duplicate never ran");
}

#[tokio::test]
async fn a_locked_database_at_enqueue_is_a_503_and_nothing_is_stored() {
    let path = std::env::temp_dir().join(format!("errands-jobs-locked-{}.db", std::process::id()));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(100));
    let pool = sqlx::SqlitePool::connect_with(options.clone())
        .await
        .unwrap();
    let store = SqliteStore::new(pool).await.unwrap();
    let reports = Arc::default();
    let (errands, _ran) = runtime(&store, &reports);
    let jobs = errands.jobs();
    let app = axum::Router::new()
        .route(
            "/greet",
            axum::routing::post(move || {
                let jobs = jobs.clone();
                async move {
                    let id = jobs.enqueue(Greet { name: "dee".into() }).await?;
                    Ok::<_, errands::Error>(id.to_string())
                }
            }),
        )
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);

    // Another writer holds the database past the busy timeout.
    let mut locker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let response = client.post("/greet").await;
    assert_eq!(response.status(), 503, "{}", response.text());
    assert_eq!(response.json()["code"], "service_unavailable");
    assert!(
        !response.text().contains("locked"),
        "no database text in the body"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(
        store
            .unreported(SystemTime::now(), Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM errands_jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing half-written");
    let _ = std::fs::remove_file(&path);
}

/// A mail job in its own queue, held at a gate the test opens.
#[derive(Serialize, Deserialize)]
struct Mail {
    n: u32,
}

#[derive(Clone)]
struct MailState {
    signals: Signals,
    gate: tokio::sync::watch::Receiver<bool>,
}

impl Job for Mail {
    const NAME: &'static str = "mail";
    const QUEUE: &'static str = "mail";
    type State = MailState;

    async fn run(self, cx: JobContext<MailState>) -> Result<(), BoxError> {
        let _ = cx
            .state()
            .signals
            .0
            .send(format!("mail {} started", self.n));
        let mut gate = cx.state().gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        let _ = cx.state().signals.0.send(format!("mail {} done", self.n));
        Ok(())
    }
}

#[tokio::test]
async fn a_queue_runs_at_its_own_concurrency_without_holding_up_the_others() {
    let (store, _path) = store().await;
    let (tx, mut ran) = mpsc::unbounded_channel();
    let (open, gate) = tokio::sync::watch::channel(false);
    let signals = Signals(tx);
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(store.clone())
        .job::<Greet>(signals.clone())
        .job::<Mail>(MailState {
            signals: signals.clone(),
            gate,
        })
        .job_queue("mail", 1)
        .build();
    let jobs = errands.jobs();
    jobs.enqueue(Mail { n: 1 }).await.unwrap();
    jobs.enqueue(Mail { n: 2 }).await.unwrap();
    jobs.enqueue(Greet { name: "x".into() }).await.unwrap();
    let mut first = vec![next(&mut ran).await, next(&mut ran).await];
    first.sort();
    assert_eq!(
        first,
        ["hello x #1", "mail 1 started"],
        "the default queue is not held up by the mail queue"
    );
    open.send(true).unwrap();
    assert_eq!(next(&mut ran).await, "mail 1 done");
    assert_eq!(
        next(&mut ran).await,
        "mail 2 started",
        "one mail at a time: the second starts only after the first"
    );
    assert_eq!(next(&mut ran).await, "mail 2 done");
    common::idle(&errands).await;
}

#[tokio::test]
async fn workers_back_off_while_the_database_is_locked_and_recover_after() {
    let mut logs = common::LogLines::capture();

    let path = std::env::temp_dir().join(format!("errands-jobs-down-{}.db", std::process::id()));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(50));
    let store = SqliteStore::new(
        sqlx::SqlitePool::connect_with(options.clone())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    store
        .enqueue(NewJob::new("greet", serde_json::json!({"name": "eve"})))
        .await
        .unwrap();
    // The database goes away for the workers: another writer holds it.
    let mut locker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();

    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let _ = errands.jobs();
    logs.wait_for("claiming durable jobs failed: backing off")
        .await;
    // The database comes back: the job runs, nothing lost.
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(next(&mut ran).await, "hello eve #1");
    common::idle(&errands).await;
    let _ = std::fs::remove_file(&path);
}

/// A job whose side effect (a payout row) and completion commit in one transaction.
#[derive(Serialize, Deserialize)]
struct Payout {
    fail_first: bool,
}

#[derive(Clone)]
struct PayoutState {
    pool: sqlx::SqlitePool,
    signals: Signals,
}

impl Job for Payout {
    const NAME: &'static str = "payout";
    type State = PayoutState;

    async fn run(self, cx: JobContext<PayoutState>) -> Result<(), BoxError> {
        let mut tx = cx.state().pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO payouts (job_id, attempt) VALUES (?, ?)")
            .bind(cx.id().0)
            .bind(cx.attempt())
            .execute(&mut *tx)
            .await?;
        cx.complete_in(&mut tx).await?;
        if self.fail_first && cx.attempt() == 1 {
            // Dropped without a commit: neither the payout nor the completion happened.
            let _ = cx
                .state()
                .signals
                .0
                .send("attempt 1 rolled back".to_owned());
            return Err("the provider timed out after the write".into());
        }
        tx.commit().await?;
        let _ = cx
            .state()
            .signals
            .0
            .send(format!("paid at attempt {}", cx.attempt()));
        Ok(())
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(2)
    }
}

#[tokio::test]
async fn a_job_completes_in_the_transaction_of_its_side_effect() {
    let (store, _path) = store().await;
    sqlx::query("CREATE TABLE payouts (job_id INTEGER NOT NULL, attempt INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    let (tx, mut ran) = mpsc::unbounded_channel();
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = reports.clone();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |r: &ErrorReport| sink.lock().unwrap().push(r.chain_text()))
        .durable(store.clone())
        .job::<Payout>(PayoutState {
            pool: store.pool().clone(),
            signals: Signals(tx),
        })
        .build();
    let id = errands
        .jobs()
        .enqueue(Payout { fail_first: true })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "attempt 1 rolled back");
    assert_eq!(next(&mut ran).await, "paid at attempt 2");
    common::idle(&errands).await;
    let payouts: Vec<(i64, i64)> = sqlx::query_as("SELECT job_id, attempt FROM payouts")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        payouts,
        [(id.0, 2)],
        "exactly one payout, from the committed attempt"
    );
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Succeeded, 2));
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

/// A router whose handlers enqueue `Greet` as a durable task of their request, in the caller's
/// transaction, with the timing the path names; `/fail/..` answers 500 after enqueueing.
fn durable_routes(errands: &Errands, store: &SqliteStore) -> axum::Router {
    use axum::extract::Path;
    use errands::Tasks;
    use errands::jobs::DurableTask;

    let pool = store.pool().clone();
    let enqueue = move |Path((outcome, timing)): Path<(String, String)>, tasks: Tasks| {
        let pool = pool.clone();
        async move {
            let builder = match timing.as_str() {
                "after_route" => tasks.after_route(),
                "after_response" => tasks.after_response(),
                _ => tasks.immediate(),
            };
            let mut tx = pool.begin().await?;
            let id = builder
                .field("greeting", timing.clone())
                .durable(Greet {
                    name: format!("{outcome} {timing}"),
                })
                .enqueue_in(&mut tx)
                .await?
                .id();
            tx.commit().await?;
            // What the job is while its request still runs.
            let state =
                sqlx::query_scalar::<_, String>("SELECT state FROM errands_jobs WHERE id = ?")
                    .bind(id.0)
                    .fetch_one(&pool)
                    .await?;
            if outcome == "fail" {
                return Err(errands::Error::new(std::io::Error::other(
                    "the handler failed after enqueueing",
                )));
            }
            Ok::<_, errands::Error>(format!("{id} {state}"))
        }
    };
    axum::Router::new()
        .route("/{outcome}/{timing}", axum::routing::post(enqueue))
        .layer(errands.layer())
}

#[tokio::test]
async fn a_durable_task_of_a_request_is_held_until_its_moment_then_runs() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let client = errands::testing::TestClient::new(durable_routes(&errands, &store), &errands);
    for (timing, while_handling) in [
        ("immediate", "runnable"),
        ("after_route", "held"),
        ("after_response", "held"),
    ] {
        let response = client.post(&format!("/ok/{timing}")).await;
        assert_eq!(response.status(), 200, "{}", response.text());
        let text = response.text();
        let (id, state) = text.split_once(' ').unwrap();
        match while_handling {
            "held" => assert_eq!(state, "held", "{timing}: not runnable before its moment"),
            _ => assert_ne!(state, "held", "{timing}"),
        }
        response.settle().await;
        assert_eq!(next(&mut ran).await, format!("hello ok {timing} #1"));
        common::idle(&errands).await;
        let id = errands::durable::JobId(id.parse().unwrap());
        let status = store.status(id).await.unwrap();
        assert_eq!(status.state, JobState::Succeeded, "{timing}");
    }
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
    // The request id and the task's fields were stored with each job.
    let rows: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT request_id, fields FROM errands_jobs ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    for (request_id, fields) in rows {
        assert!(request_id.is_some_and(|id| !id.is_empty()));
        assert!(fields.contains("\"greeting\""), "{fields}");
    }
}

#[tokio::test]
async fn a_held_job_of_a_failed_request_is_skipped_recorded_and_reported_once() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let client = errands::testing::TestClient::new(durable_routes(&errands, &store), &errands);
    let response = client.post("/fail/after_response").await;
    assert_eq!(response.status(), 500);
    // The test's wait covers the skip's write and its report.
    response.settle().await;
    let rows: Vec<(String, i64, Option<String>)> =
        sqlx::query_as("SELECT state, report_owed, last_error FROM errands_jobs")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let (state, owed, reason) = &rows[0];
    assert_eq!(
        (state.as_str(), *owed),
        ("skipped", 0),
        "recorded, report delivered"
    );
    assert!(
        reason.as_deref().unwrap_or_default().contains("500"),
        "{reason:?}"
    );
    let reports = reports.lock().unwrap().clone();
    assert_eq!(
        reports.len(),
        2,
        "the handler's 500 and the skip: {reports:?}"
    );
    assert!(
        reports.iter().any(|r| r.starts_with("Some(\"greet\")")),
        "{reports:?}"
    );
    // The immediate job of a failed request still runs: its timing has no skip rule.
    let response = client.post("/fail/immediate").await;
    response.settle().await;
    assert_eq!(next(&mut ran).await, "hello fail immediate #1");
    common::idle(&errands).await;
    assert!(ran.try_recv().is_err(), "the skipped job never ran");
}

#[tokio::test]
async fn held_jobs_of_a_process_that_died_are_released_and_run_by_the_next() {
    let (store, _path) = store().await;
    // A process enqueued it held for its request, then died before the response.
    let orphan = store
        .enqueue(
            NewJob::new("greet", serde_json::json!({"name": "orphan"}))
                .held("req-1", "errands-dead-process"),
        )
        .await
        .unwrap()
        .id();
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let _ = errands.jobs();
    assert_eq!(next(&mut ran).await, "hello orphan #1");
    common::idle(&errands).await;
    assert_eq!(
        store.status(orphan).await.unwrap().state,
        JobState::Succeeded
    );
}

#[tokio::test]
async fn a_panic_and_a_timeout_are_failed_attempts_and_the_failure_hook_runs_once() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let id = errands.jobs().enqueue(Stuck).await.unwrap();
    assert_eq!(next(&mut ran).await, "stuck #1");
    assert_eq!(next(&mut ran).await, "stuck #2", "the panic was retried");
    let hook = next(&mut ran).await;
    assert!(
        hook.starts_with(&format!("on_failure job:{id}:2 ")) && hook.contains("timed out"),
        "{hook}"
    );
    common::idle(&errands).await;
    assert!(ran.try_recv().is_err(), "the hook ran once");
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Failed, 2));
    assert!(
        store
            .unreported(SystemTime::now(), Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].ends_with(&format!("[job:{id}:2]")),
        "{reports:?}"
    );
}

/// Arguments serde cannot write as JSON: a map with non-string keys.
#[derive(Serialize, Deserialize)]
struct Unwritable {
    by_pair: std::collections::HashMap<(i32, i32), String>,
}

impl Job for Unwritable {
    const NAME: &'static str = "unwritable";
    type State = Signals;

    async fn run(self, _: JobContext<Signals>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn arguments_that_do_not_serialize_are_a_clear_error_and_nothing_is_written() {
    let (store, _path) = store().await;
    let (tx, _ran) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(store.clone())
        .job::<Unwritable>(Signals(tx))
        .build();
    let job = Unwritable {
        by_pair: [((1, 2), "x".to_owned())].into(),
    };
    let error = errands.jobs().enqueue(job).await.unwrap_err();
    assert!(
        matches!(
            error,
            errands::jobs::EnqueueError::Store(errands::durable::StoreError::Encode(_))
        ),
        "{error:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM errands_jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn finished_jobs_are_pruned_after_their_retention() {
    let (store, _path) = store().await;
    let process = |retention| {
        let (tx, ran) = mpsc::unbounded_channel();
        let errands = Errands::builder()
            .without_tracing_reporter()
            .durable(store.clone())
            .job::<Greet>(Signals(tx))
            .job_retention(retention)
            .build();
        (errands, ran)
    };
    let (first, mut ran) = process(Duration::from_secs(3600));
    let done = first
        .jobs()
        .enqueue(Greet { name: "a".into() })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "hello a #1");
    first.shutdown().await;
    assert_eq!(store.status(done).await.unwrap().state, JobState::Succeeded);
    // A process keeping nothing: its worker's maintenance runs before its first claim, so
    // once its own job ran, the finished one is gone.
    let (second, mut ran) = process(Duration::ZERO);
    second
        .jobs()
        .enqueue(Greet { name: "b".into() })
        .await
        .unwrap();
    assert_eq!(next(&mut ran).await, "hello b #1");
    assert!(matches!(
        store.status(done).await,
        Err(errands::durable::StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_unshielded_job_is_stopped_at_the_drain_and_goes_back() {
    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let id = errands.jobs().enqueue(HangsUnshielded).await.unwrap();
    assert_eq!(next(&mut ran).await, "started");
    let summary = errands.shutdown().await;
    assert_eq!((summary.cancelled, summary.aborted), (1, 0), "{summary:?}");
    assert!(!summary.lost_work(), "{summary:?}");
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Available, 0));
}

/// W3C trace context: the request's `traceparent` is stored with the durable job it enqueued,
/// is the attempt's (`TaskInfo::traceparent`), and is carried in the failure's report; an
/// invalid one is not kept.
#[tokio::test]
async fn a_durable_job_carries_the_trace_of_the_request_that_enqueued_it() {
    use errands::jobs::DurableTask;
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let app = axum::Router::new()
        .route(
            "/export",
            axum::routing::post(|tasks: errands::Tasks| async move {
                let id = tasks.after_response().durable(Traced).enqueue().await?;
                Ok::<_, errands::Error>(id.id().to_string())
            }),
        )
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);

    let response = client.post("/export").header("traceparent", TRACE).await;
    assert_eq!(response.status(), 200, "{}", response.text());
    response.settle().await;
    assert_eq!(next(&mut ran).await, format!("trace Some({TRACE:?})"));
    common::idle(&errands).await;
    let id = errands::durable::JobId(response.text().parse().unwrap());
    assert_eq!(
        store.status(id).await.unwrap().traceparent.as_deref(),
        Some(TRACE)
    );
    let reported = reports.lock().unwrap().clone();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].ends_with(&format!("<{TRACE}>")), "{reported:?}");

    let response = client
        .post("/export")
        .header("traceparent", "00-not-a-trace-01")
        .await;
    response.settle().await;
    assert_eq!(next(&mut ran).await, "trace None");
    common::idle(&errands).await;
    let id = errands::durable::JobId(response.text().parse().unwrap());
    assert_eq!(store.status(id).await.unwrap().traceparent, None);
}

/// Waits for a gate, saying when it started and when it ended.
#[derive(Serialize, Deserialize)]
struct Gated {
    n: u32,
}

#[derive(Clone)]
struct Gate(
    tokio::sync::watch::Receiver<bool>,
    mpsc::UnboundedSender<String>,
);

impl Job for Gated {
    const NAME: &'static str = "gated";
    type State = Gate;

    async fn run(self, cx: JobContext<Gate>) -> Result<(), BoxError> {
        let Gate(mut gate, said) = cx.state().clone();
        let _ = said.send(format!("started {} #{}", self.n, cx.attempt()));
        let _ = gate.wait_for(|open| *open).await;
        let _ = said.send(format!("done {}", self.n));
        Ok(())
    }
}

/// The log's messages, into a channel: the worker's own word that something happened.
struct Messages(mpsc::UnboundedSender<String>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let _ = self.0.send(message.0);
    }
}

/// When the runtime refuses an attempt (its limits are full), only that claim goes back,
/// without its attempt: the process's other running job keeps running and finishes once.
// One thread: the log's subscriber is this thread's, and the worker runs on it too.
#[tokio::test]
async fn a_refused_attempt_goes_back_alone_and_the_others_keep_running() {
    use tracing_subscriber::layer::SubscriberExt;

    let (logged, mut log) = mpsc::unbounded_channel();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(Messages(logged)));
    let (store, _path) = store().await;
    let (open, gate) = tokio::sync::watch::channel(false);
    let (said, mut heard) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .max_running(1)
        .max_queued(1)
        .durable(store.clone())
        .job::<Gated>(Gate(gate.clone(), said))
        .build();
    let first = errands.jobs().enqueue(Gated { n: 1 }).await.unwrap();
    assert_eq!(next(&mut heard).await, "started 1 #1");
    // The runtime's limits are full: one running (the first job), one queued (this task).
    let mut waiting = gate.clone();
    errands
        .tasks()
        .schedule(async move {
            let _ = waiting.wait_for(|open| *open).await;
        })
        .unwrap();
    let second = errands.jobs().enqueue(Gated { n: 2 }).await.unwrap();
    loop {
        let message = tokio::time::timeout(common::PATIENCE, log.recv())
            .await
            .expect("the refusal")
            .unwrap();
        if message.contains("the job went back") {
            break;
        }
    }
    assert_eq!(store.status(first).await.unwrap().state, JobState::Running);
    let back = store.status(second).await.unwrap();
    assert_eq!((back.state, back.attempt), (JobState::Available, 0));

    open.send(true).unwrap();
    assert_eq!(next(&mut heard).await, "done 1");
    assert_eq!(next(&mut heard).await, "started 2 #1", "its first attempt");
    assert_eq!(next(&mut heard).await, "done 2");
    common::idle(&errands).await;
    assert_eq!(
        store.status(first).await.unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        store.status(second).await.unwrap().state,
        JobState::Succeeded
    );
    assert!(heard.try_recv().is_err(), "each job ran once");
}

/// Operators' actions through `Jobs` in handlers: the store's errors take the pipeline —
/// an unknown job is `404 not_found`, a job whose state does not allow the change `409
/// conflict` — and a retried job runs at once.
#[tokio::test]
async fn cancel_retry_and_discard_from_handlers_answer_in_the_error_schema() {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use errands::durable::JobId;

    async fn status(
        State(errands): State<Errands>,
        Path(id): Path<i64>,
    ) -> errands::Result<String> {
        Ok(errands.jobs().status(JobId(id)).await?.state.to_string())
    }
    async fn act(
        State(errands): State<Errands>,
        Path((id, action)): Path<(i64, String)>,
    ) -> errands::Result<StatusCode> {
        let (jobs, id) = (errands.jobs(), JobId(id));
        match action.as_str() {
            "cancel" => jobs.cancel(id).await?,
            "retry" => jobs.retry(id).await?,
            _ => jobs.discard(id).await?,
        }
        Ok(StatusCode::NO_CONTENT)
    }

    let (store, _path) = store().await;
    let reports = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let app = axum::Router::new()
        .route("/jobs/{id}", axum::routing::get(status))
        .route("/jobs/{id}/{action}", axum::routing::post(act))
        .with_state(errands.clone())
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);
    let later = errands
        .jobs()
        .prepare(Greet { name: "fay".into() })
        .run_after(Duration::from_secs(3600))
        .enqueue()
        .await
        .unwrap()
        .id();

    assert_eq!(
        client.post(&format!("/jobs/{later}/cancel")).await.status(),
        204
    );
    assert_eq!(
        client.get(&format!("/jobs/{later}")).await.text(),
        "cancelled"
    );
    let again = client.post(&format!("/jobs/{later}/cancel")).await;
    assert_eq!(again.status(), 409, "{}", again.text());
    assert_eq!(again.json()["code"], "conflict");
    assert_eq!(
        again.json()["error"],
        "The job is cancelled, which does not allow this."
    );
    assert_eq!(
        client.post(&format!("/jobs/{later}/retry")).await.status(),
        204
    );
    assert_eq!(next(&mut ran).await, "hello fay #1", "runs at once");
    common::idle(&errands).await;
    assert_eq!(
        client.get(&format!("/jobs/{later}")).await.text(),
        "succeeded"
    );
    assert_eq!(
        client
            .post(&format!("/jobs/{later}/discard"))
            .await
            .status(),
        204
    );
    assert_eq!(
        client.get(&format!("/jobs/{later}")).await.text(),
        "discarded"
    );

    for unknown in ["/jobs/999", "/jobs/999/cancel"] {
        let response = if unknown.ends_with("cancel") {
            client.post(unknown).await
        } else {
            client.get(unknown).await
        };
        assert_eq!(response.status(), 404, "{unknown}");
        assert_eq!(response.json()["code"], "not_found");
    }
}

/// A job stored with fewer attempts than its type's policy allows (through the store, or
/// before the policy changed) ends at the store's limit: its failure is final at once,
/// reported then, and not counted as a retry.
#[tokio::test]
async fn the_stores_attempt_limit_holds_over_a_longer_policy() {
    let (store, _path) = store().await;
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let (errands, mut ran) = runtime(&store, &reports);
    let id = store
        .enqueue(NewJob::new("flaky", serde_json::json!({"succeed_on": 9})))
        .await
        .unwrap()
        .id();
    let _ = errands.jobs();
    assert_eq!(next(&mut ran).await, "attempt 1");
    common::idle(&errands).await;
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Failed, 1));
    assert_eq!(
        *reports.lock().unwrap(),
        [format!(
            r#"Some("flaky"): provider down (attempt 1) [job:{id}:1]"#
        )],
        "reported by the attempt that ended it"
    );
    let stats = errands.stats();
    assert_eq!((stats.succeeded, stats.failed), (0, 1), "{stats:?}");
}
