//! The request side: its id and the per-request scope that holds its pending tasks.

mod batch;
mod id;
mod scope;

pub use id::RequestId;
pub use scope::Delivery;
pub(crate) use scope::RequestScope;
