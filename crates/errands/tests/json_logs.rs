//! The `logs` module's rules: at the usual `info` level, the application's own lines inside a
//! handler or a task carry the request id and the task's name; errands' JSON-valued fields
//! are nested objects in JSON lines; the panic hook keeps JSON logs whole. Its own test
//! binary, as it installs log subscribers and a panic hook.
#![cfg(feature = "json-logs")]

mod common;

use std::sync::{Arc, Mutex, Once};

use common::LogWriter;

use axum::Router;
use axum::routing::post;
use errands::testing::TestClient;
use errands::{Errands, Tasks};
use serde_json::{Value, json};
use tracing::Level;
use tracing_subscriber::fmt::format::JsonFields;

#[tokio::test]
async fn app_lines_carry_the_request_id_and_task_name_and_fields_are_nested() {
    let (logs, _guard) = capture(Level::INFO);
    let errands = Errands::new();
    let app = Router::new()
        .route(
            "/orders",
            post(|tasks: Tasks| async move {
                tracing::info!("handler line");
                tasks
                    .after_response()
                    .name("charge")
                    .field("order_id", 7)
                    .schedule(async {
                        tracing::info!("task line");
                        Err::<(), _>(std::io::Error::other("card declined"))
                    })
                    .unwrap();
                "ok"
            }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    let response = client.post("/orders").await;
    response.settle().await;
    let id = response.request_id().unwrap();

    let lines = lines(&logs);
    let handler = find(&lines, "handler line");
    assert_eq!(handler["request_id"], id.as_str(), "{handler}");
    assert_eq!(handler["level"], "INFO");
    let task = find(&lines, "task line");
    assert_eq!(task["request_id"], id.as_str(), "{task}");
    assert_eq!(task["task.name"], "charge", "{task}");
    let report = lines
        .iter()
        .find(|l| l["target"] == "errands" && l["origin"] == "task")
        .expect("the task's report");
    assert_eq!(report["task.fields"], json!({"order_id": 7}), "{report}");
    assert_eq!(report["request_id"], id.as_str());
}

#[tokio::test]
async fn the_panic_hook_writes_one_json_line_per_panic_at_the_right_level() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| std::panic::set_hook(errands::logs::panic_hook()));
    let (logs, _guard) = capture(Level::DEBUG);
    let errands = Errands::new();
    errands
        .tasks()
        .immediate()
        .name("exploding")
        .schedule(explode())
        .unwrap();
    errands.idle().await;
    let outside = std::panic::catch_unwind(|| panic!("outside errands"));
    assert!(outside.is_err());

    let lines = lines(&logs);
    let panics: Vec<&Value> = lines.iter().filter(|l| l["target"] == "panic").collect();
    assert_eq!(panics.len(), 2, "{panics:?}");
    assert_eq!(panics[0]["level"], "DEBUG", "errands reports this one");
    assert!(
        panics[0]["message"]
            .as_str()
            .unwrap()
            .contains("inside a task")
    );
    assert_eq!(panics[1]["level"], "ERROR", "nothing else records this one");
    assert!(
        panics[1]["location"]
            .as_str()
            .unwrap()
            .contains("json_logs.rs")
    );
}

async fn explode() {
    panic!("inside a task")
}

/// This thread's log output as JSON lines, for as long as the guard lives.
fn capture(level: Level) -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .fmt_fields(JsonFields::new())
        .event_format(errands::logs::JsonLines)
        .with_writer(writer)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Every line, each of which must be one JSON object.
fn lines(logs: &Mutex<Vec<u8>>) -> Vec<Value> {
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn find<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line {message:?} in {lines:?}"))
}
