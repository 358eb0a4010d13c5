//! The errands endpoints that `bench-errands` serves and `bench-instructions` drives, compiled
//! into each binary (`#[path]`), so both measure exactly the same handlers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use errands::{ScheduleError, Tasks};

/// Incremented by every task that ran.
pub static COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the task failed on purpose")
    }
}

impl std::error::Error for Failed {}

/// One `after_response` task that counts.
pub async fn task(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        COUNTER.fetch_add(1, Relaxed);
    })?;
    Ok("ok")
}

/// One `after_response` task that counts and fails.
pub async fn fail(tasks: Tasks) -> Result<&'static str, ScheduleError> {
    tasks.after_response().schedule(async {
        COUNTER.fetch_add(1, Relaxed);
        Err::<(), _>(Failed)
    })?;
    Ok("ok")
}
