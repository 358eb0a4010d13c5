//! Routing task errors by type: one registry, used as the default `on_error` of every task.
//!
//! Run: `cargo run -p errands --example error_routing`

use std::time::Duration;

use errands::{Errands, ErrorHandlers, TaskError, TaskInfo};

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct ConnectionRefused;

#[derive(Debug, thiserror::Error)]
#[error("invalid payload: {0}")]
struct InvalidPayload(&'static str);

#[tokio::main]
async fn main() {
    let registry = ErrorHandlers::new()
        .on::<ConnectionRefused>(|info: TaskInfo, _: TaskError| async move {
            println!(
                "{}: upstream down, will be picked up by the next sync",
                info.name()
            );
        })
        .on::<InvalidPayload>(|info: TaskInfo, error: TaskError| async move {
            println!(
                "{}: bad data, needs a human: {}",
                info.name(),
                error.find::<InvalidPayload>().map(|e| e.0).unwrap_or("?")
            );
        })
        .on_timeout(|info: TaskInfo, _: TaskError| async move {
            println!("{}: too slow", info.name());
        })
        .fallback(|info: TaskInfo, error: TaskError| async move {
            println!("{}: unexpected: {error}", info.name());
        });
    let errands = Errands::builder().task_error_handler(registry).build();
    let tasks = errands.tasks();
    let _ = tasks
        .immediate()
        .name("push_crm")
        .schedule(async { Err::<(), _>(ConnectionRefused) });
    let _ = tasks
        .immediate()
        .name("import_row")
        .schedule(async { Err::<(), _>(InvalidPayload("missing sku")) });
    let _ = tasks
        .immediate()
        .name("thumbnail")
        .timeout(Duration::from_millis(20))
        .schedule(tokio::time::sleep(Duration::from_secs(5)));
    let _ = tasks
        .immediate()
        .name("misc")
        .schedule(async { Err::<(), _>("something else") });
    errands.idle().await;
}
