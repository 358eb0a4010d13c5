//! Sentry: [`SentryReporter`] sends one Sentry event per [`ErrorReport`].
//!
//! Every error of a handler, every rejected request and every task that did not succeed
//! reaches the registered reporters exactly once (see [`semantics`](crate::semantics)). Register
//! a `SentryReporter` and each of those reports at or above its minimum level (`ERROR` by
//! default) becomes one Sentry event, carrying the request id, route and status, or the task's
//! name, attempt and explicit fields.
//!
//! errands depends only on `sentry-core`. The application sets up the SDK with the `sentry`
//! crate, version 0.49, the same minor version: with another one, Cargo builds two copies of
//! `sentry-core`, and errands' copy, having no client, sends nothing.
//!
//! # Setup
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use errands::Errands;
//! use errands::sentry::SentryReporter;
//! use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
//! use tracing::Level;
//! use tracing_subscriber::filter::filter_fn;
//! use tracing_subscriber::prelude::*;
//!
//! fn main() {
//!     // Before the tokio runtime starts: each thread's hub starts as a copy of the main hub
//!     // when the thread first uses it. The DSN comes from `SENTRY_DSN`.
//!     // Without Sentry's panic hook (add back the other integrations you use), and with
//!     // errands' instead: one event per panic, see "Where each error goes" below.
//!     let _sentry = sentry::init(sentry::ClientOptions::new().default_integrations(false));
//!     std::panic::set_hook(errands::logs::panic_hook());
//!
//!     tracing_subscriber::registry()
//!         .with(tracing_subscriber::fmt::layer())
//!         // errands' report events and other INFO and WARN events: breadcrumbs.
//!         .with(BreadcrumbLayer::new().with_filter(filter_fn(|metadata| {
//!             errands::sentry::is_report_event(metadata)
//!                 || matches!(*metadata.level(), Level::WARN | Level::INFO)
//!         })))
//!         // Other ERROR events: Sentry events. The reports come from the SentryReporter.
//!         .with(ErrorLayer::new().with_filter(filter_fn(|metadata| {
//!             *metadata.level() == Level::ERROR && !errands::sentry::is_report_event(metadata)
//!         })))
//!         .init();
//!
//!     tokio::runtime::Runtime::new().unwrap().block_on(async {
//!         let errands = Errands::builder().reporter(SentryReporter::new()).build();
//!         let app: Router = Router::new()
//!             .route("/orders", post(|| async { "created" }))
//!             .layer(errands.layer());
//!         let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await.unwrap();
//!         errands.serve(listener, app).await.unwrap();
//!     });
//! }
//! ```
//!
//! # Where each error goes
//!
//! Each failure should reach Sentry through one path only:
//!
//! * **Reports** — handler errors, rejections, task failures, failing `on_error` handlers,
//!   teardown hooks, WebSocket closes: the `SentryReporter`, one event each.
//! * **errands' tracing events** — the default [`TracingReporter`](crate::TracingReporter)
//!   writes one event per report (target `errands`, level `ERROR` for failures). Routed to
//!   Sentry's error layer they would make a second event for the same failure; route them to
//!   the breadcrumb layer, as above, with [`is_report_event`]. With the combined layer of
//!   `sentry-tracing` (`sentry::integrations::tracing::layer()`), the same rule as an event
//!   filter:
//!
//!   ```text
//!   .event_filter(|metadata| match *metadata.level() {
//!       _ if errands::sentry::is_report_event(metadata) => EventFilter::Breadcrumb,
//!       Level::ERROR => EventFilter::Event,
//!       Level::WARN | Level::INFO => EventFilter::Breadcrumb,
//!       _ => EventFilter::Ignore,
//!   })
//!   ```
//!
//!   Sentry's `LogLayer` sends structured logs, not events: errands' events may go there too.
//! * **Handlers** return their errors; they do not call `sentry::capture_error` — the
//!   pipeline reports what they return.
//! * **`on_error` handlers** do not call `sentry::capture_error` either: a task's failure is
//!   reported, and so sent, before its `on_error` handler runs. A failing `on_error` handler is
//!   reported by itself (origin `error_handler`).
//! * **Panics** in handlers, tasks, `on_error` handlers, mappers and renderers are caught and
//!   reported by errands, with the request or task they belong to. Sentry's panic integration
//!   (the `panic` feature of the `sentry` crate, on by default) installs a panic hook that
//!   runs for every panic, caught or not — with it, each such panic arrives twice. Leave it
//!   out (`ClientOptions::default_integrations(false)` and the integrations to keep in
//!   `ClientOptions::integrations`, or `sentry` without its `panic` feature) and install
//!   [`logs::panic_hook`](crate::logs::panic_hook) after `sentry::init`: it logs a panic
//!   errands catches at `DEBUG` (the report is the event) and any other panic — in `main`, in
//!   the application's own threads — at `ERROR`, which the error layer above sends as one
//!   event.
//!
//! # Hubs
//!
//! By default the reporter captures with the current hub of the thread that reports, as the
//! SDK's own integrations do: handler errors while the request's future is polled (a hub bound
//! to it — for example by `sentry-tower`'s layer placed outside the errands layer — is used),
//! task reports on the runtime's worker threads, whose hubs start as copies of the main hub.
//! Initialize the SDK before the runtime starts, so that those copies have the client.
//! [`SentryReporter::hub`] pins one hub instead.
//!
//! # The event
//!
//! * exceptions: the original error ([`ErrorReport::error`]) and its `source()` chain (the
//!   same links as the report's chain), each converted as the SDK converts errors
//!   (`sentry_core::event_from_error`), innermost first; without an original error, the
//!   report's [`chain`](ErrorReport::chain), each link typed by its Rust type name where known,
//!   otherwise by the outcome (`panicked`, `timed_out`, …) or the origin; without a chain
//!   (cancelled, aborted, skipped tasks), none;
//! * message: the report's [`message`](field@ErrorReport::message); level:
//!   [`ErrorReport::level`]; logger: `errands`; transaction: the route;
//! * tags: `origin`, `outcome`, `request_id`, `route`, `method`, `status`, `code`,
//!   `task.name`, `task.timing` — those that are known;
//! * extra: `handled`, `task.id`, `task.attempt`, `task.fields` (the explicit fields as one
//!   JSON object; task arguments are never part of a report), `skip_reason`.

use std::fmt;
use std::sync::Arc;

use sentry_core::Hub;
use sentry_core::protocol::{Event, Exception, Level as SentryLevel, Map, Value};
use tracing::Level;

use crate::report::{ErrorReport, Reporter};

/// The longest tag value Sentry accepts, in characters.
const MAX_TAG: usize = 200;

/// A [`Reporter`] that sends one Sentry event per report at or above its minimum level.
///
/// Capturing hands the event to the SDK's transport, which sends it in the background; the
/// reporter never waits on the network.
///
/// ```
/// use errands::Errands;
/// use errands::sentry::SentryReporter;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let errands = Errands::builder()
///     .reporter(SentryReporter::new().min_level(tracing::Level::WARN))
///     .build();
/// # let _ = errands;
/// # }
/// ```
#[derive(Clone)]
pub struct SentryReporter {
    min_level: Level,
    hub: Option<Arc<Hub>>,
}

impl SentryReporter {
    /// A reporter for reports of level `ERROR`, capturing with the current hub.
    pub fn new() -> Self {
        SentryReporter {
            min_level: Level::ERROR,
            hub: None,
        }
    }

    /// Sends reports at `level` or more severe: `WARN` adds cancelled tasks and abnormally
    /// closed WebSocket connections, `INFO` adds client errors (4xx) and skipped tasks.
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }

    /// Captures with `hub` instead of the current hub of the reporting thread.
    pub fn hub(mut self, hub: Arc<Hub>) -> Self {
        self.hub = Some(hub);
        self
    }
}

impl Default for SentryReporter {
    fn default() -> Self {
        SentryReporter::new()
    }
}

impl fmt::Debug for SentryReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryReporter")
            .field("min_level", &self.min_level)
            .field("hub", &self.hub.as_ref().map(|_| "pinned"))
            .finish()
    }
}

impl Reporter for SentryReporter {
    fn report(&self, report: &ErrorReport) {
        // tracing orders levels by verbosity: ERROR is the smallest.
        if report.level() > self.min_level {
            return;
        }
        let event = event_from_report(report);
        match &self.hub {
            Some(hub) => {
                hub.capture_event(event);
            }
            None => {
                sentry_core::capture_event(event);
            }
        }
    }
}

/// The Sentry event for `report`, as [`SentryReporter`] sends it (see the
/// [module docs](self#the-event)).
pub fn event_from_report(report: &ErrorReport) -> Event<'static> {
    let mut tags = Map::new();
    let mut tag = |key: &str, value: &str| {
        tags.insert(key.to_owned(), tag_value(value));
    };
    tag("origin", report.origin.as_str());
    if let Some(outcome) = report.outcome {
        tag("outcome", outcome.as_str());
    }
    if let Some(id) = &report.request_id {
        tag("request_id", id.as_str());
    }
    if let Some(route) = &report.route {
        tag("route", route);
    }
    if let Some(method) = &report.method {
        tag("method", method.as_str());
    }
    if let Some(status) = report.status {
        tag("status", status.as_str());
    }
    if let Some(code) = &report.code {
        tag("code", code);
    }

    let mut extra = Map::new();
    extra.insert("handled".to_owned(), Value::Bool(report.handled));
    if let Some(task) = &report.task {
        tag("task.name", task.name());
        tag("task.timing", task.timing().as_str());
        extra.insert("task.id".to_owned(), task.id().as_u64().into());
        extra.insert("task.attempt".to_owned(), task.attempt().into());
        if !task.fields().is_empty() {
            extra.insert("task.fields".to_owned(), task.fields_json());
        }
    }
    if let Some(reason) = report.skip_reason {
        extra.insert("skip_reason".to_owned(), reason.to_string().into());
    }

    Event {
        level: level(report.level()),
        message: (!report.message.is_empty()).then(|| report.message.to_string()),
        logger: Some("errands".to_owned()),
        transaction: report.route.clone(),
        exception: exceptions(report).into(),
        tags,
        extra,
        ..Default::default()
    }
}

/// Whether a `tracing` event is one of the events the [`TracingReporter`](crate::TracingReporter)
/// writes for a report — target `errands`, with the report's fields. With a
/// [`SentryReporter`] registered, those failures already reach Sentry; route these events to
/// breadcrumbs (see the [module docs](self#where-each-error-goes)). errands' other events
/// (shutdown progress, a server error while draining, a reporter that panicked) are not
/// reports and return `false`.
pub fn is_report_event(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() == "errands"
        && metadata.fields().field("origin").is_some()
        && metadata.fields().field("handled").is_some()
}

fn level(level: Level) -> SentryLevel {
    match level {
        Level::ERROR => SentryLevel::Error,
        Level::WARN => SentryLevel::Warning,
        Level::INFO => SentryLevel::Info,
        _ => SentryLevel::Debug,
    }
}

/// The exceptions, innermost first, as Sentry orders them.
fn exceptions(report: &ErrorReport) -> Vec<Exception> {
    if let Some(error) = report.error() {
        // The SDK converts each link; the walk is errands' own, bounded in depth, so that an
        // error whose `source()` chain loops cannot hold up the reporting thread.
        let mut exceptions: Vec<Exception> = crate::chain::walk(error)
            .flat_map(|link| sentry_core::event_from_error(&Link(link)).exception.values)
            .map(|mut exception| {
                exception.value = exception
                    .value
                    .map(|value| crate::chain::bounded(value, crate::chain::MAX_MESSAGE));
                exception
            })
            .collect();
        exceptions.reverse();
        return exceptions;
    }
    let kind = report
        .outcome
        .map_or(report.origin.as_str(), |outcome| outcome.as_str());
    report
        .chain
        .iter()
        .rev()
        .map(|link| Exception {
            ty: link.type_name.unwrap_or(kind).to_owned(),
            value: Some(link.message.clone()),
            ..Default::default()
        })
        .collect()
}

/// One error of a chain, without its sources.
struct Link<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Debug for Link<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Link<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl std::error::Error for Link<'_> {}

fn tag_value(value: &str) -> String {
    match value.char_indices().nth(MAX_TAG) {
        Some((cut, _)) => value[..cut].to_owned(),
        None => value.to_owned(),
    }
}
