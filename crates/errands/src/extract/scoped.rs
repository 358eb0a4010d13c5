//! The extractors that read the request's scope, put in the request by the errands layer:
//! [`Tasks`] and [`RequestId`]. Without the layer they reject with [`LayerMissing`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::errors::LayerMissing;
use crate::request::RequestId;
use crate::scope::RequestScope;
use crate::tasks::Tasks;

fn scope(parts: &Parts) -> Result<&Arc<RequestScope>, LayerMissing> {
    parts
        .extensions
        .get::<Arc<RequestScope>>()
        .ok_or(LayerMissing)
}

impl<S: Send + Sync> FromRequestParts<S> for Tasks {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scope = scope(parts)?;
        scope.info().learn_route(&parts.extensions);
        Ok(Tasks::for_request(scope))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(scope(parts)?.info().id.clone())
    }
}
