//! The shutdown order on a real process with real signals (the semantics page, "Shutdown").

mod common;

use common::{Demo, alert_sink};
use serde_json::json;
use tokio::process::Command;

#[tokio::test]
async fn sigterm_drains_cancels_unshielded_finishes_shielded_then_tears_down() {
    let mut demo = Demo::start(&[]).await;
    let order = demo.order("ada@example.com").await;
    demo.pay(order, "ok", 3000).await;
    let export = demo.post("/exports", json!({"work_ms": 600_000})).await;
    assert_eq!(export.status(), 202);
    demo.wait_for("export started").await;
    let in_flight = tokio::spawn(demo.http.get(demo.url("/ops/slow?ms=300")).send());
    demo.wait_for("slow request started").await;

    demo.signal("-TERM");
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.text().await.unwrap(), "slow request done");
    let status = demo.finish().await;

    assert!(status.success(), "clean exit: {status:?}");
    demo.assert_order(&[
        &["shutdown signal received"],
        &["shutdown: draining requests"],
        &["shutdown: cancelling unshielded tasks"],
        &["task cancelled by shutdown", "build_export"],
        &["payment processed"],
        &["teardown: database closed"],
        &["shutdown: complete"],
    ]);
    assert!(!demo.seen.iter().any(|l| l.contains("export finished")));
    assert!(!demo.seen.iter().any(|l| l.contains("task aborted")));
}

#[tokio::test]
async fn sigterm_aborts_a_payment_at_the_deadline_and_hands_it_back_to_the_store() {
    let mut demo = Demo::start(&["--shutdown-deadline-ms", "300"]).await;
    let order = demo.order("ada@example.com").await;
    demo.pay(order, "ok", 600_000).await;
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert!(status.success(), "handed back, nothing lost: {status:?}");
    demo.assert_order(&[
        &["shutdown: cancelling unshielded tasks"],
        &["shutdown: aborting tasks still running"],
        &["task aborted", "process_payment", "payment_id"],
        &["went back to available", "\"requeued\":1"],
        &["teardown: database closed"],
    ]);
    assert!(!demo.seen.iter().any(|l| l.contains("payment processed")));
    assert!(
        !demo
            .seen
            .iter()
            .any(|l| l.contains("stopped with work lost"))
    );
}

#[tokio::test]
async fn a_second_sigterm_skips_to_the_abort() {
    // A deadline far beyond the test's patience: only the second signal can end this.
    let mut demo = Demo::start(&["--shutdown-deadline-ms", "3600000"]).await;
    let order = demo.order("ada@example.com").await;
    demo.pay(order, "ok", 600_000).await;
    demo.signal("-TERM");
    demo.wait_for("shutdown: cancelling unshielded tasks").await;
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert!(
        status.success(),
        "the payment was handed back: {status:?}\n{}",
        demo.seen.join("\n")
    );
    demo.assert_order(&[
        &["second shutdown signal received"],
        &["task aborted", "process_payment"],
        &["went back to available"],
        &["teardown: database closed"],
    ]);
}

#[tokio::test]
async fn sigint_works_like_sigterm_and_a_failing_shielded_task_alerts_before_teardown() {
    let (webhook, mut alerts) = alert_sink().await;
    let mut demo = Demo::start(&["--alert-webhook", &webhook]).await;
    let order = demo.order("ada@example.com").await;
    demo.pay(order, "declined", 500).await;
    demo.signal("-INT");
    let status = demo.finish().await;
    assert!(status.success(), "clean exit: {status:?}");
    let alert = alerts
        .try_recv()
        .expect("the on-call webhook got the alert");
    assert_eq!(alert["task"], "process_payment");
    demo.assert_order(&[
        &["shutdown signal received"],
        &["task failed", "process_payment", "declined"],
        &["on-call alerted"],
        &["teardown: database closed"],
    ]);
}

#[tokio::test]
async fn help_and_bad_flags() {
    let help = Command::new(env!("CARGO_BIN_EXE_errands-demo"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--addr",
        "--database",
        "--alert-webhook",
        "--shutdown-deadline-ms",
        "--log-format",
    ] {
        assert!(text.contains(flag), "{flag} in --help");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_errands-demo"))
        .args(["--drain-timeout-ms", "soon"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--drain-timeout-ms"));
}
