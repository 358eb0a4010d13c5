//! Running tasks: a task's work, its slot, its panics and timeout caught, and the future that
//! carries it to exactly one outcome.

mod guarded;
mod run;
mod slot;
mod work;

pub(crate) use run::{Pending, Prepared};
#[cfg(feature = "durable")]
pub(crate) use work::BodyCx;
pub(crate) use work::{Blocking, Once, RetryHook, Retrying, Work};
