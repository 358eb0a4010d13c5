//! [`Error`]: the handler error type every error converts into with `?`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use super::catalog;
use super::{ApiError, Format};
use crate::report::Origin;
use crate::task::{BoxError, SharedError, TaskError, TaskResult};

/// The error type for handlers: any `std::error::Error` converts into it with `?`.
///
/// The errands layer turns it into a response through the error catalog: the first
/// registered mapper (or built-in mapping) that matches an error along the `source()` chain,
/// outermost first, decides the status, code, message and details. Anything unmapped becomes
/// `500 internal_error`, with no internal text in the body. Either way the error is reported
/// once, with its full chain.
///
/// ```
/// use errands::{Errands, Error};
///
/// async fn load_config() -> Result<String, Error> {
///     let text = std::fs::read_to_string("/definitely/missing.toml")?; // io::Error → 500
///     Ok(text)
/// }
/// # let errands = Errands::new();
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(load_config)).layer(errands.layer());
/// ```
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself, which is what lets
/// every error convert into it.
#[derive(Clone)]
pub struct Error {
    inner: Arc<dyn StdError + Send + Sync + 'static>,
    type_name: &'static str,
    origin: Origin,
}

/// `Result<T, errands::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(not(feature = "anyhow"))]
impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error {
            inner: Arc::new(error),
            type_name: std::any::type_name::<E>(),
            origin: Origin::Handler,
        }
    }
}

/// With the `anyhow` feature, anything that converts into a boxed error converts, so that `?`
/// works on an `anyhow::Result`; type matching sees through the `anyhow::Error`.
#[cfg(feature = "anyhow")]
impl<E: Into<BoxError> + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error::new(error)
    }
}

impl Error {
    /// Wraps any boxable error, such as a `Box<dyn Error + Send + Sync>` or an `anyhow::Error`
    /// (type matching sees through the latter with the `anyhow` feature).
    pub fn new<E: Into<BoxError> + 'static>(error: E) -> Self {
        Error {
            inner: Arc::from(crate::chain::boxed(error)),
            type_name: std::any::type_name::<E>(),
            origin: Origin::Handler,
        }
    }

    /// An error raised while extracting the request (a rejection).
    pub(crate) fn rejection<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        Error {
            origin: Origin::Rejection,
            ..Error::from(error)
        }
    }

    /// The wrapped error (for an `anyhow::Error`, the error it holds).
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        crate::chain::open(&*self.inner)
    }

    /// The first error of type `E` along the `source()` chain.
    pub fn find<E: StdError + 'static>(&self) -> Option<&E> {
        crate::chain::find(self.inner())
    }

    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    pub(crate) fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The error as a task's or a report's [`SharedError`].
    pub(crate) fn shared(&self) -> SharedError {
        self.inner.clone()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// A task may return an `errands::Result`: type matching still finds the types along the
/// error's chain.
impl<T: Send + 'static> TaskResult for Result<T, Error> {
    fn into_task_result(self) -> Result<(), TaskError> {
        self.map(drop).map_err(|error| TaskError::Failed {
            type_name: error.type_name,
            error: error.inner,
        })
    }
}

/// The error travelling in a response's extensions from `into_response` to the layer.
#[derive(Clone)]
pub(crate) struct Carried(pub(crate) Error);

impl IntoResponse for Error {
    /// Renders with the built-in mappings only (the layer re-renders with the full catalog
    /// and the request id), and carries the error along for the layer.
    fn into_response(self) -> Response {
        let public = catalog::builtin_chain(self.inner()).unwrap_or_else(ApiError::internal);
        let mut response = Format::Json.render(&public, None);
        response.extensions_mut().insert(Carried(self));
        response
    }
}
