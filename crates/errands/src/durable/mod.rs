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
//!   that until [`Store::reported`] is called, so a report interrupted by a crash is delivered
//!   by the next process ([`Store::unreported`]), with the job id and attempt as its key.
//! * **Held jobs.** A job enqueued for its request's `after_route` or `after_response` moment
//!   is `held`, owned by the process that serves the request, and released
//!   ([`Store::release`]) or skipped ([`Store::skip`]) when that moment comes. Each process
//!   renews its heartbeat ([`Store::alive`]); when it dies first, [`Store::release_orphans`]
//!   releases its held jobs once the heartbeat ran out — their enqueue committed, so the work
//!   happens (at least once) even though its request's end was never seen. A process that
//!   stops releases what it still holds ([`Store::leave`]).
//! * **Unique jobs.** A job enqueued with a unique key is refused while another unfinished job
//!   of its type holds the key; the live job's id comes back ([`Enqueued::Duplicate`]).

mod state;
mod store;

#[cfg(feature = "sqlite")]
mod sqlite;

pub use state::{JobId, JobState, JobStatus};
pub use store::{Claimed, Enqueued, NewJob, Store, StoreError};

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
