//! The load: well-behaved clients through reqwest, each on its own keep-alive connection;
//! slow clients and clients that leave mid-request or mid-body over raw TCP. Every worker
//! stops by itself at its deadline (or, during shutdown, once the server is gone), and tallies
//! what it saw and what the server must therefore have done.
//!
//! The `tokio::time::sleep`s here shape the clients (a slow network, a slow reader); nothing
//! waits for the server's background work with them.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::check::{self, Outcomes};
use crate::raw::{Parsed, has_body_bytes, parse, parse_status};
use crate::requests::{Call, Drill, LONG_MS, Mix, WARM_UP};

/// How many clients of each kind, until when, and what a closed connection means.
pub struct Plan {
    pub mix: Mix,
    pub normal: usize,
    pub slow: usize,
    pub leaving: usize,
    pub until: Instant,
    /// During a shutdown, a connection the server closed before answering ends the client;
    /// otherwise it is a problem.
    pub until_closed: bool,
    /// Gets a permit from each client once it has sent its first [`WARM_UP`] requests.
    pub warmed_up: Option<Arc<Semaphore>>,
}

/// The longest one request may take before it counts as a problem (and ends its client).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs the plan's clients against `addr` and sums their tallies.
pub async fn run(addr: &str, plan: &Plan, round: u64) -> Tally {
    let mut clients = tokio::task::JoinSet::new();
    let kinds = [
        (Kind::Normal, plan.normal),
        (Kind::Slow, plan.slow),
        (Kind::Leaving, plan.leaving),
    ];
    let mut seed = round << 32;
    for (kind, count) in kinds {
        for _ in 0..count {
            seed += 1;
            let client = Client {
                addr: addr.to_owned(),
                mix: plan.mix,
                rng: SmallRng::seed_from_u64(seed),
                name: format!("r{round}c{seed}"),
                sent: 0,
                until: plan.until,
                until_closed: plan.until_closed,
                warmed_up: plan.warmed_up.clone(),
                tally: Tally::default(),
            };
            clients.spawn(client.run(kind));
        }
    }
    let mut total = Tally::default();
    while let Some(tally) = clients.join_next().await {
        total += tally.expect("a client panicked");
    }
    total
}

/// What the clients saw, and the reported outcomes the server owes for what they sent.
#[derive(Debug, Default)]
pub struct Tally {
    pub answered: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub expected: Outcomes,
    /// Short unshielded tasks, which a shutdown may cancel before they ran.
    pub maybe_cancelled: u64,
    /// Short shielded tasks, which a second signal may abort.
    pub maybe_aborted: u64,
    /// Requests whose connection closed before any byte of a response (shutdown only).
    pub closed: u64,
    /// Responses cut off after they started.
    pub truncated: u64,
    pub slow: u64,
    pub left_mid_request: u64,
    pub left_mid_body: u64,
    pub problems: Vec<String>,
}

impl Tally {
    /// Adds the reported outcomes an answered drill owes, and how many of its other tasks a
    /// shutdown may cancel or abort.
    fn owe(&mut self, drill: &Drill) {
        let handler_failed = drill.handler != "ok";
        for task in &drill.tasks {
            let owed = &mut self.expected;
            if handler_failed && task.timing != "immediate" {
                owed.skipped += 1;
                continue;
            }
            match (task.work_ms >= LONG_MS, task.shield) {
                (true, true) => owed.aborted += 1,
                (true, false) => owed.cancelled += 1,
                (false, true) => self.maybe_aborted += 1,
                (false, false) => self.maybe_cancelled += 1,
            }
            if task.work_ms >= LONG_MS {
                continue;
            }
            *owed += Outcomes::one(match task.fault {
                "error" => "failed",
                "panic" => "panicked",
                "timeout" => "timed_out",
                _ => continue,
            });
            if matches!(task.on_error, "error" | "panic") {
                owed.error_handlers += 1;
            }
        }
    }

    fn problem(&mut self, problem: String) {
        if self.problems.len() < 20 {
            self.problems.push(problem);
        }
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.answered += other.answered;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.expected += other.expected;
        self.maybe_cancelled += other.maybe_cancelled;
        self.maybe_aborted += other.maybe_aborted;
        self.closed += other.closed;
        self.truncated += other.truncated;
        self.slow += other.slow;
        self.left_mid_request += other.left_mid_request;
        self.left_mid_body += other.left_mid_body;
        for problem in other.problems {
            self.problem(problem);
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Normal,
    Slow,
    Leaving,
}

struct Client {
    addr: String,
    mix: Mix,
    rng: SmallRng,
    name: String,
    sent: u64,
    until: Instant,
    until_closed: bool,
    warmed_up: Option<Arc<Semaphore>>,
    tally: Tally,
}

impl Client {
    async fn run(mut self, kind: Kind) -> Tally {
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        while Instant::now() < self.until {
            self.sent += 1;
            let step = tokio::time::timeout(PATIENCE, self.step(kind, &http)).await;
            let Ok(going_on) = step else {
                self.tally
                    .problem(format!("a request took over {PATIENCE:?}"));
                break;
            };
            if self.sent == WARM_UP
                && let Some(warmed_up) = &self.warmed_up
            {
                warmed_up.add_permits(1);
            }
            if !going_on {
                break;
            }
        }
        self.tally
    }

    /// One request of the client's kind; false once the server is gone.
    async fn step(&mut self, kind: Kind, http: &reqwest::Client) -> bool {
        match kind {
            Kind::Normal => self.normal(http).await,
            Kind::Slow => self.slow().await,
            Kind::Leaving => self.leave().await,
        }
    }

    /// One request through reqwest.
    async fn normal(&mut self, http: &reqwest::Client) -> bool {
        let call = self.call();
        let url = format!("http://{}{}", self.addr, call.path);
        let mut request = http
            .request(call.method.clone(), url)
            .body(call.body.clone());
        if let Some(content_type) = call.content_type {
            request = request.header("content-type", content_type);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return self.closed(&error.to_string()),
        };
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(body) => self.answered(&call, status, id.as_deref(), &body),
            Err(error) => {
                self.tally.truncated += 1;
                self.tally
                    .problem(format!("{} cut off: {error}", call.path));
            }
        }
        true
    }

    /// One request over a new connection, written in pieces and read in small reads.
    async fn slow(&mut self) -> bool {
        let call = self.call();
        let Ok(mut stream) = TcpStream::connect(&self.addr).await else {
            return self.closed("connect refused");
        };
        let bytes = call.raw(0);
        for piece in bytes.chunks(bytes.len().div_ceil(4)) {
            if stream.write_all(piece).await.is_err() {
                return self.closed("closed while the request was written");
            }
            tokio::time::sleep(Duration::from_millis(2)).await; // a slow network
        }
        let mut response = Vec::new();
        let mut buffer = [0; 512];
        while let Ok(n @ 1..) = stream.read(&mut buffer).await {
            response.extend_from_slice(&buffer[..n]);
            tokio::time::sleep(Duration::from_millis(1)).await; // a slow reader
        }
        self.tally.slow += 1;
        match parse(&response) {
            Some(Parsed::Complete(status, id, body)) => {
                self.answered(&call, status, id.as_deref(), &body)
            }
            Some(Parsed::Partial) => {
                self.tally.truncated += 1;
                self.tally.problem(format!("{} cut off", call.path));
            }
            None if response.is_empty() => return self.closed("closed before answering"),
            None => self
                .tally
                .problem(format!("unparsable response to {}", call.path)),
        }
        true
    }

    /// Leaves in the middle of a request's body, or of a streamed response's body.
    async fn leave(&mut self) -> bool {
        let mid_body = self.sent.is_multiple_of(2);
        let mut drill = Drill::random(&mut self.rng, self.mix, self.sent);
        drill.handler = "ok";
        drill.stream_chunks = if mid_body { 64 } else { 0 };
        let call = drill.call();
        let Ok(mut stream) = TcpStream::connect(&self.addr).await else {
            return self.closed("connect refused");
        };
        if !mid_body {
            // Promise more body than is sent, send it, and go.
            let _ = stream.write_all(&call.raw(64)).await;
            self.tally.left_mid_request += 1;
            return true;
        }
        if stream.write_all(&call.raw(0)).await.is_err() {
            return self.closed("closed while the request was written");
        }
        let mut response = Vec::new();
        let mut buffer = [0; 4096];
        while !has_body_bytes(&response) {
            match stream.read(&mut buffer).await {
                Ok(n @ 1..) => response.extend_from_slice(&buffer[..n]),
                _ => return self.closed("closed before answering"),
            }
        }
        let status = parse_status(&response);
        if status != Some(202) {
            self.tally
                .problem(format!("a streamed drill answered {status:?}"));
        }
        // Gone, with most of the body unread: the drill's tasks still run.
        self.tally.left_mid_body += 1;
        if let Some(drill) = &call.drill {
            self.tally.owe(drill);
        }
        true
    }

    fn call(&mut self) -> Call {
        Call::random(&mut self.rng, self.mix, &self.name, self.sent)
    }

    fn answered(&mut self, call: &Call, status: u16, id: Option<&str>, body: &[u8]) {
        self.tally.answered += 1;
        *self.tally.statuses.entry(status).or_default() += 1;
        if let Err(problem) = check::response(status, id, body) {
            self.tally
                .problem(format!("{} {}: {problem}", call.method, call.path));
        }
        if !call.statuses.contains(&status) {
            let text = String::from_utf8_lossy(body);
            let problem = format!("{} {} answered {status}: {text}", call.method, call.path);
            self.tally.problem(problem);
            return;
        }
        if let Some(drill) = &call.drill {
            self.tally.owe(drill);
        } else if call.bounces && status == 201 {
            self.tally.expected.failed += 1;
        }
    }

    /// The server closed the connection before answering: the end of the load during a
    /// shutdown, a problem otherwise.
    fn closed(&mut self, why: &str) -> bool {
        self.tally.closed += 1;
        if !self.until_closed {
            self.tally.problem(format!("connection closed: {why}"));
        }
        !self.until_closed
    }
}
