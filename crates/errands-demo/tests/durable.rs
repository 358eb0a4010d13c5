//! Payments are durable jobs: a payment still processing when the process is killed
//! (`SIGKILL`), or still running at the shutdown deadline after `SIGTERM`, is finished by the
//! next process on the same database, without any client action, and its order is paid
//! once. Waiting is on the processes' log lines, never on sleeps.

mod common;

use common::Demo;
use serde_json::{Value, json};

/// The payment of the repro: 30 s at the provider.
const PROCESSING_MS: u64 = 30_000;

/// Places an order and pays it; returns `(order, payment)` once the provider was called.
async fn pay_slowly(demo: &mut Demo) -> (i64, i64) {
    let order = demo.order("ada@example.com").await;
    let body = json!({"card": "ok", "processing_ms": PROCESSING_MS});
    let payment = demo.post(&format!("/orders/{order}/payments"), body).await;
    assert_eq!(payment.status(), 202);
    let payment: Value = payment.json().await.unwrap();
    demo.wait_for("payment started").await;
    (order, payment["id"].as_i64().unwrap())
}

/// The next process finishes the payment by itself; the order is paid once, and a second
/// payment for it is refused.
async fn finished_by_the_next_process(demo: Demo, order: i64, payment: i64) {
    // A short lease, so that a dead process's job is rescued within the test's patience.
    let mut next = demo.restart(&["--job-lease-ms", "1000"]).await;
    next.wait_for_all(&["payment processed", &format!("\"payment_id\":{payment}")])
        .await;
    let shown = next.get_json(&format!("/payments/{payment}")).await;
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(
        next.get_json(&format!("/orders/{order}")).await["status"],
        "paid"
    );
    let again = next
        .post(&format!("/orders/{order}/payments"), json!({"card": "ok"}))
        .await;
    assert_eq!(
        again.status(),
        409,
        "paid once: {}",
        again.text().await.unwrap()
    );
    let mut db = next.open_database().await;
    let succeeded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE order_id = ? AND status = 'succeeded'",
    )
    .bind(order)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(succeeded, 1);
    let job: (String, i64) =
        sqlx::query_as("SELECT state, attempt FROM errands_jobs WHERE kind = 'process_payment'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(job.0, "succeeded");
    let (provider_calls,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM provider_calls WHERE payment_id = ?")
            .bind(payment)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(
        provider_calls, 2,
        "in flight at the stop: called again, once"
    );
}

#[tokio::test]
async fn a_payment_cut_by_kill_9_is_finished_by_the_next_process() {
    let mut demo = Demo::start(&["--job-lease-ms", "1000"]).await;
    let (order, payment) = pay_slowly(&mut demo).await;
    demo.kill().await;
    finished_by_the_next_process(demo, order, payment).await;
}

#[tokio::test]
async fn a_payment_past_the_default_shutdown_deadline_is_finished_by_the_next_process() {
    let mut demo = Demo::start(&[]).await;
    let (order, payment) = pay_slowly(&mut demo).await;
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert!(status.success(), "handed back, nothing lost: {status:?}");
    demo.assert_order(&[
        &["task aborted", "process_payment"],
        &["went back to available", "\"requeued\":1"],
        &["teardown: database closed"],
    ]);
    finished_by_the_next_process(demo, order, payment).await;
}
