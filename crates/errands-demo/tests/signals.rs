//! The shutdown order on a real process with real signals (DESIGN §2 "Shutdown").
//!
//! Each test starts the demo binary on an ephemeral port, drives it over HTTP, sends SIGTERM
//! with `kill`, and reads the process's log lines in order. Waiting is on log lines and on
//! the process's exit, never on sleeps.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(60);

struct Demo {
    child: Child,
    addr: String,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Demo {
    async fn start(args: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_errands-demo"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the demo");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut demo = Demo {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
        };
        let line = demo.wait_for("listening on http://").await;
        let after = line.split("http://").nth(1).unwrap_or_default();
        demo.addr = after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        demo
    }

    /// Waits for the next log line containing `needle`; returns it.
    async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no log line with {needle:?}; seen:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Accepts a payment whose shielded task works `query`, and waits until it started.
    async fn pay(&mut self, query: &str) {
        let response = http()
            .post(self.url(&format!("/payments?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        self.wait_for("payment started").await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit and the remaining log lines; returns the exit status.
    async fn finish(&mut self) -> std::process::ExitStatus {
        let exited = tokio::time::timeout(PATIENCE, self.child.wait()).await;
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let Ok(status) = exited else {
            panic!("the demo did not exit; seen:\n{}", self.seen.join("\n"));
        };
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        status.unwrap()
    }

    /// Index of the first log line containing every needle.
    fn position(&self, needles: &[&str]) -> usize {
        self.seen
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with {needles:?}; seen:\n{}", self.seen.join("\n")))
    }

    fn assert_order(&self, steps: &[&[&str]]) {
        for pair in steps.windows(2) {
            assert!(
                self.position(pair[0]) < self.position(pair[1]),
                "{:?} should come before {:?}; seen:\n{}",
                pair[0],
                pair[1],
                self.seen.join("\n")
            );
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn sigterm_drains_cancels_unshielded_finishes_shielded_then_tears_down() {
    let mut demo = Demo::start(&[]).await;
    let client = http();
    demo.pay("work_ms=3000").await;
    let export = client
        .post(demo.url("/exports?work_ms=600000"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    demo.wait_for("export started").await;
    let in_flight = tokio::spawn(client.get(demo.url("/slow?ms=300")).send());
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
        &["teardown: resources closed"],
        &["shutdown: complete"],
    ]);
    assert!(!demo.seen.iter().any(|l| l.contains("export finished")));
    assert!(!demo.seen.iter().any(|l| l.contains("task aborted")));
}

#[tokio::test]
async fn sigterm_aborts_shielded_tasks_at_the_deadline_and_reports_them_by_name() {
    let mut demo = Demo::start(&["--shutdown-deadline-ms", "300"]).await;
    demo.pay("work_ms=600000").await;
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert!(status.success(), "clean exit: {status:?}");
    demo.assert_order(&[
        &["shutdown: cancelling unshielded tasks"],
        &["shutdown: aborting tasks still running"],
        &["task aborted", "process_payment", "payment_id"],
        &["teardown: resources closed"],
    ]);
    assert!(!demo.seen.iter().any(|l| l.contains("payment processed")));
}

#[tokio::test]
async fn a_second_sigterm_skips_to_the_abort() {
    // A deadline far beyond the test's patience: only the second signal can end this.
    let mut demo = Demo::start(&["--shutdown-deadline-ms", "3600000"]).await;
    demo.pay("work_ms=3600000").await;
    demo.signal("-TERM");
    demo.wait_for("shutdown: cancelling unshielded tasks").await;
    demo.signal("-TERM");
    let status = demo.finish().await;
    assert!(status.success(), "clean exit: {status:?}");
    demo.assert_order(&[
        &["second shutdown signal received"],
        &["task aborted", "process_payment"],
        &["teardown: resources closed"],
    ]);
}

#[tokio::test]
async fn sigint_works_like_sigterm_and_a_failing_shielded_task_runs_its_on_error_first() {
    let mut demo = Demo::start(&[]).await;
    demo.pay("work_ms=500&fail=true").await;
    demo.signal("-INT");
    let status = demo.finish().await;
    assert!(status.success(), "clean exit: {status:?}");
    demo.assert_order(&[
        &["shutdown signal received"],
        &["task failed", "process_payment", "declined"],
        &["on-call alerted"],
        &["teardown: resources closed"],
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
    assert!(String::from_utf8_lossy(&help.stdout).contains("--shutdown-deadline-ms"));
    let bad = Command::new(env!("CARGO_BIN_EXE_errands-demo"))
        .args(["--drain-timeout-ms", "soon"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected milliseconds"));
}
