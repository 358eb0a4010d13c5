//! The overview: the task counters and their rates, the durable queues, the shutdown phase;
//! the same numbers feed the live stream.

use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{OriginalUri, State};
use axum::response::Html;
use http::Uri;
use serde_json::{Value, json};

use super::Dashboard;
use super::html::escape;
use super::pages::Here;
use crate::runtime::Runtime;

/// The shutdown phase, as the overview shows it.
fn phase(rt: &Runtime) -> &'static str {
    if rt.aborted().is_cancelled() {
        "aborting"
    } else if rt.is_closed() {
        "stopping: no new tasks"
    } else if rt.started().is_cancelled() {
        "draining requests"
    } else {
        "serving"
    }
}

/// The overview's numbers, as the page renders them and the live stream sends them. The
/// durable jobs by state (finished ones too: a count over the whole table) only with
/// `all_jobs`, for the page: the stream sends the queues' unfinished jobs, which the store's
/// indexes count cheaply, every second.
pub(super) async fn snapshot(dashboard: &Dashboard, all_jobs: bool) -> Value {
    let rt = dashboard.errands.rt();
    #[cfg(not(feature = "durable"))]
    let _ = all_jobs;
    #[cfg_attr(not(feature = "durable"), allow(unused_mut))]
    let mut snapshot = json!({
        "stats": dashboard.errands.stats(),
        "phase": phase(rt),
        "errors_kept": rt.recent().errors_len(),
        "at": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
    });
    #[cfg(feature = "durable")]
    if let Some(durable) = rt.attached::<crate::jobs::Durable>() {
        snapshot["durable"] = durable_snapshot(&durable, all_jobs).await;
    }
    snapshot
}

#[cfg(feature = "durable")]
async fn durable_snapshot(durable: &crate::jobs::Durable, all_jobs: bool) -> Value {
    use crate::durable::Store;
    let now = SystemTime::now();
    let counts = match all_jobs {
        true => durable.store.counts().await.map(Some),
        false => Ok(None),
    };
    let (Ok(queues), Ok(counts)) = (durable.store.queues(now).await, counts) else {
        return json!({"error": "the job store did not answer"});
    };
    let queues: Vec<Value> = queues
        .into_iter()
        .map(|q| {
            let lag = q
                .oldest_due
                .and_then(|due| now.duration_since(due).ok())
                .unwrap_or_default();
            json!({"queue": q.queue, "held": q.held, "available": q.available,
                   "running": q.running, "lag_seconds": lag.as_secs_f64()})
        })
        .collect();
    let mut snapshot = json!({"queues": queues});
    if let Some(counts) = counts {
        let states: serde_json::Map<String, Value> = counts
            .into_iter()
            .map(|(state, n)| (state.as_str().to_owned(), json!(n)))
            .collect();
        snapshot["jobs"] = states.into();
    }
    snapshot
}

const COUNTERS: [(&str, &str); 13] = [
    ("scheduled", "scheduled"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("panicked", "panicked"),
    ("timed_out", "timed out"),
    ("cancelled", "cancelled"),
    ("aborted", "aborted"),
    ("skipped", "skipped"),
    ("rejected", "rejected"),
    ("pending", "pending"),
    ("queued", "queued"),
    ("running", "running"),
    ("requests_in_flight", "requests in flight"),
];

pub(super) async fn overview(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
) -> Html<String> {
    let snapshot = snapshot(&dashboard, true).await;
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Shutdown: <strong data-key=\"phase\">{}</strong> · reports kept: \
         <span data-key=\"errors_kept\">{}</span></p><h2>Tasks</h2>\
         <table class=\"counters\"><thead><tr><th>counter</th><th>total</th>\
         <th>per second</th></tr></thead><tbody>",
        escape(snapshot["phase"].as_str().unwrap_or_default()),
        snapshot["errors_kept"]
    );
    for (n, (key, label)) in COUNTERS.into_iter().enumerate() {
        // Rates of the totals; the last four are levels.
        let rate = if n < COUNTERS.len() - 4 {
            format!("<td data-rate=\"{key}\">–</td>")
        } else {
            "<td></td>".to_owned()
        };
        let _ = write!(
            body,
            "<tr><td>{label}</td><td data-stat=\"{key}\">{}</td>{rate}</tr>",
            snapshot["stats"][key]
        );
    }
    body.push_str("</tbody></table>");
    if let Some(durable) = snapshot.get("durable") {
        body.push_str(
            "<h2>Durable queues</h2><table class=\"queues\"><thead><tr><th>queue</th>\
             <th>held</th><th>available</th><th>running</th><th>oldest runnable waits</th>\
             </tr></thead><tbody id=\"queues\">",
        );
        for queue in durable["queues"].as_array().into_iter().flatten() {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td></tr>",
                escape(queue["queue"].as_str().unwrap_or_default()),
                queue["held"],
                queue["available"],
                queue["running"],
                queue["lag_seconds"].as_f64().unwrap_or_default()
            );
        }
        body.push_str("</tbody></table><p>Durable jobs by state, when the page was loaded: <span id=\"jobs\">");
        body.push_str(&escape(&durable["jobs"].to_string()));
        body.push_str("</span></p>");
    }
    let _ = write!(
        body,
        "<script type=\"application/json\" id=\"snapshot\">{}</script>",
        // Inside a script element only `</script>` could end it early.
        snapshot.to_string().replace('<', "\\u003c")
    );
    Here::of(&original, &uri).page("Overview", &body)
}
