//! What is known about a request: its id, and the values its tasks and reports carry.

mod id;
mod info;

pub use id::RequestId;
pub use info::Delivery;
pub(crate) use info::RequestInfo;
