//! A durable job enqueued inside the handler's transaction: it commits with the order, or
//! rolls back with it — never a job for an order that does not exist, never an order
//! without its job.
//!
//! Run: `cargo run -p errands --features sqlite --example durable_transaction`

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use errands::durable::SqliteStore;
use errands::jobs::{Job, JobContext};
use errands::testing::TestClient;
use errands::{BoxError, Errands};
use sqlx::SqlitePool;
use tokio::sync::mpsc;

#[derive(serde::Serialize, serde::Deserialize)]
struct SendInvoice {
    order_id: i64,
}

impl Job for SendInvoice {
    const NAME: &'static str = "send_invoice";
    type State = mpsc::UnboundedSender<i64>;

    async fn run(self, cx: JobContext<Self::State>) -> Result<(), BoxError> {
        cx.state().send(self.order_id)?; // the invoice "sent"
        Ok(())
    }
}

#[derive(Clone)]
struct App {
    db: SqlitePool,
    errands: Errands,
}

/// Places an order and enqueues its invoice in one transaction; `/orders/fail` fails after
/// both writes, so both roll back.
async fn place(State(app): State<App>, Path(outcome): Path<String>) -> errands::Result<String> {
    let mut tx = app.db.begin().await?;
    let order_id: i64 = sqlx::query_scalar("INSERT INTO orders DEFAULT VALUES RETURNING id")
        .fetch_one(&mut *tx)
        .await?;
    let job = app
        .errands
        .jobs()
        .enqueue_in(&mut tx, SendInvoice { order_id })
        .await?;
    if outcome == "fail" {
        return Err(std::io::Error::other("the payment provider is down").into()); // tx dropped: rolled back
    }
    tx.commit().await?;
    Ok(format!("order {order_id}, invoice job {job}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = SqlitePool::connect("sqlite::memory:").await?;
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        .execute(&db)
        .await?;
    let (sent, mut invoices) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .durable(SqliteStore::new(db.clone()).await?)
        .job::<SendInvoice>(sent)
        .build();
    let app = Router::new()
        .route("/orders/{outcome}", post(place))
        .with_state(App {
            db: db.clone(),
            errands: errands.clone(),
        })
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);

    let failed = client.post("/orders/fail").await;
    println!("POST /orders/fail -> {}", failed.status());
    let placed = client.post("/orders/ok").await;
    println!("POST /orders/ok   -> {} {}", placed.status(), placed.text());
    let invoiced = invoices.recv().await.expect("the invoice job ran");
    println!("invoice sent for order {invoiced}");

    let (orders, jobs): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM errands_jobs)")
            .fetch_one(&db)
            .await?;
    assert_eq!((orders, jobs), (1, 1), "the failed request left neither");
    println!("{orders} order, {jobs} job: the failed request left neither");
    Ok(())
}
