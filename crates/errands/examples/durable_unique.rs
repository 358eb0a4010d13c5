//! A unique durable job: a second enqueue with the same key, while the first is unfinished,
//! stores nothing and returns the live job — one nightly export however often it is asked.
//!
//! Run: `cargo run -p errands --features sqlite --example durable_unique`

use std::time::Duration;

use errands::durable::{Enqueued, SqliteStore};
use errands::jobs::{Job, JobContext};
use errands::{BoxError, Errands};

#[derive(serde::Serialize, serde::Deserialize)]
struct NightlyExport {
    day: String,
}

impl Job for NightlyExport {
    const NAME: &'static str = "nightly_export";
    type State = ();

    async fn run(self, _: JobContext<()>) -> Result<(), BoxError> {
        println!("exporting {}", self.day);
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    let errands = Errands::builder()
        .durable(SqliteStore::new(db).await?)
        .job::<NightlyExport>(())
        .build();
    let export = |day: &str| {
        errands
            .jobs()
            .prepare(NightlyExport { day: day.into() })
            .unique(format!("export-{day}"))
            .run_after(Duration::from_secs(3600)) // tonight
    };
    let first = export("2026-11-29").enqueue().await?;
    let again = export("2026-11-29").enqueue().await?;
    let other = export("2026-11-30").enqueue().await?;
    println!("first: {first:?}\nagain: {again:?}\nother: {other:?}");
    assert!(matches!(first, Enqueued::New(_)));
    assert_eq!(again, Enqueued::Duplicate(first.id()));
    assert!(matches!(other, Enqueued::New(_)));
    Ok(())
}
