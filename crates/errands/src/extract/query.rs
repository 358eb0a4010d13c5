use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::urlencoded;
use crate::errors::Error;

/// The query string, validated: a failure is a `422 validation_error` located at
/// `["query", <field>]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        urlencoded::parse(query.as_bytes(), "query").map(Query)
    }
}
