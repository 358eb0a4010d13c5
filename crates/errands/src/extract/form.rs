use axum::extract::{FromRequest, Request};
use http::Method;
use serde::de::DeserializeOwned;

use super::{body, urlencoded};
use crate::errors::Error;

/// A URL-encoded form, validated: a failure is a `422 validation_error` located at
/// `["body", <field>]`; another content type is `415`. Like axum's `Form`, a `GET` or `HEAD`
/// request's form is read from the query string (located at `["query", <field>]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if matches!(*request.method(), Method::GET | Method::HEAD) {
            let query = request.uri().query().unwrap_or_default();
            return urlencoded::parse(query.as_bytes(), "query").map(Form);
        }
        let bytes = body::read(
            request,
            state,
            |media_type| media_type == "application/x-www-form-urlencoded",
            "Expected a request with `Content-Type: application/x-www-form-urlencoded`.",
        )
        .await?;
        urlencoded::parse(&bytes, "body").map(Form)
    }
}
