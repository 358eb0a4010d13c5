//! errands-demo: a small sign-ups, orders and payments service using errands for background
//! tasks, the error pipeline and shutdown. `errands-demo --help` lists the options.

mod app;
mod config;
mod crash;
mod db;
mod domain;
mod jobs;
mod routes;

use std::process::ExitCode;

use clap::Parser;
use config::{Config, LogFormat};
use errands::Errands;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_logs(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "errands-demo failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(point) = config.crash_at.clone() {
        crash::arm(point, config.crash_once.clone());
    }
    // Before the runtime is built: errands registers its metrics then.
    let metrics = install_metrics()?;
    let (db, store) = db::open(&config.database).await?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let closing = db.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let alert_webhook = match &config.alert_webhook {
        Some(url) => app::Webhook {
            url: url.clone(),
            token: None,
        },
        // The demo's own sink: the ops token, if any, goes with the alert (and nowhere else).
        None => app::Webhook {
            url: format!("http://{addr}/ops/alerts"),
            token: config.ops_token.as_deref().map(Into::into),
        },
    };
    let services = jobs::Services {
        db: db.clone(),
        http,
        alert_webhook,
    };
    let errands = app::errands(Errands::builder(), store, services)
        .job_lease(config.job_lease())
        .job_queue("default", config.job_concurrency)
        .drain_timeout(config.drain_timeout())
        .shutdown_deadline(config.shutdown_deadline())
        .header_read_timeout(std::time::Duration::from_millis(
            config.header_read_timeout_ms,
        ))
        .max_connections(config.max_connections)
        .on_teardown(move || async move {
            closing.close().await;
            tracing::info!("teardown: database closed");
        })
        .build();
    let state = app::AppState {
        db,
        errands: errands.clone(),
        ops_token: config.ops_token.as_deref().map(Into::into),
        metrics,
    };
    tracing::info!(%addr, database = %redacted(&config.database), "listening on http://{addr}");
    let dashboard = dashboard(&errands, &config, addr);
    let summary = errands
        .serve(
            listener,
            app::router(state, config.fault_injection, dashboard),
        )
        .await?;
    tracing::info!(?summary, "stopped");
    if summary.lost_work() {
        // A request cut off or a shielded task aborted: tell the supervisor.
        tracing::error!("stopped with work lost: exiting with status 3");
        std::process::exit(3);
    }
    Ok(())
}

/// The dashboard behind its token: the configured one, or a random one made now. On a
/// loopback address, where only this machine can reach it, its address with the token is
/// logged.
fn dashboard(
    errands: &Errands,
    config: &Config,
    addr: std::net::SocketAddr,
) -> errands::dashboard::Dashboard {
    let token = config
        .dashboard_token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if addr.ip().is_loopback() {
        tracing::info!("dashboard: http://{addr}/ops/dashboard?token={token}");
    } else {
        tracing::info!("dashboard: http://{addr}/ops/dashboard (with the dashboard token)");
    }
    errands::dashboard::Dashboard::new(errands)
        .token(token)
        .actions(config.dashboard_actions)
}

/// A Prometheus recorder for errands' metrics, with errands' recommended buckets for every
/// histogram (they are all in seconds), rendered by `GET /metrics`. Its upkeep runs every five
/// seconds: it folds the histograms' samples into their buckets, so that memory stays flat
/// between scrapes.
fn install_metrics()
-> Result<metrics_exporter_prometheus::PrometheusHandle, Box<dyn std::error::Error>> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            errands::metrics::RECOMMENDED_BUCKETS,
        )?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(errands::logs::JsonLines)
            .init(),
    }
    // One event per panic: DEBUG for those errands reports (`RUST_LOG=info,panic=debug`
    // shows them), ERROR for any other.
    std::panic::set_hook(errands::logs::panic_hook());
}

/// The database to log: a file path as it is, a URL without its password.
fn redacted(database: &str) -> String {
    match database.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => database.to_owned(),
        },
        None => database.to_owned(),
    }
}
