//! The crash matrix: a real demo process killed with `SIGKILL` at each named crash point of
//! a payment's life, many times per point, then restarted on the same database file. Each
//! run checks that the payment was not lost, not stuck after the lease and a grace period,
//! charged twice only when its job was in flight at the kill, and that a declined payment's
//! failure was reported (and alerted) once. The table goes to `target/crash-matrix.md`; the
//! published one is in `docs/RELIABILITY.md`.
//!
//! `ERRANDS_CRASH_KILLS` sets the kills per point (default 20).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Demo;
use serde_json::json;

/// Every crash point, and whether a payment's job is in flight there (so that a second
/// call to the provider is expected, at least once).
const POINTS: [(&str, bool); 7] = [
    ("before_commit", false),
    ("after_commit", false),
    ("mid_body", false),
    ("release", false),
    ("mid_task", true),
    ("completion_write", true),
    ("report_write", false),
];

const LEASE_MS: &str = "1000";

/// How long after the restart a payment may take before it counts as stuck: the lease,
/// and a grace period for a loaded machine.
const GRACE: Duration = Duration::from_secs(20);

/// How many crash runs go at once.
const PARALLEL: usize = 3;

/// What one crash run found.
#[derive(Default, Clone, Copy)]
struct Run {
    committed: bool,
    lost: bool,
    stuck: bool,
    charged_twice: bool,
    unreported: bool,
    inconsistent: bool,
    seconds: f64,
}

/// A database with one user and one placed order, its welcome email sent.
async fn seed() -> PathBuf {
    let mut demo = Demo::start(&[]).await;
    let order = demo.order("ada@example.com").await;
    assert_eq!(order, 1);
    demo.wait_for("welcome email sent").await;
    demo.signal("-TERM");
    assert!(demo.finish().await.success());
    let seed = common::new_database();
    copy(demo.database(), &seed);
    seed
}

/// Copies a SQLite database with its write-ahead log.
fn copy(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let with = |path: &Path| {
            let mut path = path.as_os_str().to_owned();
            path.push(suffix);
            PathBuf::from(path)
        };
        if with(from).exists() {
            std::fs::copy(with(from), with(to)).unwrap();
        }
    }
}

async fn crash_once(seed: &Path, point: &'static str) -> Run {
    let started = Instant::now();
    let database = common::new_database();
    copy(seed, &database);
    let armed = [
        "--fault-injection",
        "--crash-at",
        point,
        "--job-lease-ms",
        LEASE_MS,
    ];
    let mut demo = Demo::start_on(database, &armed).await;
    let declined = point == "report_write";
    let card = if declined { "declined" } else { "ok" };
    let payment = demo
        .http
        .post(demo.url("/orders/1/payments"))
        .json(&json!({"card": card, "processing_ms": 20}))
        .send();
    let payment = tokio::spawn(payment);
    demo.wait_for("crash point reached").await;
    demo.kill().await;
    let _ = payment.await; // a reset connection, or the 202 sent before the crash

    let mut next = demo.restart(&["--job-lease-ms", LEASE_MS]).await;
    let mut db = next.open_database().await;
    let committed: Option<String> = sqlx::query_scalar("SELECT status FROM payments WHERE id = 1")
        .fetch_optional(&mut db)
        .await
        .unwrap();
    let mut run = Run {
        committed: committed.is_some(),
        ..Run::default()
    };
    if run.committed {
        let done = if declined {
            "on-call alerted"
        } else {
            "payment processed"
        };
        run.stuck = next.try_wait_for(done, GRACE).await.is_none();
    }
    next.signal("-TERM");
    let status = next.finish().await;
    assert!(
        status.success(),
        "{point}: the restarted process stopped with {status:?}:\n{}",
        next.seen.join("\n")
    );

    let facts = Facts {
        payment: sqlx::query_scalar("SELECT status FROM payments WHERE id = 1")
            .fetch_optional(&mut db)
            .await
            .unwrap(),
        order: sqlx::query_scalar("SELECT status FROM orders WHERE id = 1")
            .fetch_one(&mut db)
            .await
            .unwrap(),
        job: sqlx::query_as(
            "SELECT state, report_owed FROM errands_jobs WHERE kind = 'process_payment'",
        )
        .fetch_optional(&mut db)
        .await
        .unwrap(),
        calls: sqlx::query_scalar("SELECT COUNT(*) FROM provider_calls")
            .fetch_one(&mut db)
            .await
            .unwrap(),
        alerts: sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
            .fetch_one(&mut db)
            .await
            .unwrap(),
    };
    facts.classify(run, declined, started)
}

/// What the database says of one payment after its crash run.
struct Facts {
    payment: Option<String>,
    order: String,
    /// The payment's job: its state, and whether its report is still owed.
    job: Option<(String, i64)>,
    /// Calls to the provider for the payment.
    calls: i64,
    /// On-call alerts about the payment.
    alerts: i64,
}

impl Facts {
    fn classify(self, mut run: Run, declined: bool, started: Instant) -> Run {
        let finished = |state: &str| !["held", "available", "running"].contains(&state);
        let job = &self.job;
        run.lost = run.committed
            && match job {
                None => true,
                Some((state, _)) => self.payment.as_deref() == Some("pending") && finished(state),
            };
        run.stuck |= job.as_ref().is_some_and(|(state, _)| !finished(state));
        run.charged_twice = self.calls > 1;
        run.unreported = declined
            && run.committed
            && (self.alerts != 1 || job.as_ref().is_none_or(|(_, owed)| *owed != 0));
        run.inconsistent = (self.order == "paid") != (self.payment.as_deref() == Some("succeeded"))
            || (!run.committed && (job.is_some() || self.calls > 0));
        run.seconds = started.elapsed().as_secs_f64();
        run
    }
}

/// The table of `runs` by point; the failures, if any.
fn table(runs: &[Vec<Run>]) -> (String, Vec<String>) {
    let mut report = String::from(
        "| crash point | kills | committed | lost | stuck after lease + grace | charged twice | failures unreported | slowest run (s) |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for ((point, in_flight), runs) in POINTS.iter().zip(runs) {
        let count = |f: fn(&Run) -> bool| runs.iter().filter(|r| f(r)).count();
        let (lost, stuck, twice, unreported, inconsistent) = (
            count(|r| r.lost),
            count(|r| r.stuck),
            count(|r| r.charged_twice),
            count(|r| r.unreported),
            count(|r| r.inconsistent),
        );
        let slowest = runs.iter().map(|r| r.seconds).fold(0.0, f64::max);
        report.push_str(&format!(
            "| `{point}` | {} | {} | {lost} | {stuck} | {twice} | {unreported} | {slowest:.1} |\n",
            runs.len(),
            count(|r| r.committed),
        ));
        if lost + stuck + unreported + inconsistent > 0 || (!in_flight && twice > 0) {
            failures.push(format!(
                "{point}: lost {lost}, stuck {stuck}, unreported {unreported}, inconsistent {inconsistent}, charged twice {twice}"
            ));
        }
    }
    (report, failures)
}

/// Kills per point: `ERRANDS_CRASH_KILLS`, 20 by default.
fn kills() -> usize {
    std::env::var("ERRANDS_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

/// Writes the table to `target/NAME` and prints it; fails on any failure.
fn publish(name: &str, runs: &[Vec<Run>]) {
    let (report, failures) = table(runs);
    println!("{report}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(name);
    let _ = std::fs::write(target, &report);
    assert!(failures.is_empty(), "{failures:?}\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_loses_nothing_strands_nothing_and_reports_every_failure() {
    let kills = kills();
    let seed = Arc::new(seed().await);
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut runs = tokio::task::JoinSet::new();
    for (index, (point, _)) in POINTS.iter().enumerate() {
        for _ in 0..kills {
            let (seed, slots) = (seed.clone(), slots.clone());
            runs.spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                (index, crash_once(&seed, point).await)
            });
        }
    }
    let mut table = vec![Vec::new(); POINTS.len()];
    while let Some(done) = runs.join_next().await {
        let (index, run) = done.expect("a crash run panicked");
        table[index].push(run);
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = seed.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }

    publish("crash-matrix.md", &table);
}

/// The matrix on PostgreSQL with three processes, all armed at the point: the first to reach
/// it is killed, and the two others — with a new process in the place of the killed one —
/// finish its work. One database per point, one order per kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_three_processes_lose_nothing_at_any_crash_point() {
    if std::env::var("ERRANDS_TEST_POSTGRES").is_err() {
        eprintln!(
            "PostgreSQL crash matrix skipped; run it with \
             ERRANDS_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres"
        );
        return;
    }
    let kills = kills();
    let slots = Arc::new(tokio::sync::Semaphore::new(2));
    let mut points = tokio::task::JoinSet::new();
    for (index, (point, _)) in POINTS.iter().enumerate() {
        let slots = slots.clone();
        points.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            (index, postgres_point(point, kills).await)
        });
    }
    let mut table = vec![Vec::new(); POINTS.len()];
    while let Some(done) = points.join_next().await {
        let (index, runs) = done.expect("a crash point's runs panicked");
        table[index] = runs;
    }
    publish("crash-matrix-postgres.md", &table);
}

async fn postgres_point(point: &'static str, kills: usize) -> Vec<Run> {
    let test = format!("postgres_crash_{point}");
    let db = common::postgres::database(&test).await.unwrap();
    let url = PathBuf::from(&db.url);
    // The orders, placed before any process is armed (a sign-up releases a job).
    let mut seeding = Demo::start_on(url.clone(), &[]).await;
    for n in 1..=kills {
        seeding.order(&format!("buyer{n}@example.com")).await;
    }
    for _ in 1..=kills {
        seeding.wait_for("welcome email sent").await;
    }
    seeding.signal("-TERM");
    assert!(seeding.finish().await.success());

    let marker = common::new_database().with_extension("crashed");
    let marker_arg = marker.to_string_lossy().into_owned();
    let armed = [
        "--fault-injection",
        "--crash-at",
        point,
        "--crash-once",
        &marker_arg,
        "--job-lease-ms",
        LEASE_MS,
    ];
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(Demo::start_on(url.clone(), &armed).await);
    }
    let pool = db.pool(2).await;
    let mut runs = Vec::new();
    for order in 1..=i64::try_from(kills).unwrap() {
        let started = Instant::now();
        let _ = std::fs::remove_file(&marker); // armed again
        let declined = point == "report_write";
        let paying = {
            let front = &processes[0];
            let request = front
                .http
                .post(front.url(&format!("/orders/{order}/payments")))
                .json(
                    &json!({"card": if declined { "declined" } else { "ok" }, "processing_ms": 20}),
                );
            tokio::spawn(request.send())
        };
        let crashed = {
            let mut waiting: Vec<&mut Demo> = processes.iter_mut().collect();
            either(&mut waiting, &["crash point reached"], common::PATIENCE)
                .await
                .expect("a process reached the crash point")
        };
        processes[crashed].kill().await;
        let _ = paying.await;
        processes[crashed] = Demo::start_on(url.clone(), &armed).await;

        let payment: Option<(i64, String)> =
            sqlx::query_as("SELECT id, status FROM payments WHERE order_id = $1")
                .bind(order)
                .fetch_optional(&pool)
                .await
                .unwrap();
        let mut run = Run {
            committed: payment.is_some(),
            ..Run::default()
        };
        if let Some((payment, _)) = payment {
            let id = format!("\"payment_id\":{payment}");
            let done = if declined {
                ["report left owed", "process_payment"]
            } else {
                ["payment processed", id.as_str()]
            };
            let mut waiting: Vec<&mut Demo> = processes.iter_mut().collect();
            run.stuck = either(&mut waiting, &done, GRACE).await.is_none();
        }
        run.seconds = started.elapsed().as_secs_f64();
        runs.push((order, run));
        // Every process idle before the point is armed again: none is still finishing this
        // payment (passing a point it would otherwise stop at).
        for process in &processes {
            assert!(process.get("/ops/idle").await.status().is_success());
        }
    }
    // Every process stops, so that what it was still writing (a report's record) is written;
    // the marker stays until then, so that none stops at the point again.
    for process in &mut processes {
        process.signal("-TERM");
        let status = process.finish().await;
        assert!(status.success(), "{point}: {status:?}");
    }
    let _ = std::fs::remove_file(&marker);
    let declined = point == "report_write";
    let mut classified = Vec::new();
    for (order, run) in runs {
        let facts = postgres_facts(&pool, order).await;
        let seconds = run.seconds;
        let mut run = facts.classify(run, declined, Instant::now());
        run.seconds = seconds;
        classified.push(run);
    }
    pool.close().await;
    db.finish(&test).await;
    classified
}

/// What the database says of the payment of `order`.
async fn postgres_facts(pool: &sqlx::PgPool, order: i64) -> Facts {
    let job: Option<(i64, String, i32)> = sqlx::query_as(
        "SELECT id, state, report_owed FROM errands.jobs WHERE kind = 'process_payment' \
         AND (fields::jsonb ->> 'order_id')::bigint = $1",
    )
    .bind(order)
    .fetch_optional(pool)
    .await
    .unwrap();
    Facts {
        payment: sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap(),
        order: sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(pool)
            .await
            .unwrap(),
        calls: sqlx::query_scalar(
            "SELECT COUNT(*) FROM provider_calls c JOIN payments p ON p.id = c.payment_id \
             WHERE p.order_id = $1",
        )
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap(),
        alerts: match &job {
            Some((id, _, _)) => sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE key LIKE $1")
                .bind(format!("job:{id}:%"))
                .fetch_one(pool)
                .await
                .unwrap(),
            None => 0,
        },
        job: job.map(|(_, state, owed)| (state, i64::from(owed))),
    }
}

/// Waits up to `patience` until one of `demos` logs a line with every needle; which one did.
async fn either(demos: &mut [&mut Demo], needles: &[&str], patience: Duration) -> Option<usize> {
    let waits = demos.iter_mut().enumerate().map(|(i, demo)| {
        Box::pin(async move { demo.try_wait_for_all(needles, patience).await.map(|_| i) })
    });
    let mut pending: Vec<_> = waits.collect();
    while !pending.is_empty() {
        let (found, _, rest) = futures_util::future::select_all(pending).await;
        if found.is_some() {
            return found;
        }
        pending = rest;
    }
    None
}
