//! What both benchmark servers share: the address, the log sink, and the stats body.

use std::net::SocketAddr;

use tracing_appender::non_blocking::WorkerGuard;

/// `127.0.0.1:<port>`, the port from the first argument (default 8080).
pub fn addr() -> SocketAddr {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Logs go to a file through a non-blocking writer (`BENCH_LOG`, default
/// `/tmp/errands-bench.log`), as a production service's would; keep the guard alive.
pub fn logs() -> WorkerGuard {
    let path = std::env::var("BENCH_LOG").unwrap_or_else(|_| "/tmp/errands-bench.log".into());
    let file = std::fs::File::create(path).expect("the log file");
    let (writer, guard) = tracing_appender::non_blocking(file);
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .init();
    guard
}

/// The `/stats` body: tasks scheduled, tasks finished (succeeded or failed), and the
/// counter the tasks increment.
pub fn stats(scheduled: u64, finished: u64, counter: u64) -> serde_json::Value {
    serde_json::json!({"scheduled": scheduled, "finished": finished, "counter": counter})
}

/// With the `metrics` feature: installs a Prometheus recorder with errands' recommended
/// buckets (before the runtime is built, as errands requires), and returns its handle, whose
/// `render` gives the text a scrape would get. A thread runs the recorder's upkeep every five
/// seconds, as a scrape would: it folds the histograms' samples into their buckets, so that
/// they do not pile up. Without the feature: nothing is recorded.
#[cfg(feature = "metrics")]
pub fn metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            errands::metrics::RECOMMENDED_BUCKETS,
        )
        .expect("the buckets")
        .install_recorder()
        .expect("the only recorder");
    let upkeep = handle.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

/// Without the `metrics` feature, nothing is recorded.
#[cfg(not(feature = "metrics"))]
pub fn metrics() -> Option<std::convert::Infallible> {
    None
}
