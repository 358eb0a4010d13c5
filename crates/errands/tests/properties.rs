//! Property tests: arbitrary request ids, bodies, query strings and paths never produce a
//! 5xx, a panic, or a body outside the schema.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::routing::{get, post};
use errands::Errands;
use errands::extract::{Form, Json, Path, Query};
use errands::testing::{TestClient, TestResponse};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Order {
    sku: String,
    quantity: u32,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Search {
    page: Option<u32>,
    q: Option<String>,
}

fn client() -> (tokio::runtime::Runtime, TestClient) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let errands = Errands::builder().without_tracing_reporter().build();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/orders", post(|Json(_): Json<Order>| async { "ok" }))
        .route("/search", get(|Query(_): Query<Search>| async { "ok" }))
        .route(
            "/orders/{id}/lines/{line}",
            get(|Path(_): Path<(u64, u16)>| async { "ok" }),
        )
        .route("/items/{id}", get(|Path(_): Path<u32>| async { "ok" }))
        .route("/form", post(|Form(_): Form<Search>| async { "ok" }))
        .layer(errands.layer());
    let client = TestClient::new(app, &errands);
    (runtime, client)
}

/// Never a 5xx; any error body is exactly the schema, carrying the response's request id.
fn assert_sound(response: &TestResponse) {
    let status = response.status();
    assert!(!status.is_server_error(), "{status}: {}", response.text());
    if status.is_client_error() {
        let body = response.json();
        let object = body.as_object().expect("an object");
        let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "details", "error", "request_id", "success"]);
        assert_eq!(body["success"], false);
        assert!(body["code"].is_string() && body["error"].is_string());
        assert_eq!(
            body["request_id"],
            response.headers()["x-request-id"].to_str().unwrap()
        );
        if body["code"] == "validation_error" {
            for violation in body["details"].as_array().unwrap() {
                assert!(violation["loc"].is_array() && violation["msg"].is_string());
                assert!(violation["type"].is_string());
            }
        }
    }
}

/// Arbitrary JSON documents, biased towards the fields the endpoint expects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map("sku|quantity|tags|[a-z]{1,5}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn is_valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_ids_are_kept_when_valid_and_replaced_otherwise(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "[A-Za-z0-9._:-]{1,140}".prop_map(String::into_bytes),
        ]
    ) {
        let Ok(value) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
        let (runtime, client) = client();
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        request.headers_mut().insert("x-request-id", value);
        let response = runtime.block_on(client.send(request));
        prop_assert_eq!(response.status(), 200);
        let echoed = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let sent = String::from_utf8_lossy(&raw);
        if is_valid_id(&sent) {
            prop_assert_eq!(echoed, sent.into_owned());
        } else {
            let uuid = uuid::Uuid::parse_str(&echoed).expect("a generated UUID");
            prop_assert_eq!(uuid.get_version_num(), 7);
        }
    }

    #[test]
    fn arbitrary_json_bodies_never_fail_the_schema(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            (any::<String>(), any::<i64>(), proptest::option::of(proptest::collection::vec(any::<String>(), 0..3)))
                .prop_map(|(sku, quantity, tags)| serde_json::json!({"sku": sku, "quantity": quantity, "tags": tags}).to_string().into_bytes()),
        ],
        content_type in prop_oneof![Just("application/json"), Just("text/plain"), Just("application/x+json")],
    ) {
        let (runtime, client) = client();
        let request = Request::post("/orders")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        assert_sound(&runtime.block_on(client.send(request)));
    }

    #[test]
    fn arbitrary_query_strings_and_forms_never_fail_the_schema(
        raw in proptest::collection::vec(any::<u8>(), 0..120),
        structured in "(page|q|x)=[a-z0-9%+&=._-]{0,20}",
    ) {
        let (runtime, client) = client();
        for query in [percent_encode(&raw), structured.clone()] {
            let response = runtime.block_on(client.get(&format!("/search?{query}")).into_future());
            assert_sound(&response);
            let form = Request::post("/form")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(query))
                .unwrap();
            assert_sound(&runtime.block_on(client.send(form)));
        }
    }

    #[test]
    fn arbitrary_path_segments_never_fail_the_schema(
        a in proptest::collection::vec(any::<u8>(), 1..40),
        b in proptest::collection::vec(any::<u8>(), 1..10),
    ) {
        let (runtime, client) = client();
        let (a, b) = (percent_encode(&a), percent_encode(&b));
        for uri in [format!("/orders/{a}/lines/{b}"), format!("/items/{a}"), format!("/{a}")] {
            assert_sound(&runtime.block_on(client.get(&uri).into_future()));
        }
    }
}
