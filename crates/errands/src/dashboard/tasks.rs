//! The task list: in-memory tasks and durable jobs in one state model, filtered, paged.

use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{OriginalUri, RawQuery, State};
use axum::response::Html;
use http::Uri;
use serde::Deserialize;

use super::Dashboard;
use super::html::{badge, escape, fields, maybe_time, time};
use super::pages::Here;
use crate::recent::TaskRecord;

/// Rows on a page of the task list, and the most pages.
const PAGE: usize = 50;
const MAX_PAGES: usize = 10;

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
pub(super) fn job_state(state: crate::durable::JobState) -> &'static str {
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
        .take(wanted + 1)
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
            // One more than the pages shown: whether an older page exists.
            let mut filter = JobFilter::new().limit(wanted as u32 + 1);
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
