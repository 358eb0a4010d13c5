//! Command-line flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// errands-demo: a small sign-ups, orders and payments service showing errands' background
/// tasks, error pipeline and shutdown.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ERRANDS_DEMO_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// SQLite database file, created if missing; or a PostgreSQL URL
    /// (`postgres://user@host/db`), for several processes sharing one database. Migrated at
    /// start.
    #[arg(long, env = "ERRANDS_DEMO_DATABASE", default_value = "errands-demo.db")]
    pub database: String,

    /// Where failed payments alert the on-call engineer [default: the demo's own sink,
    /// `http://ADDR/ops/alerts`].
    #[arg(long, env = "ERRANDS_DEMO_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,

    /// How long shutdown waits for in-flight requests, in milliseconds.
    #[arg(long, env = "ERRANDS_DEMO_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,

    /// How long shutdown waits for shielded tasks, in milliseconds.
    #[arg(
        long,
        env = "ERRANDS_DEMO_SHUTDOWN_DEADLINE_MS",
        default_value_t = 20_000
    )]
    pub shutdown_deadline_ms: u64,

    /// How long a connection may take to send each request head, idle keep-alive time
    /// included, in milliseconds.
    #[arg(
        long,
        env = "ERRANDS_DEMO_HEADER_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub header_read_timeout_ms: u64,

    /// How many connections are served at once; more wait in the listen backlog.
    #[arg(long, env = "ERRANDS_DEMO_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Token for the operational pages (`/ops/*`, `/stats`), sent as
    /// `authorization: Bearer TOKEN`. Without one, only loopback clients see them.
    #[arg(long, env = "ERRANDS_DEMO_OPS_TOKEN")]
    pub ops_token: Option<String>,

    /// Token for the dashboard at `/ops/dashboard`: open it once with `?token=TOKEN` (a
    /// cookie keeps it), or send `authorization: Bearer TOKEN`. Without one, a random token
    /// is made at start; on a loopback address the dashboard's address with it is logged.
    #[arg(long, env = "ERRANDS_DEMO_DASHBOARD_TOKEN")]
    pub dashboard_token: Option<String>,

    /// Let the dashboard retry, cancel and discard durable jobs (read-only without).
    #[arg(long, env = "ERRANDS_DEMO_DASHBOARD_ACTIONS")]
    pub dashboard_actions: bool,

    /// Serve `POST /drills`, whose requests inject faults into their handler and tasks, and
    /// `GET /ops/idle`; for reliability testing, never in production.
    #[arg(long, env = "ERRANDS_DEMO_FAULT_INJECTION")]
    pub fault_injection: bool,

    /// How long a durable job's claim is leased, in milliseconds: a job whose process died
    /// runs again after at most this long.
    #[arg(long, env = "ERRANDS_DEMO_JOB_LEASE_MS", default_value_t = 30_000)]
    pub job_lease_ms: u64,

    /// How many durable jobs this process runs at once (its share of the queue).
    #[arg(long, env = "ERRANDS_DEMO_JOB_CONCURRENCY", default_value_t = 16)]
    pub job_concurrency: usize,

    /// With `--fault-injection`: stop at this crash point and wait for SIGKILL (crash tests).
    #[arg(long, requires = "fault_injection", value_parser = clap::builder::PossibleValuesParser::new(crate::crash::POINTS))]
    pub crash_at: Option<String>,

    /// With `--crash-at`: stop only if this file does not exist yet, creating it (for several
    /// processes on one database: the first to reach the point stops, the others pass).
    #[arg(long, requires = "crash_at")]
    pub crash_once: Option<std::path::PathBuf>,

    /// Log format.
    #[arg(long, env = "ERRANDS_DEMO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How logs are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms)
    }

    pub fn job_lease(&self) -> Duration {
        Duration::from_millis(self.job_lease_ms)
    }
}
