//! Nothing grows with its input: what a client sends and what an error says are cut before
//! they reach error bodies and reports. (Task limits: `resilience::limits_hold_*`; body size:
//! `errors::body_over_the_limit_is_413`; WebSocket buffers: `websocket::*`.)

use std::collections::HashMap;
use std::fmt;

use axum::Router;
use axum::routing::{get, post};
use errands::extract::Json;
use errands::testing::TestClient;
use errands::{Errands, Origin, Violation};
use serde::Deserialize;
use serde_json::json;

/// The longest error message a report keeps, in bytes, and how many links of a chain: as
/// documented on `ErrorLink` (the crate's `chain::MAX_MESSAGE` and `chain::MAX_DEPTH`).
const MAX_MESSAGE: usize = 4096;
const MAX_DEPTH: usize = 32;

#[derive(Deserialize)]
#[allow(dead_code)]
enum Kind {
    Book,
    Pen,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Order {
    kind: Kind,
    quantities: HashMap<String, u32>,
}

/// An error whose message is `size` bytes, with `depth` more errors behind it.
#[derive(Debug)]
struct Huge {
    size: usize,
    depth: usize,
    source: Option<Box<Huge>>,
}

impl Huge {
    fn new(size: usize, depth: usize) -> Huge {
        let source = (depth > 0).then(|| Box::new(Huge::new(size, depth - 1)));
        Huge {
            size,
            depth,
            source,
        }
    }
}

impl fmt::Display for Huge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.depth, "x".repeat(self.size))
    }
}

impl std::error::Error for Huge {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

fn client() -> (Errands, TestClient) {
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/orders", post(|Json(_): Json<Order>| async {}))
        .route(
            "/huge",
            get(|| async { Err::<(), _>(errands::Error::new(Huge::new(1 << 20, 1000))) }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    (errands, client)
}

#[tokio::test]
async fn client_input_quoted_by_a_validation_error_is_cut() {
    let (_errands, client) = client();
    let huge = "A".repeat(100_000);
    let response = client
        .post_json("/orders", &json!({"kind": huge, "quantities": {}}))
        .await;
    assert_eq!(response.status(), 422);
    let msg = response.json()["details"][0]["msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.starts_with("unknown variant"), "{msg}");
    assert!(
        msg.len() <= Violation::MAX_MSG + '…'.len_utf8(),
        "{}",
        msg.len()
    );

    let key = "sku".repeat(10_000);
    let response = client
        .post_json(
            "/orders",
            &json!({"kind": "Pen", "quantities": {key: "many"}}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let loc = response.json()["details"][0]["loc"].clone();
    let segment = loc[2].as_str().expect("the key is in the location");
    assert!(
        segment.len() <= Violation::MAX_SEGMENT + '…'.len_utf8(),
        "{loc}"
    );
    assert!(
        response.bytes().len() < 2048,
        "{} bytes",
        response.bytes().len()
    );
}

#[tokio::test]
async fn a_huge_error_and_an_endless_chain_are_cut_in_reports() {
    let (errands, client) = client();
    let response = client.get("/huge").await;
    assert_eq!(response.status(), 500);
    assert!(response.bytes().len() < 256, "the body is the public 500");

    errands
        .tasks()
        .immediate()
        .name("huge")
        .schedule(async { Err::<(), _>(Huge::new(1 << 20, 1000)) })
        .unwrap();
    errands.idle().await;

    let reports = client.reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports.iter().map(|r| r.origin).collect::<Vec<_>>(),
        [Origin::Handler, Origin::Task]
    );
    for report in reports {
        assert_eq!(report.chain.len(), MAX_DEPTH);
        for link in &report.chain {
            assert!(link.message.len() <= MAX_MESSAGE + '…'.len_utf8());
        }
        assert!(report.message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
