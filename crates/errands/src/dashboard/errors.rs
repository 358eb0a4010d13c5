//! The error feed: every report, newest first.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::response::Html;
use http::Uri;

use super::Dashboard;
use super::html::{escape, time};
use super::pages::Here;

/// Reports shown in the error feed.
const ERRORS_SHOWN: usize = 200;

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
            escape(report.method.as_ref().map_or("", |m| m.as_str())),
            escape(report.route.as_deref().unwrap_or_default()),
            escape(report.request_id.as_ref().map_or("", |id| id.as_str())),
        );
    }
    body.push_str("</tbody></table>");
    Here::of(&original, &uri).page("Errors", &body)
}
