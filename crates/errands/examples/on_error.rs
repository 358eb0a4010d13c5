//! A custom `on_error` handler per task, and a default one for every other task. The handler
//! receives the task's info (name, id, attempt, explicit fields, request id) and the original
//! error, which it can inspect by type.
//!
//! Run: `cargo run -p errands --example on_error`

use errands::{Errands, TaskError, TaskInfo};

#[derive(Debug, thiserror::Error)]
#[error("quota exceeded for account {account}")]
struct QuotaExceeded {
    account: u64,
}

async fn sync_crm(_account: u64) -> Result<(), QuotaExceeded> {
    Err(QuotaExceeded { account: 42 })
}

async fn resize_avatar() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("unsupported image format"))
}

#[tokio::main]
async fn main() {
    let errands = Errands::builder()
        .without_tracing_reporter()
        .on_task_error(|info: TaskInfo, error: TaskError| async move {
            println!("default handler: {} failed: {error}", info.name());
        })
        .build();

    errands
        .tasks()
        .immediate()
        .field("account", 42)
        .on_error(|info: TaskInfo, error: TaskError| async move {
            match error.find::<QuotaExceeded>() {
                Some(quota) => println!(
                    "{} (task {}, fields {}): quota for {} — retry tomorrow",
                    info.name(),
                    info.id(),
                    info.fields_json(),
                    quota.account
                ),
                None => println!("{}: {error}", info.name()),
            }
        })
        .schedule(sync_crm(42))
        .expect("scheduled");
    errands
        .tasks()
        .schedule(resize_avatar())
        .expect("scheduled");
    errands.idle().await;
}
