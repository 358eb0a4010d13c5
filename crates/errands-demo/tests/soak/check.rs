//! What every response must satisfy, and the terminal outcomes a load expects, counts in the
//! stats, and finds in the logs.

use std::ops::{AddAssign, Sub};

use serde_json::Value;

/// The text every drill failure and panic carries (`routes::drills::INTERNAL_DETAIL`); no
/// response body may show it.
pub const INTERNAL_DETAIL: &str = "0xDEADBEEF";

/// Checks one complete response. An error status has exactly the error schema, carrying the
/// response's request id; a 5xx says only "Internal server error." (or, for 503, its public
/// reason); no body shows internal text.
pub fn response(status: u16, request_id: Option<&str>, body: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    let secrets: &[&str] = match status {
        500.. => &[INTERNAL_DETAIL, "drill failure", "panicked", "drills.rs"],
        _ => &[INTERNAL_DETAIL, "drill failure"],
    };
    if let Some(secret) = secrets.iter().find(|s| text.contains(*s)) {
        return Err(format!("{status} body shows {secret:?}: {text}"));
    }
    if status < 400 {
        return Ok(());
    }
    let fail = |why: &str| Err(format!("{status} body {why}: {text}"));
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return fail("is not a JSON object");
    };
    let mut keys: Vec<_> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["code", "details", "error", "request_id", "success"] {
        return fail("does not have exactly the schema's keys");
    }
    if body["success"] != false || !body["code"].is_string() || !body["error"].is_string() {
        return fail("has a wrong success, code or error");
    }
    if request_id.is_none() || body["request_id"].as_str() != request_id {
        return fail("does not carry the x-request-id header's id");
    }
    if body["code"] == "validation_error" {
        let violations = body["details"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let sound =
            |v: &Value| v["loc"].is_array() && v["msg"].is_string() && v["type"].is_string();
        if violations.is_empty() || !violations.iter().all(sound) {
            return fail("has malformed validation details");
        }
    }
    match (status, body["code"].as_str()) {
        (500, Some("internal_error")) if body["error"] == "Internal server error." => Ok(()),
        (503, Some("overloaded" | "shutting_down")) => Ok(()),
        (500.., _) => fail("is not a public 5xx"),
        _ => Ok(()),
    }
}

/// Counts of the terminal outcomes that are reported, and of failed `on_error` handlers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub failed: u64,
    pub panicked: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub aborted: u64,
    pub skipped: u64,
    /// `on_error` handlers that failed or panicked (reported with origin `error_handler`).
    pub error_handlers: u64,
}

impl Outcomes {
    /// The task outcome named `name` (as in logs and stats), once.
    pub fn one(name: &str) -> Outcomes {
        let mut outcomes = Outcomes::default();
        match name {
            "failed" => outcomes.failed = 1,
            "panicked" => outcomes.panicked = 1,
            "timed_out" => outcomes.timed_out = 1,
            "cancelled" => outcomes.cancelled = 1,
            "aborted" => outcomes.aborted = 1,
            "skipped" => outcomes.skipped = 1,
            _ => {}
        }
        outcomes
    }

    /// The reported outcomes in a `/stats` body, minus those of `before`.
    pub fn from_stats(stats: &Value, before: &Value) -> Outcomes {
        let delta = |key: &str| stats[key].as_u64().unwrap() - before[key].as_u64().unwrap_or(0);
        Outcomes {
            failed: delta("failed"),
            panicked: delta("panicked"),
            timed_out: delta("timed_out"),
            cancelled: delta("cancelled"),
            aborted: delta("aborted"),
            skipped: delta("skipped"),
            error_handlers: 0,
        }
    }

    pub fn tasks(&self) -> u64 {
        self.failed + self.panicked + self.timed_out + self.cancelled + self.aborted + self.skipped
    }
}

impl AddAssign for Outcomes {
    fn add_assign(&mut self, other: Outcomes) {
        self.failed += other.failed;
        self.panicked += other.panicked;
        self.timed_out += other.timed_out;
        self.cancelled += other.cancelled;
        self.aborted += other.aborted;
        self.skipped += other.skipped;
        self.error_handlers += other.error_handlers;
    }
}

impl Sub for Outcomes {
    type Output = Outcomes;

    fn sub(self, before: Outcomes) -> Outcomes {
        Outcomes {
            failed: self.failed - before.failed,
            panicked: self.panicked - before.panicked,
            timed_out: self.timed_out - before.timed_out,
            cancelled: self.cancelled - before.cancelled,
            aborted: self.aborted - before.aborted,
            skipped: self.skipped - before.skipped,
            error_handlers: self.error_handlers - before.error_handlers,
        }
    }
}

/// Whether a `/stats` body satisfies the accounting invariant with nothing in flight.
pub fn settled(stats: &Value) -> Result<(), String> {
    let (scheduled, terminal, in_flight) = crate::common::task_counts(stats);
    if scheduled != terminal + in_flight || in_flight != 0 || stats["requests_in_flight"] != 0 {
        return Err(format!("not settled and balanced: {stats}"));
    }
    Ok(())
}
