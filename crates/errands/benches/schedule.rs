//! Schedule-and-complete of empty tasks: errands against a bare `tokio::spawn`.
//!
//! Run: `cargo bench -p errands --bench schedule`. Each iteration schedules 1 000 empty tasks
//! and waits until all are complete (errands: `idle()`; tokio: every `JoinHandle`), on a
//! current-thread runtime so the figures are about the work, not the scheduler's threads.
//! divan also counts allocations per iteration.

use divan::{AllocProfiler, Bencher};
use errands::Errands;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const TASKS: usize = 1000;

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[divan::bench]
fn tokio_spawn(bencher: Bencher) {
    let rt = runtime();
    bencher.counter(TASKS).bench_local(|| {
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS).map(|_| tokio::spawn(async {})).collect();
            for handle in handles {
                handle.await.expect("the task completes");
            }
        })
    });
}

#[divan::bench]
fn errands_schedule(bencher: Bencher) {
    let rt = runtime();
    let errands = Errands::builder().without_tracing_reporter().build();
    let tasks = errands.tasks();
    bencher.counter(TASKS).bench_local(|| {
        rt.block_on(async {
            for _ in 0..TASKS {
                tasks.schedule(async {}).expect("scheduled");
            }
            errands.idle().await;
        })
    });
}
