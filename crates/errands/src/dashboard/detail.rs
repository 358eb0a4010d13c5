//! A task's or a durable job's page: its attempts with their error chains, and the request
//! that scheduled it.

use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use http::Uri;

use super::Dashboard;
use super::html::{badge, duration, escape, fields, maybe_time, relative, time};
use super::pages::{Here, missing};
use crate::recent::{TaskRecord, TaskState};
use crate::runtime::Runtime;
use crate::task::TaskId;

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

/// An error chain's links as list items: each one's type, when known, and its message.
fn chain(links: &[crate::report::ErrorLink]) -> String {
    let mut html = String::new();
    for link in links {
        let _ = write!(
            html,
            "<li>{}<span class=\"message\">{}</span></li>",
            link.type_name
                .map(|t| format!("<code class=\"type\">{}</code> ", escape(t)))
                .unwrap_or_default(),
            escape(&link.message)
        );
    }
    html
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
        let _ = write!(
            html,
            "<ol class=\"chain\">{}</ol></li>",
            chain(&attempt.chain)
        );
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
    use http::StatusCode;
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
        badge(super::tasks::job_state(status.state)),
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
            Some(local) => body.push_str(&chain(&local.chain)),
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
