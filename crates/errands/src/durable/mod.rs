//! Durable jobs: work that survives the process — a `kill -9`, a crash, a deploy past the
//! shutdown deadline (feature `sqlite`).
//!
//! This module holds the store contract — one schema and one state machine, whatever the
//! database — and its SQLite implementation, [`SqliteStore`]. The rules, enforced by every
//! store and checked by one conformance suite:
//!
//! * **States.** A job is `held` (waiting for its request's moment), `available` (runnable
//!   at its `run_at`), `running` (claimed under a lease), or finished: `succeeded`, `failed`
//!   (no attempts left), `cancelled`, `discarded` or `skipped`.
//! * **At-least-once, fenced.** [`Store::claim`] moves available jobs whose time has come to
//!   `running` under a lease, and gives each claim a new fencing token. A worker's heartbeat,
//!   completion or failure is written only while its token still holds: a worker whose lease
//!   expired and whose job was claimed again can never overwrite the newer attempt
//!   ([`StoreError::Stale`]).
//! * **Rescue.** A running job whose lease expired (its worker died or hung) is put back to
//!   `available` when it has attempts left, otherwise `failed`, by [`Store::rescue`].
//! * **Shutdown.** [`Store::requeue`] puts a process's running jobs back to `available`
//!   without counting the interrupted attempt: never lost, never stuck, never done.
//! * **Reports owed.** A job that ends `failed` or `skipped` owes a report; the store keeps
//!   that until [`Store::reported`] is called. The process that ended it delivers it; if that
//!   process dies first (its heartbeat runs out), another claims and delivers it
//!   ([`Store::unreported`]) — one process at a time — with the job id and attempt as its
//!   key. A job failed by a rescue owes its report to whichever process claims it.
//! * **Held jobs.** A job enqueued for its request's `after_route` or `after_response` moment
//!   is `held`, owned by the process that serves the request, and released
//!   ([`Store::release`]) or skipped ([`Store::skip`]) when that moment comes. Each process
//!   renews its heartbeat ([`Store::alive`]); when it dies first, [`Store::release_orphans`]
//!   releases its held jobs once the heartbeat ran out — their enqueue committed, so the work
//!   happens (at least once) even though its request's end was never seen. A process that
//!   stops releases what it still holds ([`Store::leave`]).
//! * **Operators' retries.** [`Store::retry`] makes a finished job runnable again in a new
//!   run with as many attempts as the last one allowed. Attempt numbers go on from the last
//!   one ([`Claimed::attempt`]; retry policies count [`Claimed::run_attempt`]), so each
//!   attempt's history entry and report key stay its own and an alert sink that
//!   de-duplicates by key never drops the new run's failure.
//! * **Unique jobs.** A job enqueued with a unique key is refused while another unfinished job
//!   of its type holds the key; the live job's id comes back ([`Enqueued::Duplicate`]).

mod any;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod batch;
mod connection;
mod state;
mod store;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use any::AnyStore;
pub use connection::JobConnection;
pub use state::{JobAttempt, JobFilter, JobId, JobState, JobStatus, QueueCounts};
pub use store::{Claimed, Enqueued, NewJob, Store, StoreError};

#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest error text kept with a job, in bytes.
const MAX_ERROR: usize = 4096;

/// Stored JSON text as a value; text that is not JSON (written by hand, say) as a string, so
/// that the worker reports it rather than the store failing.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// A stored count as a `u32`, saturating.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn count(stored: i64) -> u32 {
    u32::try_from(stored.max(0)).unwrap_or(u32::MAX)
}

/// A time as stored: Unix milliseconds.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn millis(at: SystemTime) -> i64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A stored time (Unix milliseconds) as a time.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn at(millis: i64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// Stored `(attempt, finished_at, error)` rows as [`JobAttempt`]s.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn attempts(rows: Vec<(i64, i64, String)>) -> Vec<JobAttempt> {
    rows.into_iter()
        .map(|(attempt, finished_at, error)| JobAttempt {
            attempt: count(attempt),
            finished_at: at(finished_at),
            error,
        })
        .collect()
}

/// Stored `(queue, held, available, running, oldest due)` rows as [`QueueCounts`].
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn queues(rows: Vec<(String, i64, i64, i64, Option<i64>)>) -> Vec<QueueCounts> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    rows.into_iter()
        .map(|(queue, held, available, running, oldest)| QueueCounts {
            queue,
            held: count(held),
            available: count(available),
            running: count(running),
            oldest_due: oldest.map(at),
        })
        .collect()
}

/// Stored `(state, count)` rows as counts by state, in the states' order.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn counts(rows: Vec<(String, i64)>) -> Vec<(JobState, u64)> {
    let mut counts: Vec<(JobState, u64)> = rows
        .into_iter()
        .filter_map(|(state, n)| Some((JobState::parse(&state)?, u64::try_from(n).ok()?)))
        .collect();
    counts.sort_by_key(|(state, _)| *state as u8);
    counts
}

/// An error text as stored: bounded.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn bounded(text: &str) -> String {
    crate::chain::bounded(text.to_owned(), MAX_ERROR)
}
