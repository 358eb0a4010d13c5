//! `errands::openapi`: the schemas describe the bodies errands really sends — every property a
//! body has is in its schema, and every required property is in every body.
#![cfg(feature = "utoipa")]

use axum::Router;
use axum::routing::post;
use errands::Errands;
use errands::openapi::{ErrorBody, ProblemBody};
use errands::testing::TestClient;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

#[derive(Deserialize)]
struct Signup {
    #[allow(dead_code)]
    email: String,
}

#[derive(OpenApi)]
#[openapi(components(schemas(ErrorBody, ProblemBody, errands::Violation)))]
struct Api;

fn schema(name: &str) -> Value {
    let spec = serde_json::to_value(Api::openapi()).unwrap();
    spec["components"]["schemas"][name].clone()
}

/// Asserts `body` has exactly the schema's properties, required ones included.
fn conforms(body: &Value, schema: &Value) {
    let properties: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let body_keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(body_keys, properties, "{body}");
    for required in schema["required"].as_array().unwrap() {
        assert!(body.get(required.as_str().unwrap()).is_some(), "{required}");
    }
}

async fn invalid_signup(errands: &Errands) -> Value {
    let app = Router::new()
        .route(
            "/signup",
            post(|errands::extract::Json(_): errands::extract::Json<Signup>| async { "ok" }),
        )
        .layer(errands.layer());
    let client = TestClient::new(app, errands);
    let response = client.post("/signup").json(&serde_json::json!({})).await;
    assert_eq!(response.status(), 422);
    response.json()
}

#[tokio::test]
async fn the_error_body_and_its_violations_match_their_schemas() {
    let body = invalid_signup(&Errands::new()).await;
    conforms(&body, &schema(ErrorBody::name().as_ref()));
    conforms(&body["details"][0], &schema("Violation"));
}

#[tokio::test]
async fn the_problem_body_matches_its_schema() {
    let body = invalid_signup(&Errands::builder().problem_json().build()).await;
    conforms(&body, &schema(ProblemBody::name().as_ref()));
}
