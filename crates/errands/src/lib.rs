//! Background tasks and one central error pipeline for axum services.
//!
//! Handlers schedule background work through the [`Tasks`] extractor in three timing modes —
//! immediately, after the handler returns (`after_route`), after the response body was handed
//! to the server (`after_response`). Every task has a name, may be shielded through shutdown,
//! may run an `on_error` handler, and ends in exactly one terminal [`Outcome`] that is counted
//! in [`Stats`] and, unless it succeeded, reported once through the registered
//! [`Reporter`]s. Nothing is lost silently: a skipped, cancelled or aborted task is reported
//! by name, and tests can wait for exactly the work a request started
//! ([`testing::TestResponse::settle`]).
//!
//! ```
//! use axum::{Router, routing::post};
//! use errands::{Errands, ScheduleError, Tasks};
//!
//! async fn record_analytics() {}
//! async fn write_audit_record(order: u64) -> Result<(), std::io::Error> { Ok(()) }
//! async fn send_confirmation(order: u64) -> Result<(), std::io::Error> { Ok(()) }
//!
//! async fn create_order(tasks: Tasks) -> Result<&'static str, ScheduleError> {
//!     tasks.schedule(record_analytics())?;
//!     tasks.after_route().field("order_id", 7).schedule(write_audit_record(7))?;
//!     tasks.after_response().shield().schedule(send_confirmation(7))?;
//!     Ok("created")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let errands = Errands::new();
//! let app: Router = Router::new()
//!     .route("/orders", post(create_order))
//!     .layer(errands.layer());
//! # let _ = app;
//! // errands.serve(listener, app).await? serves until SIGTERM, then shuts down in order.
//! # }
//! ```
//!
//! Errors take one path too. Handlers return [`Error`] (any error converts with `?`) or
//! [`ApiError`]; the [`extract`] wrappers turn bad input into `422 validation_error`; the
//! layer maps every error through the catalog ([`ErrandsBuilder::map_error`]), renders it in
//! one schema with the request id (or as `application/problem+json`), and reports it once —
//! the same reporters that receive task failures.
//!
//! To watch the work run: `errands::metrics` (feature `metrics`) records counters equal to
//! [`Stats`], gauges and histograms through the `metrics` facade, and
//! `errands::dashboard` (feature `dashboard`) is a live dashboard `Router` of tasks, durable
//! jobs and errors, behind the application's authorization check.
//!
//! The precise rules — when each mode spawns, when tasks are skipped, the shutdown order and
//! the error pipeline — are in [`semantics`]; [`from_fastapi`] maps FastAPI's idioms to
//! errands.
//!
//! # Decisions
//!
//! * Add the layer last, so it is outermost: the status it sees is the final status.
//!   [`Errands::serve`] puts a guard outside every layer, so that a layer put outside it by
//!   mistake cannot bypass the pipeline.
//! * A task's own `on_error` replaces the runtime's default handler.
//! * A task's failure is reported before its `on_error` runs, so a handler that hangs or is
//!   aborted cannot hide it; a failing handler is reported separately.
//! * Without a request (a [`Tasks`] from [`Errands::tasks`], or after the request is over),
//!   `after_route` and `after_response` tasks start at once.
//! * Every response with a status of 400 or more is reported once. A handler's own non-empty
//!   JSON body for a 4xx is kept; every other error body is rendered in the schema.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    unused_qualifications,
    clippy::dbg_macro,
    clippy::todo,
    clippy::print_stdout,
    clippy::print_stderr
)]

// The modules from the lowest layer up: a module uses only the ones above it in this list
// (docs/ARCHITECTURE.md; checked by the `layers` test).
mod builder;
mod chain;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod durable;
mod errands;
mod errors;
mod exec;
pub mod extract;
#[cfg(feature = "faults")]
#[cfg_attr(docsrs, doc(cfg(feature = "faults")))]
pub mod faults;
#[cfg(not(feature = "faults"))]
mod faults;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod jobs;
pub mod layer;
mod lifecycle;
mod live;
pub mod logs;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "utoipa")]
#[cfg_attr(docsrs, doc(cfg(feature = "utoipa")))]
pub mod openapi;
#[cfg(feature = "dashboard")]
mod recent;
mod report;
mod request;
#[cfg(any(feature = "durable", feature = "dashboard"))]
mod rfc3339;
mod runtime;
mod scope;
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub mod sentry;
mod serve;
pub mod shutdown;
mod stats;
mod task;
mod tasks;
pub mod testing;
mod watch;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod ws;

#[doc = include_str!("docs/semantics.md")]
pub mod semantics {}

#[doc = include_str!("docs/fastapi.md")]
pub mod from_fastapi {}

pub use builder::ErrandsBuilder;
pub use errands::Errands;
pub use errors::{
    ApiError, Error, ErrorContext, Format, LayerMissing, Result, ValidationError, Violation,
};
pub use layer::{ErrandsLayer, ErrandsService};
pub use report::{ErrorLink, ErrorReport, Origin, Reporter, TracingReporter};
pub use request::{BodyTimedOut, Delivery, RequestId};
pub use shutdown::ShutdownSummary;
pub use stats::Stats;
pub use task::{
    BoxError, ErrorHandler, ErrorHandlers, Field, OnError, Outcome, RetryPolicy, ScheduleError,
    SharedError, SkipReason, TaskError, TaskId, TaskInfo, TaskResult, Timing,
};
pub use tasks::{RetryBuilder, TaskBuilder, Tasks};
