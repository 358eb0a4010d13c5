//! End to end over real HTTP: the demo binary as a process with a temporary database.
//! Background work is awaited through the process's log lines, never with sleeps.

mod common;

use common::Demo;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Asserts the errands error schema, with the request id of the response header.
async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["request_id"], id.as_str());
    assert!(body["error"].is_string());
    body
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signups_send_the_welcome_email_after_the_response_with_retries_and_a_fallback() {
    let mut demo = Demo::start(&[]).await;
    let created = demo
        .post("/signups", json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    demo.wait_for("welcome email sent").await;

    let flaky = demo
        .post("/signups", json!({"email": "eve+flaky@example.com"}))
        .await;
    assert_eq!(flaky.status(), StatusCode::CREATED);
    demo.wait_for_all(&["welcome email sent", "\"attempt\":2"])
        .await;

    let bounce = demo
        .post("/signups", json!({"email": "bob+bounce@example.com"}))
        .await;
    let bounce_id = request_id(&bounce);
    demo.wait_for("through the fallback path").await;

    let outbox = demo.get_json("/ops/outbox").await;
    let sent: Vec<(&str, &str)> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["to"].as_str().unwrap(), m["channel"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            ("ada@example.com", "primary"),
            ("eve+flaky@example.com", "primary"),
            ("bob+bounce@example.com", "fallback")
        ]
    );
    // The bounce failed all three attempts: reported once, handled by the fallback.
    let failures: Vec<Value> = demo
        .reports()
        .into_iter()
        .filter(|r| r["task.name"] == "welcome_email")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["outcome"], "failed");
    assert_eq!(failures[0]["handled"], true);
    assert_eq!(failures[0]["task.attempt"], 3);
    assert_eq!(failures[0]["request_id"], bounce_id.as_str());

    let duplicate = demo
        .post("/signups", json!({"email": "ada@example.com"}))
        .await;
    assert_error(duplicate, 409, "conflict").await;
    let invalid = demo
        .post("/signups", json!({"email": "not-an-address"}))
        .await;
    let body = assert_error(invalid, 422, "validation_error").await;
    assert_eq!(body["details"][0]["loc"], json!(["body", "email"]));
    let user = demo.get_json("/users/1").await;
    assert_eq!(user["email"], "ada@example.com");
    assert_error(demo.get("/users/999").await, 404, "not_found").await;
}

#[tokio::test]
async fn orders_are_all_or_nothing_and_domain_errors_have_their_own_codes() {
    let mut demo = Demo::start(&[]).await;
    demo.post("/signups", json!({"email": "ada@example.com"}))
        .await;
    let stock_before = demo.get_json("/products").await;

    let too_many = json!({"user_id": 1, "items": [{"sku": "pen", "quantity": 2}, {"sku": "lamp", "quantity": 3}]});
    let body = assert_error(
        demo.post("/orders", too_many).await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(
        body["details"],
        json!({"sku": "lamp", "available": 1, "requested": 3})
    );
    // The error mapper's task ran after the 409 was sent.
    demo.wait_for("purchasing notified").await;
    let notifications = demo.get_json("/ops/notifications").await;
    assert_eq!(
        notifications,
        json!([{"kind": "restock", "message": "lamp: customers asked for 3"}])
    );

    let twice = json!({"user_id": 1, "items": [{"sku": "pen", "quantity": 1}, {"sku": "pen", "quantity": 1}]});
    let body = assert_error(demo.post("/orders", twice).await, 422, "validation_error").await;
    assert_eq!(
        body["details"][0]["loc"],
        json!(["body", "items", 1, "sku"])
    );
    let unknown_product = json!({"user_id": 1, "items": [{"sku": "kite", "quantity": 1}]});
    assert_error(
        demo.post("/orders", unknown_product).await,
        404,
        "unknown_product",
    )
    .await;
    let unknown_user = json!({"user_id": 77, "items": [{"sku": "pen", "quantity": 1}]});
    assert_error(
        demo.post("/orders", unknown_user).await,
        404,
        "unknown_user",
    )
    .await;
    // Nothing of the failed orders was written: the pens taken before the failure are back.
    assert_eq!(demo.get_json("/products").await, stock_before);

    let placed = demo
        .post(
            "/orders",
            json!({"user_id": 1, "items": [{"sku": "book", "quantity": 2}]}),
        )
        .await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["total_cents"], 3000);
    let shown = demo.get_json(&format!("/orders/{}", placed["id"])).await;
    assert_eq!(shown["items"], json!([{"sku": "book", "quantity": 2}]));
    assert_error(demo.get("/orders/999").await, 404, "not_found").await;
}

#[tokio::test]
async fn a_declined_payment_alerts_on_call_and_failing_tasks_reach_the_central_report() {
    let mut demo = Demo::start(&[]).await;
    let order = demo.order("ada@example.com").await;
    let payment = demo
        .post(
            &format!("/orders/{order}/payments"),
            json!({"card": "declined", "processing_ms": 10}),
        )
        .await;
    assert_eq!(payment.status(), StatusCode::ACCEPTED);
    let payment_request = request_id(&payment);
    let payment: Value = payment.json().await.unwrap();
    demo.wait_for("on-call alerted").await;
    let alerts = demo.get_json("/ops/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["task"], "process_payment");
    assert_eq!(
        alerts[0]["text"],
        "critical task process_payment failed: payment failed: the payment provider declined the charge"
    );
    assert_eq!(alerts[0]["request_id"], payment_request.as_str());
    assert_eq!(alerts[0]["fields"]["payment_id"], payment["id"]);
    let shown = demo.get_json(&format!("/payments/{}", payment["id"])).await;
    assert_eq!(shown["status"], "failed");

    let nightly = demo.post("/reports/nightly", json!({})).await;
    assert_eq!(
        nightly.status(),
        StatusCode::ACCEPTED,
        "the client got its answer"
    );
    let nightly_request = request_id(&nightly);
    demo.wait_for_all(&["build_nightly_report", "task failed"])
        .await;
    let reports: Vec<Value> = demo
        .reports()
        .into_iter()
        .filter(|r| r["task.name"] == "build_nightly_report")
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["request_id"], nightly_request.as_str());
    assert_eq!(reports[0]["level"], "ERROR");
    assert_eq!(reports[0]["handled"], false);
    assert_eq!(
        reports[0]["error"],
        "nightly report failed: the warehouse export is missing"
    );

    let paid_ok = demo.order("bob@example.com").await;
    demo.pay(paid_ok, "ok", 10).await;
    demo.wait_for("payment processed").await;
    assert_eq!(
        demo.get_json(&format!("/orders/{paid_ok}")).await["status"],
        "paid"
    );

    let stats = demo.get_json("/stats").await;
    let (scheduled, terminal, in_flight) = common::task_counts(&stats);
    assert_eq!(scheduled, terminal + in_flight, "{stats}");
    assert!(stats["failed"].as_u64().unwrap() >= 2, "{stats}");
}

#[tokio::test]
async fn bad_input_to_every_endpoint_gets_the_schema_and_writes_nothing() {
    let demo = Demo::start(&[]).await;
    for path in [
        "/signups",
        "/orders",
        "/orders/1/payments",
        "/exports",
        "/ops/alerts",
    ] {
        let malformed = demo
            .http
            .post(demo.url(path))
            .header("content-type", "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .unwrap();
        let body = assert_error(malformed, 422, "validation_error").await;
        assert_eq!(body["details"][0]["type"], "json_invalid", "{path}");
        let text = demo
            .http
            .post(demo.url(path))
            .body("email=x")
            .send()
            .await
            .unwrap();
        assert_error(text, 415, "unsupported_media_type").await;
    }
    let wrong_types = json!({"user_id": "one", "items": [{"sku": "pen", "quantity": 1}]});
    let body = assert_error(
        demo.post("/orders", wrong_types).await,
        422,
        "validation_error",
    )
    .await;
    assert_eq!(body["details"][0]["loc"], json!(["body", "user_id"]));
    let zero = json!({"user_id": 1, "items": [{"sku": "pen", "quantity": 0}]});
    let body = assert_error(demo.post("/orders", zero).await, 422, "validation_error").await;
    assert_eq!(
        body["details"][0]["loc"],
        json!(["body", "items", 0, "quantity"])
    );
    for path in ["/users/x", "/orders/x", "/payments/x"] {
        let body = assert_error(demo.get(path).await, 422, "validation_error").await;
        assert_eq!(body["details"][0]["loc"], json!(["path", "id"]), "{path}");
    }
    let bad_query = demo.get("/ops/slow?ms=soon").await;
    assert_error(bad_query, 422, "validation_error").await;
    assert_error(demo.get("/nowhere").await, 404, "not_found").await;
    assert_error(
        demo.http.delete(demo.url("/orders")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    let payment_for_nothing = json!({"card": "ok"});
    assert_error(
        demo.post("/orders/42/payments", payment_for_nothing).await,
        404,
        "not_found",
    )
    .await;

    // Nothing was written by any of it.
    assert_eq!(demo.get_json("/ops/outbox").await, json!([]));
    assert_eq!(demo.get_json("/ops/alerts").await, json!([]));
    let stats = demo.get_json("/stats").await;
    assert_eq!(stats["scheduled"], 0, "{stats}");
}

#[tokio::test]
async fn fault_drills_are_served_only_with_fault_injection_and_validate_their_input() {
    let plain = Demo::start(&[]).await;
    let drill = plain.post("/drills", json!({})).await;
    assert_eq!(drill.status(), 404, "no drills without --fault-injection");
    assert_eq!(plain.get("/ops/idle").await.status(), 404);

    let demo = Demo::start(&["--fault-injection"]).await;
    let task = json!({"timing": "after_response"});
    let invalid = [
        (json!({"tasks": vec![task; 17]}), json!(["body", "tasks"])),
        (
            json!({"tasks": [{"work_ms": 600_001}]}),
            json!(["body", "tasks", 0, "work_ms"]),
        ),
        (
            json!({"stream_chunks": 1025}),
            json!(["body", "stream_chunks"]),
        ),
        (json!({"handler": "flaky"}), json!(["body", "handler"])),
        (
            json!({"tasks": [{"fault": "none", "extra": 1}]}),
            json!(["body", "tasks", 0, "extra"]),
        ),
    ];
    for (body, loc) in invalid {
        let response = demo.post("/drills", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "validation_error");
        assert_eq!(error["details"][0]["loc"], loc, "{body}: {error}");
    }
    let stats = demo.get_json("/ops/idle").await;
    assert_eq!(
        stats["scheduled"], 0,
        "invalid drills schedule nothing: {stats}"
    );
}

#[tokio::test]
async fn e_mail_addresses_are_unique_whatever_their_case() {
    let demo = Demo::start(&[]).await;
    let first = demo
        .post("/signups", json!({"email": "Ada@Example.com"}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = demo
        .post("/signups", json!({"email": "ada@example.COM"}))
        .await;
    assert_error(again, 409, "conflict").await;
}

#[tokio::test]
async fn ops_pages_need_the_token_when_one_is_set() {
    let mut demo = Demo::start(&["--ops-token", "s3cret"]).await;
    for path in ["/ops/outbox", "/stats", "/metrics"] {
        assert_error(demo.get(path).await, 403, "forbidden").await;
        let with_token = demo
            .http
            .get(demo.url(path))
            .header("authorization", "Bearer s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), StatusCode::OK, "{path}");
    }
    // The public API stays open, and the demo's own alert sink still gets its alerts.
    let order = demo.order("ada@example.com").await;
    let payment = demo
        .post(
            &format!("/orders/{order}/payments"),
            json!({"card": "declined", "processing_ms": 10}),
        )
        .await;
    assert_eq!(payment.status(), StatusCode::ACCEPTED);
    demo.wait_for("on-call alerted").await;
}

#[tokio::test]
async fn an_unknown_sku_is_echoed_bounded() {
    let demo = Demo::start(&[]).await;
    let user: Value = demo
        .post("/signups", json!({"email": "bo@example.com"}))
        .await
        .json()
        .await
        .unwrap();
    let sku = "x".repeat(1_900_000);
    let response = demo
        .post(
            "/orders",
            json!({"user_id": user["id"], "items": [{"sku": sku, "quantity": 1}]}),
        )
        .await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, 404, "{}", &body[..body.len().min(300)]);
    assert!(body.len() < 2048, "{} bytes echoed", body.len());
}

#[tokio::test]
async fn an_export_storm_stops_at_its_group_and_sign_ups_still_answer() {
    let demo = Demo::start(&[]).await;
    let mut accepted = 0;
    for _ in 0..20 {
        let export = demo.post("/exports", json!({"work_ms": 3_600_000})).await;
        match export.status().as_u16() {
            202 => accepted += 1,
            _ => {
                assert_error(export, 503, "overloaded").await;
            }
        }
    }
    assert_eq!(accepted, 10, "2 running and 8 waiting, then 503");
    let signup = demo
        .post("/signups", json!({"email": "cy@example.com"}))
        .await;
    assert_eq!(signup.status(), StatusCode::CREATED);
}

/// The sum of the Prometheus series of `name` whose line contains every one of `labels`.
fn scraped(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_and_count_what_stats_count() {
    let mut demo = Demo::start(&["--fault-injection"]).await;
    let created = demo
        .post("/signups", json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let nightly = demo.post("/reports/nightly", json!({})).await;
    assert_eq!(nightly.status(), StatusCode::ACCEPTED);
    demo.wait_for("nightly report failed").await;
    let stats = demo.get_json("/ops/idle").await;

    let response = demo.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus' text format"
    );
    let text = response.text().await.unwrap();
    let scheduled = scraped(&text, "errands_tasks_scheduled_total", &[]);
    assert_eq!(scheduled, stats["scheduled"].as_f64().unwrap(), "{text}");
    for outcome in ["succeeded", "failed", "skipped"] {
        let label = format!("outcome=\"{outcome}\"");
        let finished = scraped(&text, "errands_tasks_finished_total", &[&label]);
        assert_eq!(
            finished,
            stats[outcome].as_f64().unwrap(),
            "{outcome}: {text}"
        );
    }
    let failed_nightly = scraped(
        &text,
        "errands_tasks_finished_total",
        &["task=\"build_nightly_report\"", "outcome=\"failed\""],
    );
    assert_eq!(failed_nightly, 1.0, "{text}");
    assert!(scraped(&text, "errands_errors_reported_total", &["origin=\"task\""]) >= 1.0);
    // The recommended buckets, in seconds.
    assert!(
        text.contains("errands_task_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("le=\"0.0025\""), "{text}");
    // The durable queues, measured by the worker when it started.
    assert!(
        text.contains("errands_jobs_oldest_runnable_age_seconds{queue=\"default\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn the_dashboard_is_behind_its_token_printed_at_start_on_localhost() {
    let demo = Demo::start(&[]).await;
    // Logged before the server accepted connections: among the lines seen at start.
    let line = demo.seen[demo.position(&["dashboard: http://"])].clone();
    let start = line.find("http://").unwrap();
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    let token = url.split_once("token=").expect("the token on localhost").1;
    assert!(token.len() >= 32, "a long random token: {token}");

    assert_eq!(
        demo.get("/ops/dashboard").await.status(),
        StatusCode::FORBIDDEN
    );
    let page = demo
        .http
        .get(demo.url("/ops/dashboard"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<h1>Overview</h1>") && html.contains("Durable queues"),
        "{html}"
    );
    let read_only = demo
        .http
        .post(demo.url("/ops/dashboard/jobs/1/retry"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_only.status(),
        StatusCode::FORBIDDEN,
        "read-only by default"
    );
}
