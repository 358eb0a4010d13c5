//! Bytes held per pending task: errands against a bare `tokio::spawn`.
//!
//! Run: `cargo bench -p errands --bench memory`. A counting allocator measures the bytes in
//! use before and after 10 000 tasks are pending (each waits on one shared gate), divided by
//! the number of tasks; then the gate opens and every task must complete.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use errands::Errands;
use tokio_util::sync::CancellationToken;

struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TASKS: usize = 10_000;

fn in_use() -> isize {
    IN_USE.load(Ordering::Relaxed)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let gate = CancellationToken::new();
        let before = in_use();
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        let tokio_bytes = (in_use() - before) as f64 / TASKS as f64;
        gate.cancel();
        for handle in handles {
            handle.await.expect("the task completes");
        }

        let errands = Errands::builder().without_tracing_reporter().build();
        let tasks = errands.tasks();
        let gate = CancellationToken::new();
        let before = in_use();
        for _ in 0..TASKS {
            let gate = gate.clone();
            tasks
                .schedule(async move { gate.cancelled().await })
                .expect("scheduled");
        }
        tokio::task::yield_now().await;
        let errands_bytes = (in_use() - before) as f64 / TASKS as f64;
        gate.cancel();
        errands.idle().await;
        assert_eq!(errands.stats().succeeded, TASKS as u64);

        println!("bytes held per pending task (the task waits on a shared gate):");
        println!("  tokio::spawn  {tokio_bytes:>8.0}  (the JoinHandle kept)");
        println!("  errands       {errands_bytes:>8.0}");
        println!("  ratio         {:>8.2}x", errands_bytes / tokio_bytes);
    });
}
