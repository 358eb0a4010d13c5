//! Several demo processes on one PostgreSQL database: one queue. Jobs enqueued through any
//! process are run by any; when one process is killed with `SIGKILL`, the survivors finish its
//! running and held jobs once its lease and heartbeat ran out; when one is stopped with
//! `SIGTERM`, it hands its running jobs back at once. Runs when `ERRANDS_TEST_POSTGRES` names
//! a server (see the README); waiting is on the processes' log lines.

mod common;

use std::path::PathBuf;

use common::Demo;
use common::postgres::{TestDb, database};
use serde_json::{Value, json};

/// Three processes on one new database; the first with `first` flags besides `all`.
async fn three(test: &str, first: &[&str], all: &[&str]) -> Option<(TestDb, [Demo; 3])> {
    let db = database(test).await?;
    let url = PathBuf::from(&db.url);
    let with_first: Vec<&str> = all.iter().chain(first).copied().collect();
    let a = Demo::start_on(url.clone(), &with_first).await;
    let b = Demo::start_on(url.clone(), all).await;
    let c = Demo::start_on(url, all).await;
    Some((db, [a, b, c]))
}

/// Signs a user up and orders a pen through `demo`; returns the order id.
async fn order(demo: &mut Demo, email: &str) -> i64 {
    demo.order(email).await
}

/// Pays `order` through `demo`; returns the payment id (the response may never come when
/// the process stops at a crash point: then `None`).
async fn pay(demo: &Demo, order: i64, card: &str, processing_ms: u64) -> i64 {
    let body = json!({"card": card, "processing_ms": processing_ms});
    let response = demo.post(&format!("/orders/{order}/payments"), body).await;
    assert_eq!(response.status(), 202);
    let payment: Value = response.json().await.unwrap();
    payment["id"].as_i64().unwrap()
}

/// Waits until one of `demos` logs a line with every needle; returns which one did.
async fn either(demos: &mut [&mut Demo], needles: &[&str]) -> usize {
    let waits = demos.iter_mut().enumerate().map(|(i, demo)| {
        Box::pin(async move {
            demo.wait_for_all(needles).await;
            i
        })
    });
    futures_util::future::select_all(waits).await.0
}

#[tokio::test]
async fn jobs_enqueued_through_one_process_are_run_by_the_others() {
    // The first process runs one job at a time: the others must take the rest.
    let Some((db, [mut a, mut b, mut c])) =
        three("postgres_jobs_run_by_any", &["--job-concurrency", "1"], &[]).await
    else {
        return;
    };
    let mut payments = Vec::new();
    for n in 0..6 {
        let order = order(&mut a, &format!("buyer{n}@example.com")).await;
        payments.push(pay(&a, order, "ok", 300).await);
    }
    let (mut by_a, mut by_others) = (0, 0);
    for payment in &payments {
        let needle = format!("\"payment_id\":{payment}");
        match either(
            &mut [&mut a, &mut b, &mut c],
            &["payment processed", &needle],
        )
        .await
        {
            0 => by_a += 1,
            _ => by_others += 1,
        }
    }
    assert!(
        by_others > 0,
        "the other processes ran jobs enqueued through the first"
    );
    assert_eq!(by_a + by_others, payments.len());
    let pool = db.pool(1).await;
    let twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT payment_id FROM provider_calls GROUP BY payment_id \
         HAVING COUNT(*) > 1) AS twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(twice, 0, "each payment ran once");
    pool.close().await;
    for demo in [&mut a, &mut b, &mut c] {
        demo.signal("-TERM");
        assert!(demo.finish().await.success());
    }
    db.finish("postgres_jobs_run_by_any").await;
}

/// Kills a process at `point` while it holds a payment; the two others, running, finish it.
async fn survivors_finish_what_a_killed_process_held(test: &str, point: &str) {
    let Some(db) = database(test).await else {
        return;
    };
    let url = PathBuf::from(&db.url);
    let lease = ["--job-lease-ms", "1000"];
    let armed = [&lease[..], &["--fault-injection", "--crash-at", point]].concat();
    // The order is placed through a survivor when the crash point is a release (a sign-up
    // releases its welcome email); otherwise through the process to kill, and the survivors
    // start once it holds the payment, so that it is the one that claims it.
    let (mut a, early, order) = if point == "release" {
        let mut b = Demo::start_on(url.clone(), &lease).await;
        let order = order(&mut b, "ada@example.com").await;
        (Demo::start_on(url.clone(), &armed).await, Some(b), order)
    } else {
        let mut a = Demo::start_on(url.clone(), &armed).await;
        let order = order(&mut a, "ada@example.com").await;
        a.wait_for("welcome email sent").await;
        (a, None, order)
    };
    let paying = {
        let (http, url) = (a.http.clone(), a.url(&format!("/orders/{order}/payments")));
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"card": "ok", "processing_ms": 50}))
                .send()
                .await
        })
    };
    a.wait_for("crash point reached").await;
    let mut b = match early {
        Some(b) => b,
        None => Demo::start_on(url.clone(), &lease).await,
    };
    let mut c = Demo::start_on(url, &lease).await;
    a.kill().await;
    let _ = paying.await; // the 202 went out before the crash, or the connection was reset
    either(&mut [&mut b, &mut c], &["payment processed"]).await;
    let pool = db.pool(1).await;
    let (payment, order_status): (String, String) = sqlx::query_as(
        "SELECT p.status, o.status FROM payments p JOIN orders o ON o.id = p.order_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (payment.as_str(), order_status.as_str()),
        ("succeeded", "paid")
    );
    let job: String =
        sqlx::query_scalar("SELECT state FROM errands.jobs WHERE kind = 'process_payment'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(job, "succeeded");
    pool.close().await;
    for demo in [&mut b, &mut c] {
        demo.signal("-TERM");
        assert!(demo.finish().await.success());
    }
    db.finish(test).await;
}

#[tokio::test]
async fn a_killed_process_held_job_is_released_by_the_survivors() {
    survivors_finish_what_a_killed_process_held("postgres_killed_held", "release").await;
}

#[tokio::test]
async fn a_killed_process_running_job_is_rescued_by_the_survivors() {
    survivors_finish_what_a_killed_process_held("postgres_killed_running", "mid_task").await;
}

#[tokio::test]
async fn sigterm_of_one_process_hands_its_running_job_back_at_once() {
    let test = "postgres_sigterm_hands_back";
    let Some(db) = database(test).await else {
        return;
    };
    let url = PathBuf::from(&db.url);
    // A lease far beyond the test's patience: only the hand-back can move the job.
    let lease = ["--job-lease-ms", "600000"];
    let mut a = Demo::start_on(
        url.clone(),
        &[&lease[..], &["--shutdown-deadline-ms", "300"]].concat(),
    )
    .await;
    let order = order(&mut a, "ada@example.com").await;
    let payment = pay(&a, order, "ok", 2000).await;
    a.wait_for("payment started").await;
    // The others start once the first runs the payment.
    let mut b = Demo::start_on(url.clone(), &lease).await;
    let mut c = Demo::start_on(url, &lease).await;
    a.signal("-TERM");
    let status = a.finish().await;
    assert!(status.success(), "handed back, not lost: {status:?}");
    a.assert_order(&[
        &["task aborted", "process_payment"],
        &["went back to available", "\"requeued\":1"],
    ]);
    let needle = format!("\"payment_id\":{payment}");
    either(&mut [&mut b, &mut c], &["payment processed", &needle]).await;
    for demo in [&mut b, &mut c] {
        demo.signal("-TERM");
        assert!(demo.finish().await.success());
    }
    db.finish(test).await;
}
