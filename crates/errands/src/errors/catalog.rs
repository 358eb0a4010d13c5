//! The error catalog: from an error to its public face.

use std::error::Error as StdError;
use std::sync::Arc;

use http::{Method, StatusCode};

use super::{ApiError, LayerMissing, ValidationError};
use crate::request::RequestId;
use crate::scope::RequestScope;
use crate::task::{ScheduleError, Timing};
use crate::tasks::{TaskBuilder, Tasks};

type Mapper =
    Box<dyn Fn(&(dyn StdError + 'static), &ErrorContext) -> Option<ApiError> + Send + Sync>;

/// Mappers registered with [`ErrandsBuilder::map_error`](crate::ErrandsBuilder::map_error).
#[derive(Default)]
pub(crate) struct Catalog {
    mappers: Vec<Mapper>,
}

impl Catalog {
    pub(crate) fn add<E, F>(&mut self, mapper: F)
    where
        E: StdError + 'static,
        F: Fn(&E, &ErrorContext) -> ApiError + Send + Sync + 'static,
    {
        self.mappers.push(Box::new(move |error, ctx| {
            error.downcast_ref::<E>().map(|e| mapper(e, ctx))
        }));
    }

    /// Walks the `source()` chain, outermost first; at each error the most recently
    /// registered matching mapper wins, then the built-in mappings. `None`: unmapped.
    pub(crate) fn resolve(
        &self,
        error: &(dyn StdError + 'static),
        ctx: &ErrorContext,
    ) -> Option<ApiError> {
        crate::chain::walk(error).find_map(|error| {
            let mapped = self.mappers.iter().rev().find_map(|m| m(error, ctx));
            mapped.or_else(|| builtin(error))
        })
    }
}

/// The built-in mappings along the chain, without user mappers.
pub(crate) fn builtin_chain(error: &(dyn StdError + 'static)) -> Option<ApiError> {
    crate::chain::walk(error).find_map(builtin)
}

/// The built-in mapping of one error, if it is one errands knows.
fn builtin(error: &(dyn StdError + 'static)) -> Option<ApiError> {
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return Some(api.clone());
    }
    if let Some(invalid) = error.downcast_ref::<ValidationError>() {
        let details = serde_json::to_value(invalid.violations()).unwrap_or_default();
        return Some(ApiError::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_details(details));
    }
    if let Some(schedule) = error.downcast_ref::<ScheduleError>() {
        return Some(super::schedule::public(schedule));
    }
    if error.is::<LayerMissing>() {
        return Some(ApiError::internal());
    }
    #[cfg(feature = "durable")]
    if let Some(store) = error.downcast_ref::<crate::durable::StoreError>() {
        return super::store::map(store);
    }
    #[cfg(feature = "sqlx")]
    if let Some(db) = error.downcast_ref::<sqlx::Error>() {
        return super::sqlx::map(db);
    }
    None
}

/// What a mapper knows about the failed request, and the way to attach tasks to its error
/// response.
pub struct ErrorContext {
    scope: Arc<RequestScope>,
    tasks: Tasks,
}

impl ErrorContext {
    pub(crate) fn new(scope: &Arc<RequestScope>) -> Self {
        ErrorContext {
            tasks: Tasks::for_request(scope),
            scope: scope.clone(),
        }
    }

    /// The request's id.
    pub fn request_id(&self) -> &RequestId {
        &self.scope.info().id
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.scope.info().method
    }

    /// The matched route, if any.
    pub fn route(&self) -> Option<&str> {
        self.scope.info().route()
    }

    /// Configures a task attached to the error response: it starts once the error body was
    /// handed to the server, and always runs (it is never skipped for the error status).
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.tasks, Timing::AfterResponse).always()
    }
}

impl std::fmt::Debug for ErrorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorContext")
            .field("request_id", self.request_id())
            .field("method", self.method())
            .field("route", &self.route())
            .finish()
    }
}
