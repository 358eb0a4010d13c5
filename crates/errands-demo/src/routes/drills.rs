//! Fault drills, served only with `--fault-injection`: each request says which faults its
//! handler and its tasks have, so that a load generator can inject errors, panics, failing
//! `on_error` handlers, timeouts and retries at rates it chooses, and then check the
//! service's accounting against exactly what it asked for.
//!
//! `POST /drills` body (every field optional):
//!
//! ```json
//! {"handler": "ok" | "error" | "panic",
//!  "tasks": [{"timing": "immediate" | "after_route" | "after_response",
//!             "fault": "none" | "error" | "panic" | "timeout" | "flaky",
//!             "on_error": "default" | "ok" | "error" | "panic",
//!             "shield": false, "work_ms": 0}],
//!  "stream_chunks": 0}
//! ```
//!
//! Every drill task is named `drill`, carries its fault as a field, and runs under a retry
//! policy of two attempts: `error` fails both, `flaky` fails only the first, `timeout` hangs
//! past a 20 ms limit in both, `panic` is not retried. A handler that fails or panics puts
//! [`INTERNAL_DETAIL`] in its error, which its 500 body must never show. With
//! `stream_chunks`, the 202 body is streamed in 16 KiB chunks, one per millisecond, so a
//! client can leave in the middle of it.
//!
//! `GET /ops/idle` waits for [`Errands::idle`] and returns the stats. It is served outside
//! the errands layer: inside it, the request would wait for itself.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use errands::extract::Json;
use errands::{Errands, RetryPolicy, ScheduleError, Stats, TaskInfo, Tasks};
use errands::{ValidationError, Violation};
use serde::Deserialize;

/// Text that drill failures carry and that no response body may contain.
pub const INTERNAL_DETAIL: &str = "internal detail: token=0xDEADBEEF";

const MAX_TASKS: usize = 16;
const MAX_WORK_MS: u64 = 600_000;
const MAX_CHUNKS: u16 = 1024;
const CHUNK: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_millis(20);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    #[serde(default)]
    handler: HandlerFault,
    #[serde(default)]
    tasks: Vec<DrillTask>,
    #[serde(default)]
    stream_chunks: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillTask {
    #[serde(default)]
    timing: Timing,
    #[serde(default)]
    fault: Fault,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    shield: bool,
    #[serde(default)]
    work_ms: u64,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Timing {
    #[default]
    Immediate,
    AfterRoute,
    AfterResponse,
}

/// What the drill's handler does.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HandlerFault {
    #[default]
    Ok,
    Error,
    Panic,
}

/// What a drill task does.
#[derive(Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Fault {
    #[default]
    None,
    Error,
    Panic,
    Timeout,
    Flaky,
}

impl Fault {
    fn as_str(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Error => "error",
            Fault::Panic => "panic",
            Fault::Timeout => "timeout",
            Fault::Flaky => "flaky",
        }
    }
}

/// A drill task's `on_error`: the runtime's default, or a handler that has `fault`.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OnError {
    #[default]
    Default,
    Ok,
    Error,
    Panic,
}

/// A drill's injected failure.
#[derive(Debug, thiserror::Error)]
#[error("drill failure ({INTERNAL_DETAIL})")]
pub struct DrillFailure;

pub async fn run(tasks: Tasks, Json(drill): Json<Drill>) -> errands::Result<Response> {
    drill.validate()?;
    for task in &drill.tasks {
        schedule(&tasks, task)?;
    }
    match drill.handler {
        HandlerFault::Error => return Err(DrillFailure.into()),
        HandlerFault::Panic => panic!("drill handler panicked ({INTERNAL_DETAIL})"),
        HandlerFault::Ok => {}
    }
    let body = match drill.stream_chunks {
        0 => Body::from("drill accepted"),
        chunks => Body::from_stream(stream(chunks)),
    };
    Ok((StatusCode::ACCEPTED, body).into_response())
}

impl Drill {
    fn validate(&self) -> Result<(), ValidationError> {
        let violation = |loc: Vec<serde_json::Value>, msg: &str| {
            Err(Violation::new(loc, msg, "value_error").into())
        };
        if self.tasks.len() > MAX_TASKS {
            return violation(
                vec!["body".into(), "tasks".into()],
                &format!("must list at most {MAX_TASKS} tasks"),
            );
        }
        if self.stream_chunks > MAX_CHUNKS {
            return violation(
                vec!["body".into(), "stream_chunks".into()],
                &format!("must be at most {MAX_CHUNKS}"),
            );
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if task.work_ms > MAX_WORK_MS {
                let loc = vec!["body".into(), "tasks".into(), i.into(), "work_ms".into()];
                return violation(loc, &format!("must be at most {MAX_WORK_MS}"));
            }
        }
        Ok(())
    }
}

fn schedule(tasks: &Tasks, task: &DrillTask) -> Result<(), ScheduleError> {
    let builder = match task.timing {
        Timing::Immediate => tasks.immediate(),
        Timing::AfterRoute => tasks.after_route(),
        Timing::AfterResponse => tasks.after_response(),
    };
    let mut builder = builder.name("drill").field("fault", task.fault.as_str());
    if task.shield {
        builder = builder.shield();
    }
    if task.fault == Fault::Timeout {
        builder = builder.timeout(TIMEOUT);
    }
    let handler = task.on_error;
    if !matches!(handler, OnError::Default) {
        builder = builder.on_error(move |_, _| error_handler(handler));
    }
    let (fault, work) = (task.fault, Duration::from_millis(task.work_ms));
    builder
        .retry(RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(2))
        .schedule(move || drill_task(fault, work))?;
    Ok(())
}

async fn drill_task(fault: Fault, work: Duration) -> Result<(), DrillFailure> {
    if !work.is_zero() {
        tokio::time::sleep(work).await; // simulated work
    }
    let attempt = TaskInfo::current().map_or(1, |t| t.attempt());
    match fault {
        Fault::None => Ok(()),
        Fault::Flaky if attempt > 1 => Ok(()),
        Fault::Error | Fault::Flaky => Err(DrillFailure),
        Fault::Panic => panic!("drill task panicked ({INTERNAL_DETAIL})"),
        Fault::Timeout => std::future::pending().await,
    }
}

async fn error_handler(handler: OnError) -> Result<(), DrillFailure> {
    match handler {
        OnError::Ok | OnError::Default => Ok(()),
        OnError::Error => Err(DrillFailure),
        OnError::Panic => panic!("drill error handler panicked ({INTERNAL_DETAIL})"),
    }
}

/// `chunks` chunks of 16 KiB, one per millisecond.
fn stream(
    chunks: u16,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold(chunks, |left| async move {
        if left == 0 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await; // a slow producer
        Some((Ok(Bytes::from_static(&[b'.'; CHUNK])), left - 1))
    })
}

/// Waits until no request is inside the errands layer, no task is in flight and no durable
/// job is unfinished, then returns the stats.
pub async fn idle(State(errands): State<Errands>) -> axum::Json<Stats> {
    loop {
        errands.idle().await;
        if !jobs_in_flight(&errands).await {
            return axum::Json(errands.stats());
        }
        // The worker claims what is due at its next look, a retry when its backoff ends.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Whether a durable job is held, runnable (a retry's backoff included: the demo schedules
/// nothing for later) or running.
async fn jobs_in_flight(errands: &Errands) -> bool {
    use errands::durable::{JobState, Store};
    let Some(store) = errands.jobs().store().cloned() else {
        return false;
    };
    match store.counts().await {
        Ok(counts) => counts.iter().any(|(state, _)| {
            matches!(
                state,
                JobState::Held | JobState::Available | JobState::Running
            )
        }),
        Err(_) => true,
    }
}
