//! What the SQLite sides of the durable jobs benchmark share (bench/jobs/errands and
//! bench/jobs/apalis, each including this file with `#[path]`): their own options, the
//! database files and how they are opened, and the check that the store recorded every job.
//!
//! Every measure gets a fresh database file in `--dir`, in WAL mode with the `--synchronous`
//! setting.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

/// Minutes a drain or the pickup measure may take before the run fails.
pub const ALL_RAN_MINUTES: u64 = 10;

/// The SQLite sides' own options.
pub struct Files {
    pub dir: PathBuf,
    pub synchronous: SqliteSynchronous,
}

pub type Options = crate::measure::Options<Files>;

/// The options, the database files in `target/bench-jobs-data/<system>` unless `--dir` says.
pub fn options(system: &str) -> Options {
    let files = Files {
        dir: PathBuf::from(format!("target/bench-jobs-data/{system}")),
        synchronous: SqliteSynchronous::Normal,
    };
    crate::measure::options(files, |files, key, value| {
        match key {
            "--dir" => files.dir = PathBuf::from(value),
            "--synchronous" => {
                files.synchronous = value.parse().expect("off, normal, full or extra")
            }
            _ => return false,
        }
        true
    })
}

/// The measure's database file, `<name>.db` in `--dir`, removed with its WAL and shared
/// memory files if a run left them.
pub fn fresh(o: &Options, name: &str) -> PathBuf {
    let path = o.store.dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

pub fn connect_options(o: &Options, path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(o.store.synchronous)
}

/// Seconds from `began` until `query` counts `jobs` (checked after the timed window, so that
/// the check itself does not load the database while it is measured).
pub async fn recorded(pool: &SqlitePool, query: &'static str, jobs: u64, began: Instant) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        if done as u64 >= jobs {
            return began.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "{done} of {jobs} jobs recorded");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
