//! Request ids: accepted from `x-request-id` when safe, otherwise generated.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

/// The id of a request: the inbound `x-request-id` when it is 1–128 characters of
/// `[A-Za-z0-9._:-]`, otherwise a freshly generated UUIDv7.
///
/// It is echoed in the `x-request-id` response header, in error bodies, in the request's
/// tracing span, in every [`TaskInfo`](crate::TaskInfo) and in every report about the request. Handlers can
/// extract it:
///
/// ```
/// async fn handler(id: errands::RequestId) -> String {
///     format!("you are request {id}")
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(handler));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The header that carries request ids.
    pub const HEADER: &'static str = "x-request-id";

    /// Accepts `value` if it is 1–128 characters of `[A-Za-z0-9._:-]`.
    ///
    /// ```
    /// use errands::RequestId;
    /// assert!(RequestId::parse(b"abc-123").is_some());
    /// assert!(RequestId::parse(b"two words").is_none());
    /// assert!(RequestId::parse(b"").is_none());
    /// ```
    pub fn parse(value: &[u8]) -> Option<Self> {
        let valid = (1..=128).contains(&value.len())
            && value
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid {
            return None;
        }
        HeaderValue::from_bytes(value).ok().map(RequestId)
    }

    /// A new UUIDv7 id: the Unix time in milliseconds, then 74 random bits.
    ///
    /// Ids are time-ordered between milliseconds and unique in practice, but not secret: the
    /// random bits come from a fast per-thread generator, not a cryptographic one, so never
    /// use a request id as a token.
    ///
    /// ```
    /// let id = errands::RequestId::generate();
    /// assert_eq!(id.as_str().len(), 36);
    /// assert_eq!(&id.as_str()[14..15], "7"); // the UUID version
    /// ```
    pub fn generate() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut random = [0; 10];
        fastrand::fill(&mut random);
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        // One allocation, shared by every clone of the id (a copied slice would allocate
        // again when first cloned).
        RequestId(
            HeaderValue::from_maybe_shared(Bytes::from_owner(text))
                .expect("a UUID is a valid header value"),
        )
    }

    /// The accepted header value, or a generated id.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| Self::parse(v.as_bytes()))
            .unwrap_or_else(Self::generate)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever accepted, so this cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
