//! errands-demo: a small sign-ups, orders and payments service using errands for background
//! tasks, the error pipeline and shutdown. `errands-demo --help` lists the options.

mod app;
mod config;
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
    let db = db::open(&config.database).await?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let closing = db.clone();
    let errands = app::errands(Errands::builder(), &db)
        .drain_timeout(config.drain_timeout())
        .shutdown_deadline(config.shutdown_deadline())
        .on_teardown(move || async move {
            closing.close().await;
            tracing::info!("teardown: database closed");
        })
        .build();
    let state = app::AppState {
        db,
        errands: errands.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(5))
            .build()?,
        alert_webhook: config
            .alert_webhook
            .clone()
            .unwrap_or_else(|| format!("http://{addr}/ops/alerts")),
    };
    tracing::info!(%addr, database = %config.database.display(), "listening on http://{addr}");
    let summary = errands
        .serve(listener, app::router(state, config.fault_injection))
        .await?;
    tracing::info!(?summary, "stopped");
    Ok(())
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
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    std::panic::set_hook(Box::new(log_panic));
}

/// Logs a panic as one event, at DEBUG: errands already reports each panic of a handler or
/// task at ERROR, with the request or task it hit; this event adds where it happened. The
/// default hook would write to stderr in pieces, splitting log lines written at the same
/// moment, and JSON lines with them. `RUST_LOG=info,panic=debug` shows these events.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info.payload_as_str().unwrap_or("a non-string payload");
    let location = info.location().map(ToString::to_string).unwrap_or_default();
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::debug!(target: "panic", %location, %backtrace, "panicked: {message}");
    } else {
        tracing::debug!(target: "panic", %location, "panicked: {message}");
    }
}
