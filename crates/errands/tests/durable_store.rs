//! The durable store contract (`errands::durable`), as a conformance suite: every rule of the
//! state machine against a real store. Each check is a function generic over `Store`, so the
//! PostgreSQL store runs the very same suite; here, SQLite (a real database file).
#![cfg(feature = "sqlite")]

use std::time::{Duration, SystemTime};

mod common;

use errands::durable::{
    Enqueued, JobFilter, JobId, JobState, NewJob, SqliteStore, Store, StoreError,
};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

async fn sqlite() -> (SqliteStore, tempfile_path::TempPath) {
    let path = tempfile_path::TempPath::new();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path.path())
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    (SqliteStore::new(pool).await.unwrap(), path)
}

/// A unique database file, removed when dropped.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            TempPath(std::env::temp_dir().join(format!(
                "errands-store-{}-{}.db",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }
}

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({"order": 7}))
}

/// The reports owed, claimed for no time, each look later than the one before (so the next
/// look sees them again).
async fn owed(store: &impl Store) -> Result<Vec<errands::durable::JobStatus>, StoreError> {
    static LOOKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let look = LOOKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = SystemTime::now() + LEASE * 10 * look;
    store.unreported(now, Duration::ZERO, 10).await
}

fn later(seconds: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(seconds)
}

async fn claims_run_due_jobs_once_in_order_and_complete_under_their_token(store: &impl Store) {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let first = store
        .enqueue(job("a").traceparent(TRACE))
        .await
        .unwrap()
        .id();
    let second = store.enqueue(job("b")).await.unwrap().id();
    let future = store
        .enqueue(job("c").run_at(later(3600)))
        .await
        .unwrap()
        .id();
    let claimed = store
        .claim("default", "p1", SystemTime::now(), LEASE, 10)
        .await
        .unwrap();
    let ids: Vec<_> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(ids, [first, second], "due jobs only, oldest first");
    assert_eq!(claimed[0].args, json!({"order": 7}));
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(claimed[0].traceparent.as_deref(), Some(TRACE));
    assert_eq!(claimed[1].traceparent, None);
    assert!(
        store
            .claim("default", "p2", SystemTime::now(), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "a running job is not claimed twice"
    );
    store.complete(first, claimed[0].token).await.unwrap();
    assert_eq!(
        store.status(first).await.unwrap().state,
        JobState::Succeeded
    );
    assert!(matches!(
        store.complete(first, claimed[0].token).await,
        Err(StoreError::Stale(_))
    ));
    assert_eq!(
        store.status(future).await.unwrap().state,
        JobState::Available
    );
}

async fn a_stale_attempt_cannot_overwrite_the_newer_one(store: &impl Store) {
    let id = store.enqueue(job("a").max_attempts(3)).await.unwrap().id();
    let now = SystemTime::now();
    let old = store.claim("default", "p1", now, LEASE, 1).await.unwrap();
    // The first worker hangs past its lease: rescued, then claimed again.
    let rescued = store.rescue(now + LEASE * 2).await.unwrap();
    assert_eq!(rescued, [id]);
    let new = store
        .claim("default", "p2", now + LEASE * 2, LEASE, 1)
        .await
        .unwrap();
    assert_eq!(new[0].attempt, 2);
    assert_ne!(new[0].token, old[0].token);
    for stale in [
        store.complete(id, old[0].token).await,
        store.fail(id, old[0].token, "late", None).await,
        store.heartbeat(id, old[0].token, later(60)).await,
    ] {
        assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    }
    store
        .heartbeat(id, new[0].token, now + LEASE * 4)
        .await
        .unwrap();
    assert!(
        store.rescue(now + LEASE * 3).await.unwrap().is_empty(),
        "the heartbeat extended the lease"
    );
    store.complete(id, new[0].token).await.unwrap();
    assert_eq!(store.status(id).await.unwrap().state, JobState::Succeeded);
}

async fn failures_retry_until_the_attempts_run_out_and_then_owe_a_report(store: &impl Store) {
    let id = store.enqueue(job("a").max_attempts(2)).await.unwrap().id();
    let now = SystemTime::now();
    store.alive("p", now + LEASE).await.unwrap();
    let first = store.claim("default", "p", now, LEASE, 1).await.unwrap();
    store
        .fail(id, first[0].token, "smtp down", Some(now))
        .await
        .unwrap();
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Available, 1));
    assert!(
        owed(store).await.unwrap().is_empty(),
        "a retry is not reported"
    );
    let second = store.claim("default", "p", now, LEASE, 1).await.unwrap();
    store
        .fail(id, second[0].token, "smtp down", Some(now))
        .await
        .unwrap();
    let status = store.status(id).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Failed, 2));
    assert_eq!(status.last_error.as_deref(), Some("smtp down"));
    // The process that failed it delivers the report: no other is given it while it lives.
    assert!(store.unreported(now, LEASE, 10).await.unwrap().is_empty());
    // Once it died, one process claims it; another is not given it while the claim holds,
    // and is once it ran out (the first died before delivering it too).
    let later = now + LEASE * 2;
    let claimed = store.unreported(later, LEASE, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|s| s.id).collect::<Vec<_>>(), [id]);
    assert!(store.unreported(later, LEASE, 10).await.unwrap().is_empty());
    let again = store
        .unreported(later + LEASE * 2, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|s| s.id).collect::<Vec<_>>(), [id]);
    store.reported(id).await.unwrap();
    assert!(owed(store).await.unwrap().is_empty());
}

async fn an_operators_retry_starts_a_new_run_whose_attempts_count_on(store: &impl Store) {
    let id = store.enqueue(job("a").max_attempts(2)).await.unwrap().id();
    let now = SystemTime::now();
    // Two runs of two attempts, each failing: the numbers go on, the runs count from 1.
    for run in 0..2 {
        if run > 0 {
            store.retry(id, now).await.unwrap();
            let status = store.status(id).await.unwrap();
            assert_eq!(
                (status.state, status.attempt, status.max_attempts),
                (JobState::Available, 2, 4)
            );
        }
        for in_run in 1..=2 {
            let claimed = store.claim("default", "p", now, LEASE, 1).await.unwrap();
            assert_eq!(
                (claimed[0].attempt, claimed[0].run_attempt),
                (run * 2 + in_run, in_run)
            );
            let error = format!("smtp down {}", claimed[0].attempt);
            store
                .fail(id, claimed[0].token, &error, Some(now))
                .await
                .unwrap();
        }
        assert_eq!(store.status(id).await.unwrap().state, JobState::Failed);
    }
    let history: Vec<u32> = store
        .attempts(id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(history, [1, 2, 3, 4], "each attempt keeps its own number");
}

async fn an_expired_lease_without_attempts_left_fails_and_owes_a_report(store: &impl Store) {
    let id = store.enqueue(job("a")).await.unwrap().id();
    let now = SystemTime::now();
    store.claim("default", "p", now, LEASE, 1).await.unwrap();
    assert_eq!(store.rescue(now + LEASE * 2).await.unwrap(), [id]);
    let status = store.status(id).await.unwrap();
    assert_eq!(status.state, JobState::Failed);
    assert!(status.last_error.unwrap().contains("lease expired"));
    assert_eq!(owed(store).await.unwrap().len(), 1);
}

async fn held_jobs_wait_for_their_release_or_are_skipped(store: &impl Store) {
    let released = store
        .enqueue(job("a").held("req-1", "p1"))
        .await
        .unwrap()
        .id();
    let skipped = store
        .enqueue(job("b").held("req-2", "p1"))
        .await
        .unwrap()
        .id();
    let now = SystemTime::now();
    assert!(
        store
            .claim("default", "w", now, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.release(released).await.unwrap());
    assert!(!store.release(released).await.unwrap(), "released once");
    assert!(
        store
            .skip(skipped, "the response status was 500")
            .await
            .unwrap()
    );
    assert!(
        !store.release(skipped).await.unwrap(),
        "a skipped job stays skipped"
    );
    let claimed = store.claim("default", "w", now, LEASE, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [released]);
    let status = store.status(skipped).await.unwrap();
    assert_eq!(status.state, JobState::Skipped);
    assert_eq!(owed(store).await.unwrap()[0].id, skipped);
}

async fn held_jobs_of_a_process_that_died_are_released_when_its_heartbeat_ran_out(
    store: &impl Store,
) {
    let now = SystemTime::now();
    store.alive("dead", now + LEASE).await.unwrap();
    store.alive("live", now + 3 * LEASE).await.unwrap();
    let orphan = store
        .enqueue(job("a").held("req-1", "dead"))
        .await
        .unwrap()
        .id();
    let kept = store
        .enqueue(job("b").held("req-2", "live"))
        .await
        .unwrap()
        .id();
    let never_beat = store
        .enqueue(job("c").held("req-3", "gone"))
        .await
        .unwrap()
        .id();
    assert_eq!(
        store.release_orphans(now).await.unwrap(),
        [never_beat],
        "only a process with no heartbeat at all is dead now"
    );
    let after_lease = now + 2 * LEASE;
    assert_eq!(store.release_orphans(after_lease).await.unwrap(), [orphan]);
    assert!(store.release_orphans(after_lease).await.unwrap().is_empty());
    assert_eq!(store.status(kept).await.unwrap().state, JobState::Held);
    store.alive("live", after_lease + LEASE).await.unwrap();
    // The live process stops: what it still holds is released, at once.
    assert_eq!(store.leave("live").await.unwrap(), 1);
    let claimed = store
        .claim("default", "w", after_lease, LEASE, 10)
        .await
        .unwrap();
    let mut ids: Vec<_> = claimed.iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, [orphan, kept, never_beat]);
}

async fn concurrent_enqueues_are_all_stored_once(store: &impl Store) {
    let enqueues = (0..200).map(|n| store.enqueue(NewJob::new("a", json!({"n": n}))));
    let ids: Vec<_> = futures_util::future::join_all(enqueues)
        .await
        .into_iter()
        .map(|enqueued| enqueued.unwrap().id())
        .collect();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 200);
    assert_eq!(store.counts().await.unwrap(), [(JobState::Available, 200)]);
}

/// Completions arriving together are written together, each still fenced by its own token:
/// a stale one among them is refused alone.
async fn concurrent_completions_are_each_fenced(store: &impl Store) {
    for n in 0..50 {
        store
            .enqueue(NewJob::new("a", json!({"n": n})))
            .await
            .unwrap();
    }
    let claimed = store
        .claim("default", "w", SystemTime::now(), LEASE, 50)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 50);
    let stale = claimed[7].id;
    let completions = claimed.iter().map(|job| {
        let token = if job.id == stale {
            job.token - 1
        } else {
            job.token
        };
        store.complete(job.id, token)
    });
    let results = futures_util::future::join_all(completions).await;
    for (job, result) in claimed.iter().zip(results) {
        match result {
            Err(StoreError::Stale(id)) => assert_eq!(id, stale),
            other => {
                assert!(other.is_ok(), "{other:?}");
                assert_ne!(job.id, stale);
            }
        }
    }
    assert_eq!(
        store.counts().await.unwrap(),
        [(JobState::Running, 1), (JobState::Succeeded, 49)]
    );
}

/// Each attempt that ended with an error — a failure, an expired lease — is kept in the job's
/// history, oldest first; a shutdown's requeue is not an attempt; the history goes with the
/// job when it is pruned.
async fn attempts_that_ended_with_an_error_are_kept_until_the_job_is_pruned(store: &impl Store) {
    let id = store.enqueue(job("a").max_attempts(3)).await.unwrap().id();
    let claim = |now| store.claim("default", "w", now, LEASE, 1);
    let first = claim(SystemTime::now()).await.unwrap().remove(0);
    store
        .fail(
            id,
            first.token,
            "declined: card expired",
            Some(SystemTime::now()),
        )
        .await
        .unwrap();
    claim(SystemTime::now()).await.unwrap();
    assert_eq!(store.requeue("w").await.unwrap(), 1);
    let now = SystemTime::now();
    claim(now).await.unwrap();
    assert_eq!(store.rescue(now + LEASE * 2).await.unwrap(), [id]);
    let last = claim(now + LEASE * 2).await.unwrap().remove(0);
    store.fail(id, last.token, "declined", None).await.unwrap();

    let attempts = store.attempts(id).await.unwrap();
    let numbered: Vec<(u32, &str)> = attempts
        .iter()
        .map(|a| (a.attempt, a.error.as_str()))
        .collect();
    assert_eq!(numbered[0], (1, "declined: card expired"));
    assert_eq!(numbered[1].0, 2);
    assert!(numbered[1].1.contains("lease expired"), "{numbered:?}");
    assert_eq!(numbered[2], (3, "declined"));
    assert_eq!(numbered.len(), 3);
    let status = store.status(id).await.unwrap();
    let finished = status.finished_at.expect("failed for good");
    assert!(status.enqueued_at <= finished && attempts[2].finished_at <= later(1));
    assert!(
        store
            .attempts(JobId(id.0 + 1_000))
            .await
            .unwrap()
            .is_empty()
    );

    store.reported(id).await.unwrap();
    assert_eq!(store.prune(later(1)).await.unwrap(), 1);
    assert!(store.attempts(id).await.unwrap().is_empty());
}

/// Jobs are listed newest first, by state and by type, a page at a time.
async fn jobs_are_listed_newest_first_by_state_and_type(store: &impl Store) {
    let a1 = store.enqueue(job("a")).await.unwrap().id();
    let b = store.enqueue(job("b")).await.unwrap().id();
    let a2 = store.enqueue(job("a")).await.unwrap().id();
    store
        .claim("default", "w", SystemTime::now(), LEASE, 1)
        .await
        .unwrap();
    let ids = |jobs: Vec<errands::durable::JobStatus>| -> Vec<JobId> {
        jobs.into_iter().map(|job| job.id).collect()
    };
    assert_eq!(
        ids(store.jobs(&JobFilter::new()).await.unwrap()),
        [a2, b, a1]
    );
    let of_a = JobFilter::new().kind("a");
    assert_eq!(ids(store.jobs(&of_a).await.unwrap()), [a2, a1]);
    let running = JobFilter::new().state(JobState::Running);
    assert_eq!(ids(store.jobs(&running).await.unwrap()), [a1]);
    let next_page = JobFilter::new().before(a2).limit(1);
    assert_eq!(ids(store.jobs(&next_page).await.unwrap()), [b]);
    let none = JobFilter::new().kind("a").state(JobState::Failed);
    assert!(store.jobs(&none).await.unwrap().is_empty());
}

async fn jobs_are_counted_by_state(store: &impl Store) {
    assert!(store.counts().await.unwrap().is_empty());
    store.enqueue(job("a")).await.unwrap();
    store.enqueue(job("b")).await.unwrap();
    store.enqueue(job("c").held("req", "p")).await.unwrap();
    store
        .claim("default", "w", SystemTime::now(), LEASE, 1)
        .await
        .unwrap();
    assert_eq!(
        store.counts().await.unwrap(),
        [
            (JobState::Held, 1),
            (JobState::Available, 1),
            (JobState::Running, 1)
        ]
    );
}

async fn shutdown_requeues_running_jobs_without_counting_the_attempt(store: &impl Store) {
    let mine = store.enqueue(job("a")).await.unwrap().id();
    let now = SystemTime::now();
    let claimed = store
        .claim("default", "leaving", now, LEASE, 1)
        .await
        .unwrap();
    let other = store.enqueue(job("b")).await.unwrap().id();
    store
        .claim("default", "staying", SystemTime::now(), LEASE, 1)
        .await
        .unwrap();
    assert_eq!(store.requeue("leaving").await.unwrap(), 1);
    let status = store.status(mine).await.unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Available, 0));
    assert_eq!(store.status(other).await.unwrap().state, JobState::Running);
    assert!(matches!(
        store.complete(mine, claimed[0].token).await,
        Err(StoreError::Stale(_))
    ));
    let again = store
        .claim("default", "next", SystemTime::now(), LEASE, 1)
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].attempt), (mine, 1));
}

/// A claim this process could not start goes back alone, without its attempt, under its
/// token; the process's other running jobs keep running.
async fn a_claim_given_back_goes_back_alone(store: &impl Store) {
    let kept = store.enqueue(job("a")).await.unwrap().id();
    let refused = store.enqueue(job("b")).await.unwrap().id();
    let claimed = store
        .claim("default", "w", SystemTime::now(), LEASE, 2)
        .await
        .unwrap();
    let token = |id| claimed.iter().find(|c| c.id == id).unwrap().token;
    store.give_back(refused, token(refused)).await.unwrap();
    let back = store.status(refused).await.unwrap();
    assert_eq!((back.state, back.attempt), (JobState::Available, 0));
    assert_eq!(store.status(kept).await.unwrap().state, JobState::Running);
    assert!(matches!(
        store.give_back(refused, token(refused)).await,
        Err(StoreError::Stale(_))
    ));
    let again = store
        .claim("default", "w", SystemTime::now(), LEASE, 2)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (refused, 1));
    assert!(
        store.attempts(refused).await.unwrap().is_empty(),
        "not an attempt"
    );
}

async fn unique_keys_return_the_live_duplicate(store: &impl Store) {
    let first = store
        .enqueue(job("invoice").unique("order-7"))
        .await
        .unwrap();
    let again = store
        .enqueue(job("invoice").unique("order-7"))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate(first.id()));
    let other_type = store
        .enqueue(job("receipt").unique("order-7"))
        .await
        .unwrap();
    assert!(matches!(other_type, Enqueued::New(_)));
    // Once the first is finished, the key is free again.
    let now = SystemTime::now();
    let claimed = store.claim("default", "p", now, LEASE, 10).await.unwrap();
    for c in &claimed {
        store.complete(c.id, c.token).await.unwrap();
    }
    let later = store
        .enqueue(job("invoice").unique("order-7"))
        .await
        .unwrap();
    assert!(matches!(later, Enqueued::New(id) if id != first.id()));
}

async fn queues_are_claimed_apart(store: &impl Store) {
    let mail = store.enqueue(job("a").queue("mail")).await.unwrap().id();
    store.enqueue(job("b")).await.unwrap();
    let claimed = store
        .claim("mail", "p", SystemTime::now(), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [mail]);
    assert_eq!(store.status(mail).await.unwrap().queue, "mail");
}

async fn operators_cancel_retry_discard_and_prune(store: &impl Store) {
    let id = store.enqueue(job("a")).await.unwrap().id();
    store.cancel(id).await.unwrap();
    assert_eq!(store.status(id).await.unwrap().state, JobState::Cancelled);
    assert!(matches!(
        store.cancel(id).await,
        Err(StoreError::WrongState {
            state: JobState::Cancelled,
            ..
        })
    ));
    store.retry(id, SystemTime::now()).await.unwrap();
    assert_eq!(store.status(id).await.unwrap().state, JobState::Available);
    let now = SystemTime::now();
    let running = store.claim("default", "p", now, LEASE, 1).await.unwrap();
    assert!(matches!(
        store.discard(id).await,
        Err(StoreError::WrongState {
            state: JobState::Running,
            ..
        })
    ));
    store.complete(id, running[0].token).await.unwrap();
    let gone = store.enqueue(job("b")).await.unwrap().id();
    store.discard(gone).await.unwrap();
    assert!(matches!(
        store.status(errands::durable::JobId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.prune(later(1)).await.unwrap(), 2);
    assert!(matches!(
        store.status(id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Runs each check on a fresh store made by `$open`, which gives the store and what to clean
/// up (or nothing: the store's database is not available here).
macro_rules! conformance {
    ($open:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some((store, cleanup)) = $open(stringify!($check)).await else {
                    return;
                };
                super::$check(&store).await;
                cleanup.finish(stringify!($check)).await;
            }
        )+
    };
}

/// The checks, in one list for both stores.
macro_rules! every_check {
    ($open:path) => {
        conformance!(
            $open;
            claims_run_due_jobs_once_in_order_and_complete_under_their_token,
            a_stale_attempt_cannot_overwrite_the_newer_one,
            failures_retry_until_the_attempts_run_out_and_then_owe_a_report,
            an_operators_retry_starts_a_new_run_whose_attempts_count_on,
            an_expired_lease_without_attempts_left_fails_and_owes_a_report,
            held_jobs_wait_for_their_release_or_are_skipped,
            held_jobs_of_a_process_that_died_are_released_when_its_heartbeat_ran_out,
            jobs_are_counted_by_state,
            concurrent_enqueues_are_all_stored_once,
            concurrent_completions_are_each_fenced,
            attempts_that_ended_with_an_error_are_kept_until_the_job_is_pruned,
            jobs_are_listed_newest_first_by_state_and_type,
            shutdown_requeues_running_jobs_without_counting_the_attempt,
            a_claim_given_back_goes_back_alone,
            unique_keys_return_the_live_duplicate,
            queues_are_claimed_apart,
            operators_cancel_retry_discard_and_prune,
        );
    };
}

mod sqlite_store {
    use super::{SqliteStore, sqlite, tempfile_path::TempPath};

    async fn open(_: &str) -> Option<(SqliteStore, TempPath)> {
        Some(sqlite().await)
    }

    impl TempPath {
        async fn finish(self, _: &str) {}
    }

    every_check!(open);
}

#[cfg(feature = "postgres")]
mod postgres_store {
    use errands::durable::PgStore;

    use crate::common::postgres::{TestDb, database};

    async fn open(test: &str) -> Option<(PgStore, TestDb)> {
        let db = database(test).await?;
        let store = PgStore::new(db.pool(4).await).await.unwrap();
        Some((store, db))
    }

    every_check!(open);
}

#[tokio::test]
async fn a_job_enqueued_in_the_callers_transaction_rolls_back_with_it() {
    let (store, _file) = sqlite().await;
    sqlx::query("CREATE TABLE payments (id INTEGER PRIMARY KEY)")
        .execute(store.pool())
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO payments (id) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = SqliteStore::enqueue_in(&mut tx, job("charge"))
        .await
        .unwrap()
        .id();
    tx.rollback().await.unwrap();
    assert!(matches!(
        store.status(id).await,
        Err(StoreError::NotFound(_))
    ));

    let mut tx = store.pool().begin().await.unwrap();
    let id = SqliteStore::enqueue_in(&mut tx, job("charge"))
        .await
        .unwrap()
        .id();
    tx.commit().await.unwrap();
    assert_eq!(store.status(id).await.unwrap().state, JobState::Available);
}

#[tokio::test]
async fn the_schema_is_created_once_and_reopening_keeps_the_jobs() {
    let (store, file) = sqlite().await;
    let id = store.enqueue(job("a")).await.unwrap().id();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file.path());
    let reopened = SqliteStore::new(sqlx::SqlitePool::connect_with(options).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        reopened.status(id).await.unwrap().state,
        JobState::Available
    );
}

#[tokio::test]
async fn a_database_that_is_gone_is_a_clear_error() {
    let (store, _file) = sqlite().await;
    store.pool().close().await;
    let error = store.enqueue(job("a")).await.unwrap_err();
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
}
