//! A durable job as a task of its request: `tasks.after_response().durable(job)` stores it
//! *held*, and releases it once the response was sent — or records it `skipped` when the
//! request failed, as an in-memory `after_response` task would be.
//!
//! Run: `cargo run -p errands --features sqlite --example durable_release`

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use errands::durable::SqliteStore;
use errands::jobs::{DurableTask, Job, JobContext};
use errands::testing::TestClient;
use errands::{BoxError, Errands, Tasks};
use sqlx::SqlitePool;
use tokio::sync::mpsc;

#[derive(serde::Serialize, serde::Deserialize)]
struct WelcomeEmail {
    user: String,
}

impl Job for WelcomeEmail {
    const NAME: &'static str = "welcome_email";
    type State = mpsc::UnboundedSender<String>;

    async fn run(self, cx: JobContext<Self::State>) -> Result<(), BoxError> {
        cx.state().send(self.user)?;
        Ok(())
    }
}

async fn signup(
    State(db): State<SqlitePool>,
    Path(user): Path<String>,
    tasks: Tasks,
) -> errands::Result<(StatusCode, String)> {
    let job = tasks
        .after_response()
        .field("user", user.clone())
        .durable(WelcomeEmail { user: user.clone() })
        .enqueue()
        .await?
        .id();
    let state: String = sqlx::query_scalar("SELECT state FROM errands_jobs WHERE id = ?")
        .bind(job.0)
        .fetch_one(&db)
        .await?;
    println!("  job {job} for {user} while the handler runs: {state}");
    let status = if user == "taken" {
        StatusCode::CONFLICT
    } else {
        StatusCode::CREATED
    };
    Ok((status, format!("job {job}")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = SqlitePool::connect("sqlite::memory:").await?;
    let (sent, mut emails) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(SqliteStore::new(db.clone()).await?)
        .job::<WelcomeEmail>(sent)
        .build();
    let app = Router::new()
        .route("/signups/{user}", post(signup))
        .with_state(db.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    let ok = client.post("/signups/ada").await;
    println!("POST /signups/ada   -> {}", ok.status());
    println!("  email sent to {}", emails.recv().await.expect("released"));

    let taken = client.post("/signups/taken").await;
    println!("POST /signups/taken -> {}", taken.status());
    taken.settle().await; // the skip is recorded and reported before this returns
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, state FROM errands_jobs ORDER BY id")
            .fetch_all(&db)
            .await?;
    println!("stored: {states:?}");
    assert_eq!(states[1].1, "skipped");
    let skips: Vec<_> = taken
        .reports()
        .into_iter()
        .filter(|r| r.outcome == Some(errands::Outcome::Skipped))
        .collect();
    println!("reported: {}, key {:?}", skips[0].message, skips[0].key);
    assert_eq!(skips.len(), 1, "the skip is reported once");
    Ok(())
}
