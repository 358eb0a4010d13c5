//! What is known about a request: its id, and the values its tasks and reports carry.

mod body;
mod id;
mod info;

pub use body::BodyTimedOut;
pub use id::RequestId;
pub use info::Delivery;
pub(crate) use info::RequestInfo;
