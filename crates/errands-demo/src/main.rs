//! errands-demo: a small axum service using errands for background tasks and shutdown.

mod config;
mod routes;

use std::process::ExitCode;

use config::Command;
use errands::Errands;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match Command::parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("errands-demo: {message}");
            return ExitCode::from(2);
        }
    };
    let errands = Errands::builder()
        .drain_timeout(config.drain_timeout)
        .shutdown_deadline(config.shutdown_deadline)
        .on_teardown(|| async { tracing::info!("teardown: resources closed") })
        .build();
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("errands-demo: cannot listen on {}: {error}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, "listening on http://{addr}");
    match errands.serve(listener, routes::router(&errands)).await {
        Ok(summary) => {
            tracing::info!(?summary, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
