//! [`AnyStore`]: the store a runtime keeps, whichever database it is on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::state::{JobAttempt, JobFilter, JobId, JobState, JobStatus, QueueCounts};
use super::store::{Claimed, Enqueued, NewJob, Store, StoreError};

/// One of the stores this build has: what [`ErrandsBuilder::durable`](crate::ErrandsBuilder::durable)
/// takes (`.durable(store)` with a `SqliteStore` or a `PgStore` converts), and what
/// [`Jobs::store`](crate::jobs::Jobs::store) gives back for operator actions.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// SQLite (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite(super::SqliteStore),
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(super::PgStore),
}

#[cfg(feature = "sqlite")]
impl From<super::SqliteStore> for AnyStore {
    fn from(store: super::SqliteStore) -> Self {
        AnyStore::Sqlite(store)
    }
}

#[cfg(feature = "postgres")]
impl From<super::PgStore> for AnyStore {
    fn from(store: super::PgStore) -> Self {
        AnyStore::Postgres(store)
    }
}

impl AnyStore {
    /// The database's name: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match *self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => "postgres",
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            _ => unreachable!("no store in this build"),
        }
    }
}

/// Forwards a call to the store inside.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($store) => $call.await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $call.await,
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            _ => unreachable!("no store in this build"),
        }
    };
}

impl Store for AnyStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        each!(self, store => store.enqueue(job))
    }

    async fn release(&self, id: JobId) -> Result<bool, StoreError> {
        each!(self, store => store.release(id))
    }

    async fn skip(&self, id: JobId, reason: &str) -> Result<bool, StoreError> {
        each!(self, store => store.skip(id, reason))
    }

    async fn claim(
        &self,
        queue: &str,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        each!(self, store => store.claim(queue, owner, now, lease, limit))
    }

    async fn heartbeat(&self, id: JobId, token: i64, until: SystemTime) -> Result<(), StoreError> {
        each!(self, store => store.heartbeat(id, token, until))
    }

    async fn complete(&self, id: JobId, token: i64) -> Result<(), StoreError> {
        each!(self, store => store.complete(id, token))
    }

    async fn fail(
        &self,
        id: JobId,
        token: i64,
        error: &str,
        retry_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        each!(self, store => store.fail(id, token, error, retry_at))
    }

    async fn rescue(&self, now: SystemTime) -> Result<Vec<JobId>, StoreError> {
        each!(self, store => store.rescue(now))
    }

    async fn give_back(&self, id: JobId, token: i64) -> Result<(), StoreError> {
        each!(self, store => store.give_back(id, token))
    }

    async fn requeue(&self, owner: &str) -> Result<u64, StoreError> {
        each!(self, store => store.requeue(owner))
    }

    async fn cancel(&self, id: JobId) -> Result<(), StoreError> {
        each!(self, store => store.cancel(id))
    }

    async fn retry(&self, id: JobId, now: SystemTime) -> Result<(), StoreError> {
        each!(self, store => store.retry(id, now))
    }

    async fn discard(&self, id: JobId) -> Result<(), StoreError> {
        each!(self, store => store.discard(id))
    }

    async fn status(&self, id: JobId) -> Result<JobStatus, StoreError> {
        each!(self, store => store.status(id))
    }

    async fn unreported(
        &self,
        now: SystemTime,
        claim: Duration,
        limit: u32,
    ) -> Result<Vec<JobStatus>, StoreError> {
        each!(self, store => store.unreported(now, claim, limit))
    }

    async fn queues(&self, now: SystemTime) -> Result<Vec<QueueCounts>, StoreError> {
        each!(self, store => store.queues(now))
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobStatus>, StoreError> {
        each!(self, store => store.jobs(filter))
    }

    async fn attempts(&self, id: JobId) -> Result<Vec<JobAttempt>, StoreError> {
        each!(self, store => store.attempts(id))
    }

    async fn counts(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        each!(self, store => store.counts())
    }

    async fn reported(&self, id: JobId) -> Result<(), StoreError> {
        each!(self, store => store.reported(id))
    }

    async fn alive(&self, owner: &str, until: SystemTime) -> Result<(), StoreError> {
        each!(self, store => store.alive(owner, until))
    }

    async fn release_orphans(&self, now: SystemTime) -> Result<Vec<JobId>, StoreError> {
        each!(self, store => store.release_orphans(now))
    }

    async fn leave(&self, owner: &str) -> Result<u64, StoreError> {
        each!(self, store => store.leave(owner))
    }

    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        each!(self, store => store.prune(before))
    }

    async fn wait_for_jobs(&self, wake: Arc<Notify>) {
        each!(self, store => store.wait_for_jobs(wake))
    }
}
