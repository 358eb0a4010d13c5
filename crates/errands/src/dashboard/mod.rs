//! A live dashboard of the runtime's work (feature `dashboard`): an axum [`Router`] the
//! application mounts where it likes.
//!
//! **Closed by default.** Every request goes through an authorization check the application
//! supplies ([`Dashboard::authorize`], or the built-in token check [`Dashboard::token`]);
//! without one, every page answers `403`. It is **read-only** unless
//! [`Dashboard::actions`] enables the durable job actions (retry, cancel, discard), which
//! then also require the request to come from the dashboard's own pages (the browser's
//! `Sec-Fetch-Site: same-origin`, or an `Origin` naming the `Host`).
//!
//! **Views.** The overview (the [`Stats`](crate::Stats) counters and their rates, the
//! durable queues with their depth and lag, the shutdown phase), the tasks (in-memory tasks
//! and durable jobs in one state model, filtered by name and state, paged), a task's or a
//! job's detail (its attempts with their error chains, and the request that scheduled it:
//! its id, method, route, status, and when its response finished relative to the task's
//! start), and the error feed (every report — handler errors and task failures — newest
//! first). Pages are rendered on the server, with their stylesheet and script compiled in:
//! no CDN, no build step. The overview updates live over server-sent events, once a second,
//! and can be paused.
//!
//! **What it shows.** Arguments never: a task has none the runtime sees, and a durable job's
//! arguments stay in the store. Fields are shown. Memory is bounded: the in-memory history
//! keeps at most 10 000 unfinished and 1 000 finished tasks, 500 reports and 1 000 requests,
//! dropping the oldest; durable jobs are read from the store, a page at a time.
//!
//! **Where to mount it.** Outside the errands layer (nest it after `.layer(errands.layer())`):
//! the dashboard is not the service's work, so its requests — a live page is one that stays
//! open — are then not counted in flight (they would hold up [`Errands::idle`]), and its
//! refusals are not reported as the service's errors. Its live stream ends when shutdown
//! starts either way.
//!
//! ```
//! use axum::Router;
//! use axum::routing::get;
//! use errands::Errands;
//! use errands::dashboard::Dashboard;
//!
//! let errands = Errands::new();
//! let dashboard = Dashboard::new(&errands)
//!     .token("a long random secret") // or .authorize(|request| ...)
//!     .actions(true);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(errands.layer())
//!     .nest("/ops/dashboard", dashboard.router());
//! ```

mod actions;
mod auth;
mod detail;
mod errors;
mod html;
mod live;
mod overview;
mod pages;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use http::request::Parts;

use crate::errands::Errands;

/// An authorization check: `true` lets the request in.
type Check = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// The dashboard's configuration; [`router`](Self::router) makes its routes.
#[derive(Clone)]
pub struct Dashboard {
    errands: Errands,
    check: Option<Check>,
    token: Option<Arc<str>>,
    actions: bool,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field(
                "authorized",
                &(self.check.is_some() || self.token.is_some()),
            )
            .field("actions", &self.actions)
            .finish()
    }
}

impl Dashboard {
    /// A dashboard of `errands`: closed until an authorization check is given, read-only.
    pub fn new(errands: &Errands) -> Self {
        Dashboard {
            errands: errands.clone(),
            check: None,
            token: None,
            actions: false,
        }
    }

    /// Lets in the requests `check` accepts (it sees the method, URI and headers: a session
    /// cookie, a header set by an authenticating proxy…); the others get `403`.
    pub fn authorize(mut self, check: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Lets in the requests that carry `token`: as `Authorization: Bearer TOKEN`, or in the
    /// dashboard's cookie, which opening any page with `?token=TOKEN` sets (`HttpOnly`,
    /// `SameSite=Strict`, for the dashboard's path) before redirecting to the page without
    /// it. Compared in constant time. With [`authorize`](Self::authorize) as well, a request
    /// passes either.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token: String = token.into();
        self.token = (!token.is_empty()).then(|| token.into());
        self
    }

    /// Enables (or disables) the durable job actions: retry, cancel and discard.
    pub fn actions(mut self, enabled: bool) -> Self {
        self.actions = enabled;
        self
    }

    /// The dashboard's routes, to [`nest`](Router::nest) where the application likes.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let state = Arc::new(self);
        Router::new()
            .route("/", get(overview::overview))
            .route("/tasks", get(tasks::tasks))
            .route("/tasks/{id}", get(detail::task))
            .route("/jobs/{id}", get(detail::job))
            .route("/jobs/{id}/{action}", post(actions::act))
            .route("/errors", get(errors::errors))
            .route("/events", get(live::events))
            .route("/assets/{file}", get(pages::asset))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::guard,
            ))
            .with_state(state)
    }
}
