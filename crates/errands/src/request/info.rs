//! [`RequestInfo`]: what is known about a request — values only, shared by its scope, its
//! tasks' [`TaskInfo`](crate::TaskInfo) and its reports, and never a handle to the runtime.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use axum::extract::MatchedPath;
use http::{Extensions, Method, StatusCode};

use super::RequestId;

/// Whether a response body reached the server completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The body reached its end: every byte was handed to the server.
    Complete,
    /// The body was dropped before its end, typically because the client disconnected.
    Interrupted,
}

/// The values of one request. The route, status and delivery are learned as the request
/// goes on, each written once.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) id: RequestId,
    pub(crate) method: Method,
    /// The route, when the layer runs inside the router (`Router::layer`).
    route: Option<MatchedPath>,
    /// The route learned later from the extractors, when the layer wraps the whole router.
    late_route: OnceLock<MatchedPath>,
    /// The final status, once the handler has returned; 0 until then.
    status: AtomicU16,
    /// The response's [`Delivery`] (`1 + its index`), once the response is over; 0 until then.
    delivery: AtomicU8,
    /// The request's W3C `traceparent` header, when it carried a valid one.
    traceparent: Option<Box<str>>,
}

impl RequestInfo {
    pub(crate) fn new(id: RequestId, method: Method, route: Option<&MatchedPath>) -> Self {
        RequestInfo {
            id,
            method,
            route: route.cloned(),
            late_route: OnceLock::new(),
            status: AtomicU16::new(0),
            delivery: AtomicU8::new(0),
            traceparent: None,
        }
    }

    /// With the request's `traceparent` header, kept when it is a valid W3C one.
    pub(crate) fn with_traceparent(mut self, header: Option<&http::HeaderValue>) -> Self {
        self.traceparent = header
            .and_then(|value| value.to_str().ok())
            .filter(|value| valid_traceparent(value))
            .map(Into::into);
        self
    }

    /// The request's W3C `traceparent`, if it carried a valid one.
    pub(crate) fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    pub(crate) fn route(&self) -> Option<&str> {
        self.route
            .as_ref()
            .or_else(|| self.late_route.get())
            .map(MatchedPath::as_str)
    }

    /// Learns the route from a request's extensions, unless it is known already.
    pub(crate) fn learn_route(&self, extensions: &Extensions) {
        if self.route().is_none()
            && let Some(route) = extensions.get::<MatchedPath>()
        {
            let _ = self.late_route.set(route.clone());
        }
    }

    /// The final status of the response, once the handler has returned it.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        StatusCode::from_u16(self.status.load(Ordering::Acquire)).ok()
    }

    pub(crate) fn set_status(&self, status: StatusCode) {
        self.status.store(status.as_u16(), Ordering::Release);
    }

    /// Whether the response body reached the server completely, once the response is over.
    pub(crate) fn delivery(&self) -> Option<Delivery> {
        match self.delivery.load(Ordering::Acquire) {
            1 => Some(Delivery::Complete),
            2 => Some(Delivery::Interrupted),
            _ => None,
        }
    }

    pub(crate) fn set_delivery(&self, delivery: Option<Delivery>) {
        let delivery = match delivery {
            None => 0,
            Some(Delivery::Complete) => 1,
            Some(Delivery::Interrupted) => 2,
        };
        self.delivery.store(delivery, Ordering::Release);
    }
}

/// Whether `value` is a W3C trace context `traceparent` of version `00`:
/// `00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}`, lowercase, ids not all zero.
pub(crate) fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)
            && nonzero(trace) && nonzero(parent))
}

#[cfg(test)]
mod traceparent_tests {
    use super::valid_traceparent;

    #[test]
    fn only_valid_w3c_traceparents_are_kept() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-<script>alert(1)</script>-00f067aa0ba902b7-01",
        ] {
            assert!(!valid_traceparent(invalid), "{invalid}");
        }
    }
}
