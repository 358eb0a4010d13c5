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

    let payment: Option<String> = sqlx::query_scalar("SELECT status FROM payments WHERE id = 1")
        .fetch_optional(&mut db)
        .await
        .unwrap();
    let order: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = 1")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let job: Option<(String, i64)> = sqlx::query_as(
        "SELECT state, report_owed FROM errands_jobs WHERE kind = 'process_payment'",
    )
    .fetch_optional(&mut db)
    .await
    .unwrap();
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM provider_calls")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let alerts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let finished = |state: &str| !["held", "available", "running"].contains(&state);
    run.lost = run.committed
        && match &job {
            None => true,
            Some((state, _)) => payment.as_deref() == Some("pending") && finished(state),
        };
    run.stuck |= job.as_ref().is_some_and(|(state, _)| !finished(state));
    run.charged_twice = calls > 1;
    run.unreported = declined
        && run.committed
        && (alerts != 1 || job.as_ref().is_none_or(|(_, owed)| *owed != 0));
    run.inconsistent = (order == "paid") != (payment.as_deref() == Some("succeeded"))
        || (!run.committed && (job.is_some() || calls > 0));
    run.seconds = started.elapsed().as_secs_f64();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_loses_nothing_strands_nothing_and_reports_every_failure() {
    let kills: usize = std::env::var("ERRANDS_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
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

    let mut report = String::from(
        "| crash point | kills | committed | lost | stuck after lease + grace | charged twice | failures unreported | slowest run (s) |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for ((point, in_flight), runs) in POINTS.iter().zip(&table) {
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
    println!("{report}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/crash-matrix.md");
    let _ = std::fs::write(target, &report);
    assert!(failures.is_empty(), "{failures:?}\n{report}");
}
