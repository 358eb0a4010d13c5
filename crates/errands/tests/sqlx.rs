//! The `sqlx` feature against a real SQLite database: row not found → 404, unique and
//! foreign-key violations → 409 `conflict`; a database out of reach, or locked past its busy
//! timeout → 503; nothing is half-written.
#![cfg(feature = "sqlx")]

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use errands::Errands;
use errands::extract::{Json, Path};
use errands::testing::TestClient;
use serde::Deserialize;
use serde_json::json;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

#[derive(Deserialize)]
struct NewUser {
    email: String,
}

#[derive(Deserialize)]
struct NewOrder {
    user_id: i64,
    items: Vec<String>,
}

async fn create_user(
    State(db): State<SqlitePool>,
    Json(user): Json<NewUser>,
) -> errands::Result<String> {
    let id: i64 = sqlx::query_scalar("INSERT INTO users (email) VALUES (?) RETURNING id")
        .bind(&user.email)
        .fetch_one(&db)
        .await?;
    Ok(id.to_string())
}

async fn get_user(State(db): State<SqlitePool>, Path(id): Path<i64>) -> errands::Result<String> {
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(&db)
        .await?;
    Ok(email)
}

/// One order with its lines, in one transaction: all or nothing.
async fn create_order(
    State(db): State<SqlitePool>,
    Json(order): Json<NewOrder>,
) -> errands::Result<String> {
    let mut tx = db.begin().await?;
    let id: i64 = sqlx::query_scalar("INSERT INTO orders (user_id) VALUES (?) RETURNING id")
        .bind(order.user_id)
        .fetch_one(&mut *tx)
        .await?;
    for item in &order.items {
        sqlx::query("INSERT INTO lines (order_id, item) VALUES (?, ?)")
            .bind(id)
            .bind(item)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id.to_string())
}

async fn database() -> SqlitePool {
    database_with(SqliteConnectOptions::new().in_memory(true)).await
}

/// One connection on `options`, with the tables.
async fn database_with(options: SqliteConnectOptions) -> SqlitePool {
    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.foreign_keys(true))
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id))",
        "CREATE TABLE lines (order_id INTEGER NOT NULL REFERENCES orders(id), item TEXT NOT NULL UNIQUE)",
    ] {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    db
}

async fn setup() -> (SqlitePool, TestClient) {
    let db = database().await;
    let client = client(&db);
    (db, client)
}

/// The routes on `db`, behind a fresh runtime's layer.
fn client(db: &SqlitePool) -> TestClient {
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/orders", post(create_order))
        .with_state(db.clone())
        .layer(errands.layer());
    TestClient::new(app, &errands)
}

async fn count(db: &SqlitePool, table: &'static str) -> i64 {
    let sql = match table {
        "users" => "SELECT COUNT(*) FROM users",
        "orders" => "SELECT COUNT(*) FROM orders",
        _ => "SELECT COUNT(*) FROM lines",
    };
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test]
async fn duplicate_is_409_conflict_and_missing_row_is_404() {
    let (db, client) = setup().await;
    let created = client
        .post_json("/users", &json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(created.status(), 200);
    let duplicate = client
        .post_json("/users", &json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(duplicate.status(), 409);
    let body = duplicate.json();
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["request_id"], duplicate.request_id().unwrap().as_str());
    assert!(
        !duplicate.text().contains("UNIQUE"),
        "no database text in the body"
    );
    let chain = duplicate.reports()[0].chain_text();
    assert_eq!(
        chain.matches("UNIQUE constraint failed").count(),
        1,
        "the database's message once, though two links of the chain carry it: {chain}"
    );
    assert_eq!(count(&db, "users").await, 1);

    let found = client.get(&format!("/users/{}", created.text())).await;
    assert_eq!(found.text(), "ada@example.com");
    let missing = client.get("/users/999").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json()["code"], "not_found");
}

#[tokio::test]
async fn foreign_key_violation_is_409_and_a_failed_transaction_writes_nothing() {
    let (db, client) = setup().await;
    let orphan = client
        .post_json("/orders", &json!({"user_id": 42, "items": ["book"]}))
        .await;
    assert_eq!(orphan.status(), 409);
    assert_eq!(orphan.json()["code"], "conflict");

    let user = client
        .post_json("/users", &json!({"email": "bob@example.com"}))
        .await;
    let user_id: i64 = user.text().parse().unwrap();
    // The second line violates the unique item: the whole order is rolled back.
    let half = client
        .post_json(
            "/orders",
            &json!({"user_id": user_id, "items": ["pen", "pen"]}),
        )
        .await;
    assert_eq!(half.status(), 409);
    assert_eq!(
        (count(&db, "orders").await, count(&db, "lines").await),
        (0, 0)
    );

    let whole = client
        .post_json(
            "/orders",
            &json!({"user_id": user_id, "items": ["pen", "ink"]}),
        )
        .await;
    assert_eq!(whole.status(), 200);
    assert_eq!(
        (count(&db, "orders").await, count(&db, "lines").await),
        (1, 2)
    );
}

#[tokio::test]
async fn other_database_errors_stay_500_without_internal_text() {
    let (db, client) = setup().await;
    sqlx::query("DROP TABLE lines").execute(&db).await.unwrap();
    sqlx::query("DROP TABLE orders").execute(&db).await.unwrap();
    let response = client
        .post_json("/orders", &json!({"user_id": 1, "items": []}))
        .await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.json()["code"], "internal_error");
    assert!(!response.text().contains("orders"));
}

#[tokio::test]
async fn a_database_out_of_reach_is_503_without_internal_text() {
    let (db, client) = setup().await;
    db.close().await;
    let response = client
        .post_json("/users", &json!({"email": "cy@example.com"}))
        .await;
    assert_eq!(response.status(), 503, "{}", response.text());
    assert_eq!(response.json()["code"], "service_unavailable");
    assert!(
        !response.text().contains("pool"),
        "no database text in the body"
    );
    assert_eq!(response.reports().len(), 1, "reported once");
}

/// SQLite locked by another writer past the pool's busy timeout: 503, as the job store
/// answers, and the request succeeds once the lock is gone.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_database_locked_past_its_busy_timeout_is_503() {
    use sqlx::Connection;
    let path = std::env::temp_dir().join(format!("errands-sqlx-locked-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(std::time::Duration::from_millis(50));
    let client = client(&database_with(options.clone()).await);

    let mut locker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let locked = client
        .post_json("/users", &json!({"email": "di@example.com"}))
        .await;
    assert_eq!(locked.status(), 503, "{}", locked.text());
    assert_eq!(locked.json()["code"], "service_unavailable");
    assert!(
        !locked.text().contains("locked"),
        "no database text in the body"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let created = client
        .post_json("/users", &json!({"email": "di@example.com"}))
        .await;
    assert_eq!(created.status(), 200, "{}", created.text());
    let _ = std::fs::remove_file(&path);
}
