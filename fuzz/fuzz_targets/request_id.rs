//! Request-id parsing: an inbound id is kept exactly when it is 1–128 characters of
//! `[A-Za-z0-9._:-]`, and the id a request ends up with is always one that is safe to echo in
//! headers, bodies and logs.

#![no_main]

use axum::http::HeaderValue;
use errands::RequestId;
use libfuzzer_sys::fuzz_target;

fn is_safe(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

fuzz_target!(|data: &[u8]| {
    let parsed = RequestId::parse(data);
    assert_eq!(parsed.is_some(), is_safe(data));
    if let Some(id) = &parsed {
        assert_eq!(id.as_str().as_bytes(), data);
    }

    let header = HeaderValue::from_bytes(data).ok();
    let id = RequestId::from_header(header.as_ref());
    assert!(
        is_safe(id.as_str().as_bytes()),
        "unsafe id {:?}",
        id.as_str()
    );
    if is_safe(data) {
        assert_eq!(id.as_str().as_bytes(), data);
    }
});
