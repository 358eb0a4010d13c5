//! The "202 + poll" pattern: the handler answers 202 with the job's id at once, and the
//! client reads the job's status by id until it is done.
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

/// The job's status, or 404 for an id the store does not know.
async fn status(
    State(errands): State<Errands>,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobStatus>, StatusCode> {
    errands
        .jobs()
        .status(JobId(id))
        .await
        .map(axum::Json)
        .map_err(|_| StatusCode::NOT_FOUND)
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
        .route("/jobs/{id}", get(status))
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
    assert_eq!(client.get("/jobs/999").await.status(), 404);
    Ok(())
}
