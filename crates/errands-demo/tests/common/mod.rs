//! Runs the demo binary as a real process on an ephemeral port with a temporary database,
//! and reads its JSON log lines. Waiting is on log lines and on the process's exit, never on
//! sleeps.
#![allow(dead_code)]

#[path = "../../../errands/tests/common/postgres.rs"]
pub mod postgres;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Demo {
    child: Child,
    pub addr: String,
    database: PathBuf,
    lines: mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
    pub http: reqwest::Client,
}

impl Demo {
    pub async fn start(args: &[&str]) -> Demo {
        Demo::start_on(new_database(), args).await
    }

    /// Starts the demo on `database`, which it removes when dropped.
    pub async fn start_on(database: PathBuf, args: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_errands-demo"))
            .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database")
            .arg(&database)
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
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut demo = Demo {
            child,
            addr: String::new(),
            database,
            lines,
            seen: Vec::new(),
            http,
        };
        let line = demo.wait_for("listening on http://").await;
        let after = line.split("http://").nth(1).unwrap_or_default();
        demo.addr = after
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap_or_default()
            .to_owned();
        // Signals start the shutdown from here on (before, SIGTERM ends the process at once).
        demo.wait_for("server: accepting connections").await;
        demo
    }

    /// Waits for the next log line containing `needle`; returns it.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let needles = [needle];
        self.wait_for_all(&needles).await
    }

    /// Waits up to `patience` for the next log line containing `needle`.
    pub async fn try_wait_for(&mut self, needle: &str, patience: Duration) -> Option<String> {
        self.try_wait_for_all(&[needle], patience).await
    }

    /// Waits up to `patience` for the next log line containing every needle.
    pub async fn try_wait_for_all(
        &mut self,
        needles: &[&str],
        patience: Duration,
    ) -> Option<String> {
        tokio::time::timeout(patience, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if needles.iter().all(|n| line.contains(n)) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits for the next log line containing every needle.
    pub async fn wait_for_all(&mut self, needles: &[&str]) -> String {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if needles.iter().all(|n| line.contains(n)) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no log line with {needles:?}; seen:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Log lines (seen so far) that are errands reports, parsed.
    pub fn reports(&self) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "errands" && v["origin"].is_string())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// Signs a user up and places an order of one book; returns the order id.
    pub async fn order(&mut self, email: &str) -> i64 {
        let user: Value = self
            .post("/signups", json!({"email": email}))
            .await
            .json()
            .await
            .unwrap();
        let order = json!({"user_id": user["id"], "items": [{"sku": "pen", "quantity": 1}]});
        let order: Value = self.post("/orders", order).await.json().await.unwrap();
        order["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("an order id: {order}; seen:\n{}", self.seen.join("\n")))
    }

    /// Pays `order` with a payment whose shielded task works `processing_ms`; waits until
    /// the task started.
    pub async fn pay(&mut self, order: i64, card: &str, processing_ms: u64) {
        let body = json!({"card": card, "processing_ms": processing_ms});
        let response = self.post(&format!("/orders/{order}/payments"), body).await;
        assert_eq!(response.status(), 202);
        self.wait_for("payment started").await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Hands the log lines not read yet, and all later ones, to the caller: for consumers of
    /// heavy logs, which `seen` would hold in full.
    pub fn take_lines(&mut self) -> mpsc::UnboundedReceiver<String> {
        std::mem::replace(&mut self.lines, mpsc::unbounded_channel().1)
    }

    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit and the remaining log lines; returns the exit status.
    pub async fn finish(&mut self) -> std::process::ExitStatus {
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
    pub fn position(&self, needles: &[&str]) -> usize {
        self.seen
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with {needles:?}; seen:\n{}", self.seen.join("\n")))
    }

    pub fn assert_order(&self, steps: &[&[&str]]) {
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

/// A database path no test uses yet.
pub fn new_database() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "errands-demo-test-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Demo {
    /// The database file.
    pub fn database(&self) -> &std::path::Path {
        &self.database
    }

    /// Kills the process with `SIGKILL` and waits for it to exit.
    pub async fn kill(&mut self) {
        self.signal("-KILL");
        let _ = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("killed");
    }

    /// After the process exited: a new one on the same database, which it now owns.
    pub async fn restart(mut self, args: &[&str]) -> Demo {
        let database = std::mem::take(&mut self.database);
        Demo::start_on(database, args).await
    }

    /// A connection to the database, for checking what the process wrote.
    pub async fn open_database(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.database);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("open the database")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Nothing to remove: moved to a restarted process, or a PostgreSQL URL.
        if self.database.as_os_str().is_empty()
            || self.database.to_string_lossy().starts_with("postgres")
        {
            return;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.database.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A webhook sink outside the demo, as a real on-call service would be: returns its URL and
/// the alerts it receives.
pub async fn alert_sink() -> (String, mpsc::UnboundedReceiver<Value>) {
    use axum::routing::post;
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/alerts",
        post(move |axum::Json(alert): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(alert);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// The task counts of a `/stats` body: `(scheduled, terminal, in_flight)`. The accounting
/// invariant is `scheduled == terminal + in_flight`.
pub fn task_counts(stats: &Value) -> (u64, u64, u64) {
    let n = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
    };
    let terminal = [
        "succeeded",
        "failed",
        "panicked",
        "timed_out",
        "cancelled",
        "aborted",
        "skipped",
    ];
    let terminal = terminal.iter().map(|k| n(k)).sum();
    (
        n("scheduled"),
        terminal,
        n("pending") + n("queued") + n("running"),
    )
}
