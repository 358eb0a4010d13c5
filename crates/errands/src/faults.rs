//! Named points where a crash test stops the process (feature `faults`; without it, every
//! point compiles to nothing).
//!
//! A test program installs one hook; errands calls it with the point's name each time it
//! passes one. The points are the moments a crash matters to durable jobs:
//!
//! | point | where |
//! |---|---|
//! | `release` | after the response, before a held job is released |
//! | `completion_write` | an attempt ended, before its result is written |
//! | `report_write` | a failure was reported, before the store records the report |
//!
//! The hook typically announces the point and waits to be killed with `SIGKILL`.

#[cfg(feature = "faults")]
static HOOK: std::sync::OnceLock<fn(&'static str)> = std::sync::OnceLock::new();

/// Calls `hook` at every fault point from now on; only the first hook installed counts.
#[cfg(feature = "faults")]
#[cfg_attr(docsrs, doc(cfg(feature = "faults")))]
pub fn install(hook: fn(&'static str)) {
    let _ = HOOK.set(hook);
}

/// Passes the point `name`.
#[inline]
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) fn point(name: &'static str) {
    #[cfg(feature = "faults")]
    if let Some(hook) = HOOK.get() {
        hook(name);
    }
    #[cfg(not(feature = "faults"))]
    let _ = name;
}
