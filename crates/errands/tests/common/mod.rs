//! Helpers shared by the integration tests. Waiting is done on events, never on sleeps.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use errands::{Errands, ErrorReport};
use tokio::sync::Notify;

#[cfg(feature = "postgres")]
pub mod postgres;

/// How long a test waits for an event before failing; generous, and never reached when
/// the code is right.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An ordered log of named events that tasks and handlers write, and tests wait on.
#[derive(Clone, Default)]
pub struct Probe {
    inner: Arc<ProbeInner>,
}

#[derive(Default)]
struct ProbeInner {
    events: Mutex<Vec<String>>,
    changed: Notify,
}

impl Probe {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hit(&self, event: impl Into<String>) {
        self.inner.events.lock().unwrap().push(event.into());
        self.inner.changed.notify_waiters();
    }

    pub fn has(&self, event: &str) -> bool {
        self.inner.events.lock().unwrap().iter().any(|e| e == event)
    }

    pub fn events(&self) -> Vec<String> {
        self.inner.events.lock().unwrap().clone()
    }

    /// Position of the first occurrence; panics when the event never happened.
    pub fn index(&self, event: &str) -> usize {
        self.events()
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| {
                panic!(
                    "event {event:?} never happened; events: {:?}",
                    self.events()
                )
            })
    }

    /// Waits until `event` happened.
    pub async fn reached(&self, event: &str) {
        let wait = async {
            loop {
                let notified = self.inner.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.has(event) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(PATIENCE, wait).await.is_err() {
            panic!(
                "event {event:?} did not happen; events: {:?}",
                self.events()
            );
        }
    }

    /// Blocks the caller (a task or handler) until the test calls `open(name)`.
    pub async fn gate(&self, name: &str) {
        let key = format!("open:{name}");
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has(&key) {
                return;
            }
            notified.await;
        }
    }

    pub fn open(&self, name: &str) {
        self.hit(format!("open:{name}"));
    }
}

/// A runtime builder whose only reporter writes every report to `probe`.
pub fn reporting_to(probe: &Probe) -> errands::ErrandsBuilder {
    Errands::builder()
        .without_tracing_reporter()
        .reporter(probe_reporter(probe))
}

/// A reporter that writes `report:<origin>:<outcome>:<task name>` into the probe.
pub fn probe_reporter(probe: &Probe) -> impl Fn(&ErrorReport) + Send + Sync + 'static {
    let probe = probe.clone();
    move |r: &ErrorReport| {
        probe.hit(format!(
            "report:{}:{}:{}",
            r.origin.as_str(),
            r.outcome.map(|o| o.as_str()).unwrap_or("-"),
            r.task.as_ref().map(|t| t.name()).unwrap_or("-"),
        ))
    }
}

/// A task body that panics.
pub async fn panics() {
    panic!("kaboom")
}

/// Waits for the runtime to be idle, failing the test instead of hanging.
pub async fn idle(errands: &Errands) {
    tokio::time::timeout(PATIENCE, errands.idle())
        .await
        .unwrap_or_else(|_| panic!("runtime not idle; stats: {:?}", errands.stats()));
}

/// Serves `app` on an ephemeral loopback port; returns its address.
pub async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Asserts the accounting invariant and that nothing is in flight.
pub fn assert_balanced(errands: &Errands) {
    let stats = errands.stats();
    assert!(stats.is_balanced(), "invariant broken: {stats:?}");
    assert_eq!(stats.in_flight(), 0, "tasks still in flight: {stats:?}");
}

/// A log writer into a shared buffer, for tests that read what was logged.
#[derive(Clone, Default)]
pub struct LogWriter(pub Arc<Mutex<Vec<u8>>>);

impl LogWriter {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines logged on this thread while it is held, as they are written (a `fmt`
/// subscriber, set as the thread's default).
pub struct LogLines {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    _default: tracing::subscriber::DefaultGuard,
}

/// Sends each line it is given to the test.
struct LineSender(tokio::sync::mpsc::UnboundedSender<String>);

impl std::io::Write for LineSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    pub fn capture() -> LogLines {
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LineSender(sender.clone()))
            .with_ansi(false)
            .finish();
        LogLines {
            lines,
            seen: Vec::new(),
            _default: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Waits until a line containing `needle` was logged, whether before or after the call.
    pub async fn wait_for(&mut self, needle: &str) {
        if self.seen.iter().any(|line| line.contains(needle)) {
            return;
        }
        let LogLines { lines, seen, .. } = self;
        tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.recv().await {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not logged: {needle}"));
    }
}
