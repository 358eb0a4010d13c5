//! Follows the demo's JSON logs as they come, without keeping them: counts the central
//! reports by origin and outcome, and notes the lifecycle lines and where they came.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use crate::check::Outcomes;

const TAIL: usize = 64;

#[derive(Clone, Default)]
pub struct Logs {
    state: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

/// What the logs have shown so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Task reports by outcome, and `on_error` failures.
    pub reports: Outcomes,
    /// Reports with origin `runtime`: a reporter panicked or the runtime lost something.
    pub runtime_errors: u64,
    /// Line number of the last task report.
    pub last_task_report: usize,
    /// Lifecycle lines (startup, shutdown, teardown, stop): line number and event.
    pub lifecycle: Vec<(usize, Value)>,
    /// Markers seen: request ids starting with `mark-` of rejection reports.
    pub marks: Vec<String>,
    /// The last lines, for failure messages.
    pub tail: VecDeque<String>,
    pub lines: usize,
}

impl Logs {
    /// Follows `lines` until they end.
    pub fn follow(mut lines: mpsc::UnboundedReceiver<String>) -> Logs {
        let logs = Logs::default();
        let follower = logs.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                follower.state.lock().unwrap().note(line);
                follower.changed.notify_waiters();
            }
        });
        logs
    }

    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was seen; panics with the log's tail after a minute.
    pub async fn until(&self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                {
                    let seen = self.state.lock().unwrap();
                    if done(&seen) {
                        return seen.clone();
                    }
                }
                changed.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(seen) => seen,
            Err(_) => panic!("logs never showed {what}; last lines:\n{}", self.tail()),
        }
    }

    pub fn tail(&self) -> String {
        Vec::from(self.seen().tail).join("\n")
    }
}

impl Seen {
    fn note(&mut self, line: String) {
        self.lines += 1;
        if let Ok(event) = serde_json::from_str::<Value>(&line) {
            self.note_event(&event);
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn note_event(&mut self, event: &Value) {
        let message = event["message"].as_str().unwrap_or_default();
        match event["origin"].as_str() {
            Some("task") => {
                self.reports += Outcomes::one(event["outcome"].as_str().unwrap_or_default());
                self.last_task_report = self.lines;
            }
            Some("error_handler") => self.reports.error_handlers += 1,
            Some("runtime") => self.runtime_errors += 1,
            Some("rejection") => {
                let id = event["request_id"].as_str().unwrap_or_default();
                if id.starts_with("mark-") {
                    self.marks.push(id.to_owned());
                }
            }
            _ => {}
        }
        let lifecycle = [
            "listening",
            "shutdown",
            "second shutdown",
            "teardown",
            "stopped",
        ];
        if event["origin"].is_null() && lifecycle.iter().any(|l| message.starts_with(l)) {
            self.lifecycle.push((self.lines, event.clone()));
        }
    }

    /// Line number and event of the first lifecycle line whose message starts with `prefix`.
    pub fn lifecycle(&self, prefix: &str) -> Option<(usize, &Value)> {
        self.lifecycle
            .iter()
            .find(|(_, event)| {
                event["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(prefix)
            })
            .map(|(line, event)| (*line, event))
    }

    /// Line number of the first lifecycle line whose message starts with `prefix`.
    pub fn line_of(&self, prefix: &str) -> Option<usize> {
        self.lifecycle(prefix).map(|(line, _)| line)
    }
}
