//! Errors errands itself returns, and the JSON body they render to.

mod body;
mod schedule;
mod unavailable;

pub(crate) use body::PublicError;
pub use schedule::ScheduleError;
pub use unavailable::TasksUnavailable;
