use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::{body, urlencoded};
use crate::errors::Error;

/// A URL-encoded form body, validated: a failure is a `422 validation_error` located at
/// `["body", <field>]`; another content type is `415`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
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
