//! The "202 + poll" pattern: the handler answers 202 with the job's id at once, and the
//! client reads the job's status by id until it is done. The job can be cancelled while it
//! waits; the store's errors take the error pipeline (`404 not_found` for an unknown id,
//! `409 conflict` for a job that can no longer be cancelled).
//!
//! Run: `cargo run -p errands --features sqlite --example durable_status`

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use errands::durable::{JobId, JobStatus, SqliteStore};
use errands::jobs::{DurableTask, Job, JobContext};
use errands::testing::TestClient;
use errands::{BoxError, Errands, Tasks};
use tokio::sync::mpsc;

#[derive(serde::Serialize, serde::Deserialize)]
struct Thumbnail {
    image: String,
}

impl Job for Thumbnail {
    const NAME: &'static str = "thumbnail";
    type State = mpsc::UnboundedSender<()>;

    async fn run(self, cx: JobContext<Self::State>) -> Result<(), BoxError> {
        println!("  resizing {}", self.image);
        cx.state().send(())?;
        Ok(())
    }
}

/// Enqueued as a task of the request, so the job keeps the request's id.
async fn submit(tasks: Tasks) -> errands::Result<(StatusCode, String)> {
    let id = tasks
        .immediate()
        .durable(Thumbnail {
            image: "cat.png".into(),
        })
        .enqueue()
        .await?
        .id();
    Ok((StatusCode::ACCEPTED, id.to_string()))
}

/// The job's status.
async fn status(
    State(errands): State<Errands>,
    Path(id): Path<i64>,
) -> errands::Result<axum::Json<JobStatus>> {
    Ok(axum::Json(errands.jobs().status(JobId(id)).await?))
}

/// Cancels the job, if it has not started.
async fn cancel(
    State(errands): State<Errands>,
    Path(id): Path<i64>,
) -> errands::Result<StatusCode> {
    errands.jobs().cancel(JobId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    let (done, mut finished) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .durable(SqliteStore::new(db).await?)
        .job::<Thumbnail>(done)
        .build();
    let app = Router::new()
        .route("/thumbnails", post(submit))
        .route("/jobs/{id}", get(status).delete(cancel))
        .with_state(errands.clone())
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    let accepted = client.post("/thumbnails").await;
    let id = accepted.text();
    println!("POST /thumbnails -> {} job {id}", accepted.status());
    finished.recv().await.expect("the job ran");
    errands.idle().await; // its result is recorded
    let polled = client.get(&format!("/jobs/{id}")).await;
    println!("GET /jobs/{id} -> {}", polled.text());
    assert_eq!(polled.json()["state"], "succeeded");
    assert_eq!(
        polled.json()["request_id"],
        accepted.request_id().unwrap().as_str()
    );
    let unknown = client.get("/jobs/999").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json()["code"], "not_found");
    let too_late = client.delete(&format!("/jobs/{id}")).await;
    println!(
        "DELETE /jobs/{id} -> {} {}",
        too_late.status(),
        too_late.text()
    );
    assert_eq!(too_late.status(), 409);
    assert_eq!(too_late.json()["code"], "conflict");
    Ok(())
}
