//! Validated extractors: like axum's, but every rejection is an errands error in the schema.
//!
//! | extractor | rejection |
//! |---|---|
//! | [`Json`] | `422 validation_error` (malformed JSON, wrong types, missing fields — `loc` starts with `body`), `415 unsupported_media_type`, `413 payload_too_large` |
//! | [`Query`] | `422 validation_error` (`loc` starts with `query`) |
//! | [`Form`] | `422 validation_error` (`loc` starts with `body`), `415`, `413` |
//! | [`Path`] | `422 validation_error` (`loc` starts with `path`) |
//!
//! ```
//! use errands::extract::{Json, Path, Query};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct NewOrder { sku: String, quantity: u32 }
//! #[derive(Deserialize)]
//! struct Paging { page: Option<u32> }
//!
//! async fn create(Path(shop): Path<u64>, Query(paging): Query<Paging>, Json(order): Json<NewOrder>) -> String {
//!     format!("{shop}: {} x {} (page {:?})", order.quantity, order.sku, paging.page)
//! }
//! # let errands = errands::Errands::new();
//! # let _ = axum::Router::<()>::new().route("/shops/{shop}/orders", axum::routing::post(create)).layer(errands.layer());
//! ```

mod body;
mod form;
mod json;
mod path;
mod query;
mod scoped;
mod urlencoded;

pub use form::Form;
pub use json::Json;
pub use path::Path;
pub use query::Query;
