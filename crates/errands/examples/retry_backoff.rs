//! Retry with exponential backoff, declaratively: the task is a factory called for every
//! attempt; `on_error` runs once, after the last one.
//!
//! Run: `cargo run -p errands --example retry_backoff`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use errands::{Errands, RetryPolicy, TaskError, TaskInfo};

#[derive(Debug, thiserror::Error)]
#[error("upstream busy")]
struct Busy;

#[tokio::main]
async fn main() {
    let errands = Errands::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    errands
        .tasks()
        .immediate()
        .name("sync_inventory")
        .on_error(|info: TaskInfo, error: TaskError| async move {
            println!(
                "gave up on {} after {} attempts: {error}",
                info.name(),
                info.attempt()
            );
        })
        .retry(
            RetryPolicy::exponential(Duration::from_millis(50))
                .max_attempts(5)
                .max_delay(Duration::from_millis(400))
                .retry_on::<Busy>(),
        )
        .on_retry(|info, error| println!("attempt {} failed ({error}); retrying", info.attempt()))
        .schedule(move || {
            let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call < 3 {
                    return Err(Busy);
                }
                println!("attempt {call} succeeded");
                Ok(())
            }
        })
        .expect("scheduled");
    errands.idle().await;
    let stats = errands.stats();
    println!(
        "succeeded={} failed={} runs={}",
        stats.succeeded,
        stats.failed,
        calls.load(Ordering::SeqCst)
    );
}
