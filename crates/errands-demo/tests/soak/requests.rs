//! What the clients send: drills with injected faults, the demo's own endpoints with valid
//! and invalid input, and for each request the statuses it may be answered.

use rand::RngExt;
use rand::rngs::SmallRng;
use reqwest::Method;
use serde_json::json;

/// Work that outlives any deadline of these tests: a task with it ends cancelled or aborted.
pub const LONG_MS: u64 = 600_000;

/// In the shutdown mix, only a client's first requests carry long tasks, so that however
/// fast the machine, the long tasks stay far below the runtime's `max_running` and every
/// short task gets a slot.
pub const WARM_UP: u64 = 4;

/// What the clients send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Drills with errors, panics, failing `on_error` handlers, timeouts and retries, and the
    /// demo's own endpoints, with valid and invalid input.
    Faults,
    /// Drills with long shielded and unshielded tasks, for a shutdown in the middle.
    Shutdown,
}

/// One request and what it may be answered.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub body: String,
    pub statuses: &'static [u16],
    pub drill: Option<Drill>,
    /// A sign-up whose welcome email fails every attempt.
    pub bounces: bool,
}

impl Call {
    pub fn random(rng: &mut SmallRng, mix: Mix, name: &str, n: u64) -> Call {
        if mix == Mix::Shutdown {
            return Drill::random(rng, mix, n).call();
        }
        let get =
            |path: &str, statuses: &'static [u16]| Call::new(Method::GET, path, None, "", statuses);
        let post_json = |path: &str, body: String, statuses: &'static [u16]| {
            Call::new(
                Method::POST,
                path,
                Some("application/json"),
                &body,
                statuses,
            )
        };
        match rng.random_range(0..100) {
            0..75 => Drill::random(rng, mix, n).call(),
            75..83 => {
                let (tag, bounces) = match rng.random_range(0..20) {
                    0 => ("+bounce", true),
                    1..3 => ("+flaky", false),
                    _ => ("", false),
                };
                let email = format!("{name}n{n}{tag}@example.com");
                let mut call = post_json("/signups", json!({"email": email}).to_string(), &[201]);
                call.bounces = bounces;
                call
            }
            83..88 => {
                let order = json!({"user_id": 1, "items": [{"sku": "pen", "quantity": 1}]});
                post_json("/orders", order.to_string(), &[201, 409])
            }
            88..92 => get(["/products", "/users/1", "/stats"][n as usize % 3], &[200]),
            _ => match n % 7 {
                0 => post_json("/drills", "{\"tasks\": [".into(), &[422]),
                1 => post_json("/signups", json!({"email": 7}).to_string(), &[422]),
                2 => Call::new(Method::POST, "/orders", Some("text/plain"), "x", &[415]),
                3 => get("/users/not-a-number", &[422]),
                4 => get("/orders/987654321", &[404]),
                5 => get("/no/such/route", &[404]),
                _ => Call::new(Method::DELETE, "/products", None, "", &[405]),
            },
        }
    }

    fn new(
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: &str,
        statuses: &'static [u16],
    ) -> Call {
        Call {
            method,
            path: path.to_owned(),
            content_type,
            body: body.to_owned(),
            statuses,
            drill: None,
            bounces: false,
        }
    }

    /// The request as HTTP/1.1 bytes on a connection that closes after it, promising
    /// `missing` more body bytes than it carries.
    pub fn raw(&self, missing: usize) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: soak\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.method,
            self.path,
            self.body.len() + missing
        );
        if let Some(content_type) = self.content_type {
            head.push_str(&format!("content-type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

/// A `POST /drills` request (see `routes::drills`).
pub struct Drill {
    pub handler: &'static str,
    pub tasks: Vec<DrillTask>,
    pub stream_chunks: u16,
}

pub struct DrillTask {
    pub timing: &'static str,
    pub fault: &'static str,
    pub on_error: &'static str,
    pub shield: bool,
    pub work_ms: u64,
}

impl Drill {
    /// A random drill, as the `n`-th request of its client.
    pub fn random(rng: &mut SmallRng, mix: Mix, n: u64) -> Drill {
        let count = rng.random_range(1..=3);
        let tasks = (0..count)
            .map(|_| match mix {
                Mix::Faults => DrillTask::with_fault(rng),
                Mix::Shutdown => DrillTask::for_shutdown(rng, n <= WARM_UP),
            })
            .collect();
        let handler = match (mix, rng.random_range(0..100)) {
            (Mix::Faults, 0..2) => "error",
            (Mix::Faults, 2) => "panic",
            _ => "ok",
        };
        let stream_chunks = if rng.random_range(0..20) == 0 { 4 } else { 0 };
        Drill {
            handler,
            tasks,
            stream_chunks,
        }
    }

    pub fn body(&self) -> String {
        let tasks: Vec<_> = self
            .tasks
            .iter()
            .map(|t| {
                json!({"timing": t.timing, "fault": t.fault, "on_error": t.on_error,
                       "shield": t.shield, "work_ms": t.work_ms})
            })
            .collect();
        json!({"handler": self.handler, "tasks": tasks, "stream_chunks": self.stream_chunks})
            .to_string()
    }

    pub fn call(self) -> Call {
        let statuses: &'static [u16] = if self.handler == "ok" { &[202] } else { &[500] };
        let mut call = Call::new(
            Method::POST,
            "/drills",
            Some("application/json"),
            &self.body(),
            statuses,
        );
        call.drill = Some(self);
        call
    }
}

impl DrillTask {
    /// 5 % errors, 1 % panics, 1 % errors whose `on_error` fails or panics, 1 % timeouts,
    /// 3 % that fail once and succeed on the retry; the rest succeed.
    fn with_fault(rng: &mut SmallRng) -> DrillTask {
        let (fault, on_error) = match rng.random_range(0..200) {
            0..10 => ("error", ["default", "ok"][rng.random_range(0..2)]),
            10..12 => ("panic", "ok"),
            12 => ("error", "error"),
            13 => ("error", "panic"),
            14..16 => ("timeout", "default"),
            16..22 => ("flaky", "ok"),
            _ => ("none", "default"),
        };
        DrillTask {
            timing: ["immediate", "after_route", "after_response"][rng.random_range(0..3)],
            fault,
            on_error,
            shield: rng.random_range(0..5) == 0,
            work_ms: if rng.random_range(0..10) == 0 {
                rng.random_range(1..=5)
            } else {
                0
            },
        }
    }

    /// Short tasks, shielded tasks that finish before the deadline, and (while `long`) long
    /// shielded and unshielded ones that shutdown must abort and cancel.
    fn for_shutdown(rng: &mut SmallRng, long: bool) -> DrillTask {
        let (timing, shield, work_ms) = match rng.random_range(0..10) {
            0..4 => ("immediate", false, 0),
            4..6 => ("after_response", true, 20),
            6 => ("after_route", false, 0),
            7 if long => ("after_response", true, LONG_MS),
            _ if long => ("immediate", false, LONG_MS),
            _ => ("immediate", false, 0),
        };
        DrillTask {
            timing,
            fault: "none",
            on_error: "default",
            shield,
            work_ms,
        }
    }
}
