//! [`BodyTimedOut`]: a request body whose client stopped sending it.

use std::time::Duration;

/// The error of a request body whose client sent nothing for the body read timeout
/// ([`ErrandsBuilder::body_read_timeout`](crate::ErrandsBuilder::body_read_timeout)); the
/// extractors of [`errands::extract`](crate::extract) answer it with `408 request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no part of the request body for {0:?}")]
pub struct BodyTimedOut(pub Duration);
