//! The durable job actions: retry, cancel, discard — when enabled, from the dashboard's own
//! pages.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};

use super::Dashboard;
use super::pages::{Here, missing};

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
    if dashboard
        .errands
        .rt()
        .attached::<crate::jobs::Durable>()
        .is_some()
    {
        return act_on(&dashboard.errands.jobs(), &here, id, &action).await;
    }
    let _ = (id, action);
    missing(&here, "This runtime has no durable jobs.")
}

#[cfg(feature = "durable")]
async fn act_on(jobs: &crate::jobs::Jobs, here: &Here, id: i64, action: &str) -> Response {
    use super::html::escape;
    use crate::durable::{JobId, StoreError};
    use crate::jobs::EnqueueError;
    use http::header;
    let id = JobId(id);
    let done = match action {
        "retry" => jobs.retry(id).await,
        "cancel" => jobs.cancel(id).await,
        "discard" => jobs.discard(id).await,
        _ => return missing(here, "No such action."),
    };
    match done {
        Ok(()) => {
            tracing::info!(target: "errands", job_id = id.0, action, "dashboard: durable job action");
            let location = format!("{}/jobs/{id}", here.0);
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        Err(EnqueueError::Store(StoreError::NotFound(_))) => missing(here, "No such job."),
        Err(EnqueueError::Store(StoreError::WrongState { state, .. })) => {
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
