//! PostgreSQL going away under a running service and coming back (docs/RELIABILITY.md,
//! "Durable jobs and `kill -9`"): the service reaches the server through a TCP proxy that the
//! test cuts — every connection closed, new ones left unanswered — and restores.
//! While it is down, a request inside its transaction and a request that cannot begin one
//! both answer `503 service_unavailable` and write nothing, and the workers back off; once it
//! is back, they run what waited without anyone's help. And PostgreSQL out of connections:
//! 503 as well. Waiting is on the jobs' signals and the log lines, never on sleeps.
#![cfg(all(feature = "postgres", feature = "sqlx"))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use errands::Errands;
use errands::durable::{JobState, PgStore, Store};
use errands::jobs::{Job, JobContext, Jobs};
use errands::{BoxError, ErrorReport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use common::postgres::database;

/// A TCP proxy to `target` on a port of its own, up until [`Proxy::cut`].
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, mut state) = watch::channel(true);
        let forwards = state.clone();
        tokio::spawn(async move {
            // Down, the port stays bound (no other socket can take it), and new connections
            // wait unanswered in its queue, as behind a network partition.
            while state.wait_for(|up| *up).await.is_ok() {
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            tokio::spawn(forward(client, target, forwards.clone()));
                        }
                        _ = state.wait_for(|up| !*up) => break,
                    }
                }
            }
        });
        Proxy { addr, up }
    }

    /// Closes every connection through the proxy and answers no new one.
    fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Answers connections again.
    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, target: SocketAddr, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
}

/// What the receipt jobs tell the test, and the gate they wait at before they return.
#[derive(Clone)]
struct Signals {
    ran: mpsc::UnboundedSender<i64>,
    gate: watch::Receiver<bool>,
}

#[derive(Serialize, Deserialize)]
struct Receipt {
    payment: i64,
}

impl Job for Receipt {
    const NAME: &'static str = "receipt";
    type State = Signals;

    async fn run(self, cx: JobContext<Signals>) -> Result<(), BoxError> {
        let _ = cx.state().ran.send(self.payment);
        let _ = cx.state().gate.clone().wait_for(|open| *open).await;
        Ok(())
    }
}

#[derive(Clone)]
struct App {
    pool: PgPool,
    jobs: Jobs,
    /// Told when a payment's transaction is open; the handler then waits for `gate`.
    in_transaction: mpsc::UnboundedSender<i64>,
    gate: watch::Receiver<bool>,
}

/// A payment row and its receipt job, in one transaction.
async fn pay(
    State(app): State<App>,
    errands::extract::Json(payment): errands::extract::Json<i64>,
) -> errands::Result<String> {
    let mut tx = app.pool.begin().await?;
    sqlx::query("INSERT INTO payments (id) VALUES ($1)")
        .bind(payment)
        .execute(&mut *tx)
        .await?;
    let _ = app.in_transaction.send(payment);
    let _ = app.gate.clone().wait_for(|open| *open).await;
    app.jobs.enqueue_in(&mut *tx, Receipt { payment }).await?;
    tx.commit().await?;
    Ok(payment.to_string())
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(common::PATIENCE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap()
}

#[tokio::test]
async fn while_postgresql_is_down_requests_answer_503_workers_back_off_and_all_resumes_after() {
    const TEST: &str =
        "while_postgresql_is_down_requests_answer_503_workers_back_off_and_all_resumes_after";
    let Some(db) = database(TEST).await else {
        return;
    };
    let mut logs = common::LogLines::capture();

    let direct = db.pool(2).await;
    sqlx::query("CREATE TABLE payments (id BIGINT PRIMARY KEY)")
        .execute(&direct)
        .await
        .unwrap();
    let server = tokio::net::lookup_host((db.options.get_host(), db.options.get_port()))
        .await
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .expect("the server has an IPv4 address");
    let proxy = Proxy::start(server).await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect_with(
            db.options
                .clone()
                .host(&proxy.addr.ip().to_string())
                .port(proxy.addr.port()),
        )
        .await
        .unwrap();
    let store = PgStore::new(pool.clone()).await.unwrap();

    let (ran_tx, mut ran) = mpsc::unbounded_channel();
    let (job_gate, job_gate_rx) = watch::channel(true);
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let errands = Errands::builder()
        .without_tracing_reporter()
        .reporter(move |report: &ErrorReport| {
            let _ = reports_tx.send((report.request_id.clone(), report.chain_text()));
        })
        .durable(store)
        .job::<Receipt>(Signals {
            ran: ran_tx,
            gate: job_gate_rx,
        })
        .build();
    let (in_transaction, mut opened) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(true);
    let app = axum::Router::new()
        .route("/payments", post(pay))
        .with_state(App {
            pool: pool.clone(),
            jobs: errands.jobs(),
            in_transaction,
            gate: gate_rx,
        })
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);

    // Up: a payment, whose receipt job then waits in its run.
    job_gate.send_replace(false);
    assert_eq!(client.post_json("/payments", &json!(1)).await.status(), 200);
    assert_eq!(next(&mut opened, "payment 1 opens").await, 1);
    assert_eq!(next(&mut ran, "receipt 1 runs").await, 1);

    // The server goes away while a payment's transaction is open: 503, reported once.
    gate.send_replace(false);
    let cut_mid_transaction = tokio::spawn({
        let client = client.clone();
        async move { client.post_json("/payments", &json!(2)).await }
    });
    assert_eq!(next(&mut opened, "payment 2 opens").await, 2);
    proxy.cut();
    gate.send_replace(true);
    let response = cut_mid_transaction.await.unwrap();
    assert_eq!(response.status(), 503, "{}", response.text());
    assert_eq!(response.json()["code"], "service_unavailable");
    let (reported, _) = next(&mut reports, "the failed enqueue is reported").await;
    assert_eq!(reported, response.request_id());

    // A request that cannot even begin its transaction: 503 too, without internal text.
    let response = client.post_json("/payments", &json!(3)).await;
    assert_eq!(response.status(), 503, "{}", response.text());
    assert_eq!(response.json()["code"], "service_unavailable");
    for private in ["127.0.0.1", "postgres", "pool", "connection"] {
        assert!(
            !response.text().contains(private),
            "no database text in the body: {}",
            response.text()
        );
    }
    let (reported, chain) = next(&mut reports, "the failed begin is reported").await;
    assert_eq!(reported, response.request_id());
    assert!(chain.contains("pool timed out"), "{chain}");

    // The receipt job returns while the server is away: its result waits within its lease.
    job_gate.send_replace(true);
    logs.wait_for("recording a durable job's result failed: retrying")
        .await;
    // A job stored meanwhile by another process, which still reaches the server; the workers
    // here back off.
    let other = PgStore::new(direct.clone()).await.unwrap();
    let waiting = other
        .enqueue(errands::durable::NewJob::new(
            "receipt",
            json!({"payment": 4}),
        ))
        .await
        .unwrap()
        .id();
    logs.wait_for("claiming durable jobs failed: backing off")
        .await;

    // Back: what waited runs and is recorded without anyone's help; requests succeed again.
    proxy.restore();
    assert_eq!(next(&mut ran, "the waiting job runs").await, 4);
    assert_eq!(client.post_json("/payments", &json!(5)).await.status(), 200);
    assert_eq!(next(&mut ran, "receipt 5 runs").await, 5);
    common::idle(&errands).await;

    let payments: Vec<i64> = sqlx::query_scalar("SELECT id FROM payments ORDER BY id")
        .fetch_all(&direct)
        .await
        .unwrap();
    assert_eq!(payments, [1, 5], "nothing of the 503s was written");
    let jobs: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT args, state, attempt FROM errands.jobs ORDER BY id")
            .fetch_all(&direct)
            .await
            .unwrap();
    let jobs: Vec<(serde_json::Value, &str, i32)> = jobs
        .iter()
        .map(|(args, state, attempt)| {
            (
                serde_json::from_str(args).unwrap(),
                state.as_str(),
                *attempt,
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [1, 4, 5].map(|payment| (json!({ "payment": payment }), "succeeded", 1)),
        "one job per committed payment and the waiting one, each succeeded at its first attempt"
    );
    assert_eq!(
        other.status(waiting).await.unwrap().state,
        JobState::Succeeded
    );
    assert!(ran.try_recv().is_err(), "each receipt ran once");
    let extra: Vec<_> = std::iter::from_fn(|| reports.try_recv().ok()).collect();
    assert!(extra.is_empty(), "one report per failed request: {extra:?}");
    errands.shutdown().await;
    direct.close().await;
    pool.close().await;
    db.finish(TEST).await;
}

/// PostgreSQL refusing a connection because it has too many (SQLSTATE 53300, here a role's
/// connection limit): the handler's query answers 503, not 500.
#[tokio::test]
async fn postgresql_out_of_connections_is_503() {
    const TEST: &str = "postgresql_out_of_connections_is_503";
    let Some(db) = database(TEST).await else {
        return;
    };
    let admin = db.pool(1).await;
    // A role of the test's own (named after its database), dropped however the test ends.
    let role = format!("{}_limited", db.options.get_database().unwrap());
    let statement = |sql: String| {
        let admin = admin.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
    };
    statement(format!("DROP ROLE IF EXISTS {role}")).await;
    statement(format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")).await;
    let limited = db.options.clone().username(&role);
    let checks = std::panic::AssertUnwindSafe(out_of_connections(&admin, &limited, &role));
    let result = futures_util::FutureExt::catch_unwind(checks).await;
    statement(format!("DROP ROLE {role}")).await;
    admin.close().await;
    db.finish(TEST).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn out_of_connections(
    admin: &PgPool,
    limited: &sqlx::postgres::PgConnectOptions,
    role: &str,
) {
    let held = sqlx::PgConnection::connect_with(limited).await.unwrap();
    let errands = Errands::builder().without_tracing_reporter().build();
    let connect = limited.clone();
    let app = axum::Router::new()
        .route(
            "/count",
            axum::routing::get(move || {
                let connect = connect.clone();
                async move {
                    let mut conn = sqlx::PgConnection::connect_with(&connect).await?;
                    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
                    Ok::<_, errands::Error>(one.to_string())
                }
            }),
        )
        .layer(errands.layer());
    let client = errands::testing::TestClient::new(app, &errands);
    let refused = client.get("/count").await;
    assert_eq!(refused.status(), 503, "{}", refused.text());
    assert_eq!(refused.json()["code"], "service_unavailable");
    assert!(
        !refused.text().contains(role),
        "no database text in the body"
    );
    assert!(
        refused.reports()[0]
            .chain_text()
            .contains("too many connections")
    );

    // Once the server has let the held connection go, the request succeeds.
    held.close().await.unwrap();
    tokio::time::timeout(common::PATIENCE, async {
        loop {
            let sessions: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE usename = $1")
                    .bind(role)
                    .fetch_one(admin)
                    .await
                    .unwrap();
            if sessions == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the held connection ends");
    assert_eq!(client.get("/count").await.text(), "1");
}
