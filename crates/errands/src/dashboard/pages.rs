//! What every page shares: where the dashboard is mounted, the 404 page, the compiled-in
//! assets.

use axum::extract::{OriginalUri, Path};
use axum::response::{Html, IntoResponse, Response};
use http::{StatusCode, Uri, header};

use super::html::{escape, page};

/// Where the dashboard is mounted, without a trailing `/`: the original path without the
/// part the dashboard's router saw.
pub(super) fn base(original: &str, inner: &str) -> String {
    let inner = inner.trim_end_matches('/');
    let original = original.trim_end_matches('/');
    original.strip_suffix(inner).unwrap_or(original).to_owned()
}

/// The page's mount point, from the request.
pub(super) struct Here(pub(super) String);

impl Here {
    pub(super) fn of(original: &OriginalUri, uri: &Uri) -> Self {
        Here(base(original.path(), uri.path()))
    }

    pub(super) fn page(&self, title: &str, body: &str) -> Html<String> {
        Html(page(&self.0, title, body))
    }
}

/// A 404 page.
pub(super) fn missing(here: &Here, what: &str) -> Response {
    let body = format!("<p>{}</p>", escape(what));
    (StatusCode::NOT_FOUND, here.page("Not found", &body)).into_response()
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
