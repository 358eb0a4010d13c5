//! The dashboard's pages: overview, tasks, a task, a job, errors; the durable job actions;
//! the compiled-in assets.

use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Dashboard;
use super::html::{badge, duration, escape, fields, maybe_time, page, relative, time};
use crate::recent::{TaskRecord, TaskState};
use crate::runtime::Runtime;
use crate::task::TaskId;

/// Rows on a page of the task list, and the most pages.
const PAGE: usize = 50;
const MAX_PAGES: usize = 10;

/// Reports shown in the error feed.
const ERRORS_SHOWN: usize = 200;

/// Where the dashboard is mounted, without a trailing `/`: the original path without the
/// part the dashboard's router saw.
pub(super) fn base(original: &str, inner: &str) -> String {
    let inner = inner.trim_end_matches('/');
    let original = original.trim_end_matches('/');
    original.strip_suffix(inner).unwrap_or(original).to_owned()
}

/// The page's mount point, from the request.
struct Here(String);

impl Here {
    fn of(original: &OriginalUri, uri: &Uri) -> Self {
        Here(base(original.path(), uri.path()))
    }

    fn page(&self, title: &str, body: &str) -> Html<String> {
        Html(page(&self.0, title, body))
    }
}

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

/// The overview's numbers, as the page renders them and the live stream sends them.
pub(super) async fn snapshot(dashboard: &Dashboard) -> Value {
    let rt = dashboard.errands.rt();
    #[cfg_attr(not(feature = "durable"), allow(unused_mut))]
    let mut snapshot = json!({
        "stats": dashboard.errands.stats(),
        "phase": phase(rt),
        "errors_kept": rt.recent().errors().len(),
        "at": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
    });
    #[cfg(feature = "durable")]
    if let Some(durable) = rt.attached::<crate::jobs::Durable>() {
        snapshot["durable"] = durable_snapshot(&durable).await;
    }
    snapshot
}

#[cfg(feature = "durable")]
async fn durable_snapshot(durable: &crate::jobs::Durable) -> Value {
    use crate::durable::Store;
    let now = SystemTime::now();
    let (queues, counts) = (
        durable.store.queues(now).await,
        durable.store.counts().await,
    );
    let (Ok(queues), Ok(counts)) = (queues, counts) else {
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
    let states: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(state, n)| (state.as_str().to_owned(), json!(n)))
        .collect();
    json!({"queues": queues, "jobs": states})
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
    let snapshot = snapshot(&dashboard).await;
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
        body.push_str("</tbody></table><p>Durable jobs by state: <span id=\"jobs\">");
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

#[derive(Default, Deserialize)]
struct TasksQuery {
    name: Option<String>,
    state: Option<String>,
    page: Option<usize>,
}

/// A row of the task list: an in-memory task or a durable job.
enum Row {
    Task(TaskRecord),
    #[cfg(feature = "durable")]
    Job(crate::durable::JobStatus),
}

impl Row {
    fn at(&self) -> SystemTime {
        match self {
            Row::Task(task) => task.scheduled_at,
            #[cfg(feature = "durable")]
            Row::Job(job) => job.enqueued_at,
        }
    }
}

/// A durable job's state in the dashboard's one state model.
#[cfg(feature = "durable")]
fn job_state(state: crate::durable::JobState) -> &'static str {
    use crate::durable::JobState;
    match state {
        JobState::Held => "pending",
        JobState::Available => "queued",
        other => other.as_str(),
    }
}

#[cfg(feature = "durable")]
fn job_filter_state(state: &str) -> Option<Option<crate::durable::JobState>> {
    use crate::durable::JobState;
    Some(Some(match state {
        "pending" => JobState::Held,
        "queued" => JobState::Available,
        other => JobState::parse(other)?, // `None`: a state jobs never have
    }))
}

pub(super) async fn tasks(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Html<String> {
    let query: TasksQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let name = query.name.filter(|n| !n.is_empty());
    let state = query.state.filter(|s| !s.is_empty());
    let page_no = query.page.unwrap_or(0).min(MAX_PAGES - 1);
    let wanted = (page_no + 1) * PAGE;
    let rt = dashboard.errands.rt();
    let mut rows: Vec<Row> = rt
        .recent()
        .tasks()
        .into_iter()
        // A durable job's attempts are shown with their job.
        .filter(|task| task.info.meta.report_key.is_none())
        .filter(|task| name.as_deref().is_none_or(|n| task.info.name() == n))
        .filter(|task| state.as_deref().is_none_or(|s| task.state.as_str() == s))
        .take(wanted)
        .map(Row::Task)
        .collect();
    #[cfg_attr(not(feature = "durable"), allow(unused_mut))]
    let mut note = String::new();
    #[cfg(feature = "durable")]
    if let Some(durable) = rt.attached::<crate::jobs::Durable>() {
        use crate::durable::{JobFilter, Store};
        let states = match state.as_deref() {
            None => Some(None),
            Some(state) => job_filter_state(state),
        };
        if let Some(job_state) = states {
            let mut filter = JobFilter::new().limit(wanted as u32);
            filter.state = job_state;
            filter.kind = name.clone();
            match durable.store.jobs(&filter).await {
                Ok(jobs) => rows.extend(jobs.into_iter().map(Row::Job)),
                Err(_) => note.push_str("<p class=\"warn\">The job store did not answer.</p>"),
            }
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.at()));
    let more = rows.len() > wanted;
    let rows: Vec<&Row> = rows.iter().skip(page_no * PAGE).take(PAGE).collect();

    let mut body = String::new();
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"tasks\">\
         <label>name <input name=\"name\" value=\"{}\"></label>\
         <label>state <select name=\"state\"><option value=\"\">any</option>",
        escape(name.as_deref().unwrap_or_default())
    );
    for option in [
        "pending",
        "queued",
        "running",
        "succeeded",
        "failed",
        "panicked",
        "timed_out",
        "cancelled",
        "aborted",
        "skipped",
        "discarded",
    ] {
        let selected = if state.as_deref() == Some(option) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{option}</option>");
    }
    body.push_str("</select></label><button>Filter</button></form>");
    body.push_str(&note);
    body.push_str(
        "<table class=\"tasks\"><thead><tr><th>kind</th><th>id</th><th>name</th><th>state</th>\
         <th>timing / queue</th><th>attempt</th><th>request</th><th>scheduled</th>\
         <th>finished</th><th>fields</th></tr></thead><tbody>",
    );
    for row in rows {
        match row {
            Row::Task(task) => {
                let id = task.info.id().as_u64();
                let _ = write!(
                    body,
                    "<tr><td>task</td><td><a href=\"tasks/{id}\">{id}</a></td><td>{}</td>\
                     <td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
                     <td>{}</td><td>{}</td></tr>",
                    escape(task.info.name()),
                    badge(task.state.as_str()),
                    task.info.timing(),
                    task.attempts.last().map_or(1, |a| a.attempt),
                    escape(task.info.request_id().map_or("", |id| id.as_str())),
                    time(task.scheduled_at),
                    maybe_time(task.finished_at),
                    fields(&task.info.fields_json()),
                );
            }
            #[cfg(feature = "durable")]
            Row::Job(job) => {
                let _ = write!(
                    body,
                    "<tr><td>job</td><td><a href=\"jobs/{id}\">{id}</a></td><td>{}</td>\
                     <td>{}</td><td>{}</td><td>{}/{}</td><td><code>{}</code></td><td>{}</td>\
                     <td>{}</td><td>{}</td></tr>",
                    escape(&job.kind),
                    badge(job_state(job.state)),
                    escape(&job.queue),
                    job.attempt,
                    job.max_attempts,
                    escape(job.request_id.as_deref().unwrap_or_default()),
                    time(job.enqueued_at),
                    maybe_time(job.finished_at),
                    fields(&job.fields),
                    id = job.id,
                );
            }
        }
    }
    body.push_str("</tbody></table><p class=\"pages\">");
    let link = |page: usize| {
        let query = serde_urlencoded::to_string([
            ("name", name.as_deref().unwrap_or_default()),
            ("state", state.as_deref().unwrap_or_default()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("tasks?{}", escape(&query))
    };
    if page_no > 0 {
        let _ = write!(body, "<a href=\"{}\">newer</a> ", link(page_no - 1));
    }
    if more && page_no + 1 < MAX_PAGES {
        let _ = write!(body, "<a href=\"{}\">older</a>", link(page_no + 1));
    }
    body.push_str("</p>");
    Here::of(&original, &uri).page("Tasks", &body)
}

/// A 404 page.
fn missing(here: &Here, what: &str) -> Response {
    let body = format!("<p>{}</p>", escape(what));
    (StatusCode::NOT_FOUND, here.page("Not found", &body)).into_response()
}

/// The request that scheduled a task or enqueued a job: its id, method, route and status,
/// its trace, and when its response finished relative to `started` (the task's start).
fn request_section(
    rt: &Runtime,
    id: Option<&str>,
    traceparent: Option<&str>,
    known: Option<(String, String, Option<u16>)>,
    started: Option<SystemTime>,
) -> String {
    let Some(id) = id else {
        return "<h2>Request</h2><p>Scheduled outside a request.</p>".to_owned();
    };
    let finished = rt.recent().request(id);
    let (method, route, status) = match (&finished, known) {
        (Some(request), _) => (
            request.method.to_string(),
            request.route.clone().unwrap_or_default(),
            request.status.map(|s| s.as_u16()),
        ),
        (None, Some(known)) => known,
        (None, None) => (String::new(), String::new(), None),
    };
    let mut html = format!(
        "<h2>Request</h2><dl class=\"request\"><dt>id</dt><dd><code>{}</code></dd>\
         <dt>trace</dt><dd><code>{}</code></dd>\
         <dt>method</dt><dd>{}</dd><dt>route</dt><dd>{}</dd><dt>status</dt><dd>{}</dd>",
        escape(id),
        escape(traceparent.unwrap_or("–")),
        escape(&method),
        escape(&route),
        status.map_or_else(|| "–".to_owned(), |s| s.to_string())
    );
    let _ = write!(
        html,
        "<dt>response finished</dt><dd>{}</dd></dl>",
        match (finished.map(|r| r.finished_at), started) {
            (Some(done), Some(started)) => format!(
                "{} ({} the task started)",
                time(done),
                relative(done, started)
            ),
            (Some(done), None) => time(done),
            (None, _) => "not seen in the recent requests".to_owned(),
        }
    );
    html
}

pub(super) async fn task(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
    Path(id): Path<u64>,
) -> Response {
    let here = Here::of(&original, &uri);
    let rt = dashboard.errands.rt();
    let Some(task) = rt.recent().task(TaskId(id)) else {
        return missing(&here, "This task is not in the recent history.");
    };
    let info = &task.info;
    let mut body = format!(
        "<dl class=\"task\"><dt>name</dt><dd>{}</dd><dt>state</dt><dd>{}</dd>\
         <dt>timing</dt><dd>{}</dd><dt>shielded</dt><dd>{}</dd><dt>scheduled</dt><dd>{}</dd>\
         <dt>started</dt><dd>{}</dd><dt>finished</dt><dd>{}</dd><dt>fields</dt><dd>{}</dd></dl>",
        escape(info.name()),
        badge(task.state.as_str()),
        info.timing(),
        info.is_shielded(),
        time(task.scheduled_at),
        maybe_time(task.started_at),
        maybe_time(task.finished_at),
        fields(&info.fields_json()),
    );
    body.push_str(&attempts_section(&task));
    let known = info.meta.request.as_deref().map(|request| {
        (
            request.method.to_string(),
            request.route().unwrap_or_default().to_owned(),
            request.status().map(|s| s.as_u16()),
        )
    });
    body.push_str(&request_section(
        rt,
        info.request_id().map(|id| id.as_str()),
        info.traceparent(),
        known,
        task.started_at,
    ));
    here.page(&format!("Task {id}"), &body).into_response()
}

/// A task's attempts that ended with an error, each with its chain, then how it ended.
fn attempts_section(task: &TaskRecord) -> String {
    let mut html = String::from("<h2>Attempts</h2><ol class=\"timeline\">");
    for attempt in &task.attempts {
        let _ = write!(
            html,
            "<li class=\"attempt failed\"><strong>attempt {}</strong> ended {} with an error",
            attempt.attempt,
            time(attempt.ended_at)
        );
        if let Some(retry_in) = attempt.retry_in {
            let _ = write!(html, "; retried after {}", duration(retry_in));
        }
        html.push_str("<ol class=\"chain\">");
        for link in &attempt.chain {
            let _ = write!(
                html,
                "<li>{}<span class=\"message\">{}</span></li>",
                link.type_name
                    .map(|t| format!("<code class=\"type\">{}</code> ", escape(t)))
                    .unwrap_or_default(),
                escape(&link.message)
            );
        }
        html.push_str("</ol></li>");
    }
    if let TaskState::Finished(outcome) = task.state {
        let class = if outcome == crate::task::Outcome::Succeeded {
            "attempt"
        } else {
            "attempt failed"
        };
        let _ = write!(
            html,
            "<li class=\"{class}\"><strong>{outcome}</strong> {}</li>",
            maybe_time(task.finished_at)
        );
    }
    html.push_str("</ol>");
    html
}

pub(super) async fn job(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
    Path(id): Path<i64>,
) -> Response {
    let here = Here::of(&original, &uri);
    #[cfg(feature = "durable")]
    if let Some(durable) = dashboard.errands.rt().attached::<crate::jobs::Durable>() {
        return job_page(&dashboard, &durable, &here, id).await;
    }
    let _ = (&dashboard, id);
    missing(&here, "This runtime has no durable jobs.")
}

#[cfg(feature = "durable")]
async fn job_page(
    dashboard: &Dashboard,
    durable: &crate::jobs::Durable,
    here: &Here,
    id: i64,
) -> Response {
    use crate::durable::{JobId, JobState, Store, StoreError};
    let id = JobId(id);
    let (status, attempts) = match durable.store.status(id).await {
        Ok(status) => (status, durable.store.attempts(id).await.unwrap_or_default()),
        Err(StoreError::NotFound(_)) => return missing(here, "No such job."),
        Err(_) => {
            let body = "<p class=\"warn\">The job store did not answer.</p>";
            return (StatusCode::SERVICE_UNAVAILABLE, here.page("Job", body)).into_response();
        }
    };
    let rt = dashboard.errands.rt();
    let mut body = format!(
        "<dl class=\"task\"><dt>type</dt><dd>{}</dd><dt>state</dt><dd>{}</dd>\
         <dt>queue</dt><dd>{}</dd><dt>attempts</dt><dd>{} of {}</dd><dt>enqueued</dt><dd>{}</dd>\
         <dt>due</dt><dd>{}</dd><dt>finished</dt><dd>{}</dd><dt>fields</dt><dd>{}</dd></dl>",
        escape(&status.kind),
        badge(job_state(status.state)),
        escape(&status.queue),
        status.attempt,
        status.max_attempts,
        time(status.enqueued_at),
        time(status.run_at),
        maybe_time(status.finished_at),
        fields(&status.fields),
    );
    // This process's attempts of the job carry the error chain with its types.
    let prefix = format!("job:{id}:");
    let ran_here: Vec<TaskRecord> = rt
        .recent()
        .tasks()
        .into_iter()
        .filter(|t| {
            t.info
                .meta
                .report_key
                .as_deref()
                .is_some_and(|key| key.starts_with(&prefix))
        })
        .collect();
    body.push_str("<h2>Attempts</h2><ol class=\"timeline\">");
    for attempt in &attempts {
        let local = ran_here
            .iter()
            .flat_map(|t| t.attempts.iter())
            .find(|a| a.attempt == attempt.attempt);
        let _ = write!(
            body,
            "<li class=\"attempt failed\"><strong>attempt {}</strong> ended {} with an error\
             <ol class=\"chain\">",
            attempt.attempt,
            time(attempt.finished_at)
        );
        match local {
            Some(local) => {
                for link in &local.chain {
                    let _ = write!(
                        body,
                        "<li>{}<span class=\"message\">{}</span></li>",
                        link.type_name
                            .map(|t| format!("<code class=\"type\">{}</code> ", escape(t)))
                            .unwrap_or_default(),
                        escape(&link.message)
                    );
                }
            }
            None => {
                let _ = write!(
                    body,
                    "<li><span class=\"message\">{}</span></li>",
                    escape(&attempt.error)
                );
            }
        }
        body.push_str("</ol></li>");
    }
    if status.state == JobState::Succeeded {
        let _ = write!(
            body,
            "<li class=\"attempt\"><strong>succeeded</strong> {}</li>",
            maybe_time(status.finished_at)
        );
    }
    body.push_str("</ol>");
    if dashboard.actions {
        body.push_str("<h2>Actions</h2><div class=\"actions\">");
        let allowed = [
            (
                "retry",
                matches!(
                    status.state,
                    JobState::Failed
                        | JobState::Cancelled
                        | JobState::Discarded
                        | JobState::Skipped
                ),
            ),
            (
                "cancel",
                matches!(status.state, JobState::Held | JobState::Available),
            ),
            (
                "discard",
                !matches!(status.state, JobState::Running | JobState::Discarded),
            ),
        ];
        for (action, enabled) in allowed {
            let disabled = if enabled { "" } else { " disabled" };
            let _ = write!(
                body,
                "<form method=\"post\" action=\"jobs/{id}/{action}\">\
                 <button id=\"{action}\"{disabled}>{action}</button></form>"
            );
        }
        body.push_str("</div>");
    } else {
        body.push_str("<p class=\"note\">Read-only: actions are not enabled.</p>");
    }
    let started = ran_here.iter().filter_map(|t| t.started_at).min();
    body.push_str(&request_section(
        rt,
        status.request_id.as_deref(),
        status.traceparent.as_deref(),
        None,
        started,
    ));
    here.page(&format!("Job {id}"), &body).into_response()
}

pub(super) async fn act(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let here = Here::of(&original, &uri);
    if !dashboard.actions {
        let body = "<p>The dashboard is read-only: actions are not enabled.</p>";
        return (StatusCode::FORBIDDEN, here.page("Refused", body)).into_response();
    }
    if !super::auth::same_origin(&headers) {
        let body = "<p>Actions are taken from the dashboard's own pages.</p>";
        return (StatusCode::FORBIDDEN, here.page("Refused", body)).into_response();
    }
    #[cfg(feature = "durable")]
    if let Some(durable) = dashboard.errands.rt().attached::<crate::jobs::Durable>() {
        return act_on(&durable, &here, id, &action).await;
    }
    let _ = (id, action);
    missing(&here, "This runtime has no durable jobs.")
}

#[cfg(feature = "durable")]
async fn act_on(durable: &crate::jobs::Durable, here: &Here, id: i64, action: &str) -> Response {
    use crate::durable::{JobId, Store, StoreError};
    let id = JobId(id);
    let done = match action {
        "retry" => durable.store.retry(id, SystemTime::now()).await,
        "cancel" => durable.store.cancel(id).await,
        "discard" => durable.store.discard(id).await,
        _ => return missing(here, "No such action."),
    };
    match done {
        Ok(()) => {
            if action == "retry" {
                durable.worker.wake();
            }
            tracing::info!(target: "errands", job_id = id.0, action, "dashboard: durable job action");
            let location = format!("{}/jobs/{id}", here.0);
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        Err(StoreError::NotFound(_)) => missing(here, "No such job."),
        Err(StoreError::WrongState { state, .. }) => {
            let body = format!(
                "<p>The job is {}: it cannot be {action}ed now.</p><p><a href=\"jobs/{id}\">back</a></p>",
                escape(state.as_str())
            );
            (StatusCode::CONFLICT, here.page("Refused", &body)).into_response()
        }
        Err(_) => {
            let body = "<p class=\"warn\">The job store did not answer.</p>";
            (StatusCode::SERVICE_UNAVAILABLE, here.page("Job", body)).into_response()
        }
    }
}

pub(super) async fn errors(
    State(dashboard): State<Arc<Dashboard>>,
    original: OriginalUri,
    uri: Uri,
) -> Html<String> {
    let rt = dashboard.errands.rt();
    let mut body = String::from(
        "<table class=\"errors\"><thead><tr><th>when</th><th>origin</th><th>what</th>\
         <th>status / code</th><th>request</th><th>task</th></tr></thead><tbody>",
    );
    for record in rt.recent().errors().into_iter().take(ERRORS_SHOWN) {
        let report = &record.report;
        let task = report.task.as_ref().map_or_else(String::new, |task| {
            let id = task.id().as_u64();
            match rt.recent().task(task.id()) {
                Some(_) => format!("<a href=\"tasks/{id}\">{}</a>", escape(task.name())),
                None => escape(task.name()),
            }
        });
        let chain: String = report
            .chain
            .iter()
            .map(|link| format!("<li>{}</li>", escape(&link.message)))
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><details><summary>{}</summary><ol class=\"chain\">\
             {chain}</ol></details></td><td>{} {}</td><td>{} {} <code>{}</code></td><td>{task}</td></tr>",
            time(record.at),
            report.origin.as_str(),
            escape(&report.message),
            report
                .status
                .map_or_else(String::new, |s| s.as_u16().to_string()),
            escape(report.code.as_deref().unwrap_or_default()),
            report.method.as_ref().map_or("", |m| m.as_str()),
            escape(report.route.as_deref().unwrap_or_default()),
            escape(report.request_id.as_ref().map_or("", |id| id.as_str())),
        );
    }
    body.push_str("</tbody></table>");
    Here::of(&original, &uri).page("Errors", &body)
}

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, text) = match file.as_str() {
        "dashboard.css" => ("text/css; charset=utf-8", CSS),
        "dashboard.js" => ("text/javascript; charset=utf-8", JS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::base;

    #[test]
    fn the_mount_point_is_the_original_path_without_the_inner_one() {
        assert_eq!(base("/ops/dashboard", "/"), "/ops/dashboard");
        assert_eq!(base("/ops/dashboard/", "/"), "/ops/dashboard");
        assert_eq!(base("/ops/dashboard/tasks/7", "/tasks/7"), "/ops/dashboard");
        assert_eq!(base("/tasks", "/tasks"), "");
    }
}
