//! The application: shared state, the error catalog, and the router.

use axum::Router;
use axum::routing::{get, post};
use errands::durable::AnyStore;
use errands::{Errands, ErrandsBuilder};

use crate::jobs::{self, Services};
use crate::{crash, domain, routes};

/// Where on-call alerts go: the URL, and the token to send when it is the demo's own
/// `/ops/alerts` behind an ops token.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub token: Option<std::sync::Arc<str>>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: crate::db::Db,
    pub errands: Errands,
    /// The token for `/ops/*`, `/stats` and `/metrics`; without one, only loopback clients
    /// see them.
    pub ops_token: Option<std::sync::Arc<str>>,
    /// The Prometheus recorder errands' metrics go to, rendered by `GET /metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// The runtime's configuration that belongs to the application: domain error mappings, the
/// exports' group, and the durable jobs, kept in the application's own database.
pub fn errands(builder: ErrandsBuilder, store: AnyStore, services: Services) -> ErrandsBuilder {
    // Exports are long and any client can start them: their own small group, so a storm of
    // them cannot take the capacity sign-ups, orders and payments need.
    domain::register(builder)
        .group("exports", 2, 8)
        .durable(store)
        .job::<jobs::ProcessPayment>(services.clone())
        .job::<jobs::WelcomeEmail>(services.clone())
        .job::<jobs::NotifyPurchasing>(services)
}

/// The operational pages: open to loopback clients, or to any client with the ops token
/// (see [`routes::ops::guard`]).
fn ops(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/ops/slow", get(routes::ops::slow))
        .route("/ops/outbox", get(routes::ops::outbox))
        .route(
            "/ops/alerts",
            get(routes::ops::alerts).post(routes::ops::receive_alert),
        )
        .route("/ops/notifications", get(routes::ops::notifications))
        .route("/stats", get(routes::ops::stats))
        .route("/metrics", get(routes::ops::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::ops::guard,
        ))
}

/// The service's routes inside the errands layer, and the dashboard at `/ops/dashboard`;
/// with `fault_injection`, also the fault drills, and `GET /ops/idle` outside the layer (see
/// [`routes::drills`]).
pub fn router(
    state: AppState,
    fault_injection: bool,
    dashboard: errands::dashboard::Dashboard,
) -> Router {
    let errands = state.errands.clone();
    let mut routes = Router::new()
        .route("/", get(routes::ops::index))
        .route("/signups", post(routes::signups::create))
        .route("/users/{id}", get(routes::signups::show))
        .route("/products", get(routes::orders::products))
        .route("/orders", post(routes::orders::create))
        .route("/orders/{id}", get(routes::orders::show))
        .route(
            "/orders/{id}/payments",
            post(routes::payments::create).layer(axum::middleware::from_fn(crash::mid_body)),
        )
        .route("/payments/{id}", get(routes::payments::show))
        .route("/reports/nightly", post(routes::ops::nightly_report))
        .route("/exports", post(routes::ops::export))
        .merge(ops(&state));
    if fault_injection {
        routes = routes.route("/drills", post(routes::drills::run));
    }
    // The dashboard is outside the layer: an open page is not the service's work.
    let app = routes
        .with_state(state)
        .layer(errands.layer())
        .nest("/ops/dashboard", dashboard.router());
    if !fault_injection {
        return app;
    }
    Router::new()
        .route("/ops/idle", get(routes::drills::idle))
        .with_state(errands)
        .fallback_service(app)
}
