//! The dashboard's door: every request passes the application's check, or the token's, or
//! gets `403`; without any check configured, every request gets `403`.

use std::sync::Arc;

use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::Dashboard;

/// The cookie the token flow sets.
const COOKIE: &str = "errands_dashboard";

pub(super) async fn guard(
    State(dashboard): State<Arc<Dashboard>>,
    request: Request,
    next: Next,
) -> Response {
    if dashboard.check.is_none() && dashboard.token.is_none() {
        return refused(
            "The dashboard is closed: the application has not given it an authorization check \
             (Dashboard::authorize or Dashboard::token).",
        );
    }
    let (parts, body) = request.into_parts();
    if let Some(token) = &dashboard.token
        && let Some(given) = query_token(parts.uri.query())
    {
        if !same(given.as_bytes(), token.as_bytes()) {
            return refused("Not authorized.");
        }
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |uri| uri.0.clone());
        return enter(&original, &parts.uri, token);
    }
    let by_token = dashboard
        .token
        .as_deref()
        .is_some_and(|token| carries(&parts.headers, token));
    let by_check = dashboard.check.as_ref().is_some_and(|check| check(&parts));
    if !(by_token || by_check) {
        return refused("Not authorized.");
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `403`, with why.
fn refused(why: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why,
    )
        .into_response()
}

/// The `token` query parameter, if the request has one.
fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

/// Sets the cookie for the dashboard's path and sends the browser to the page without the
/// token in its address.
fn enter(original: &http::Uri, inner: &http::Uri, token: &str) -> Response {
    let base = super::pages::base(original.path(), inner.path());
    let path = if base.is_empty() { "/" } else { &base };
    let cookie = format!("{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict");
    let rest: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(original.query().unwrap_or_default().as_bytes())
                .filter(|(key, _)| key != "token"),
        )
        .finish();
    let location = if rest.is_empty() {
        original.path().to_owned()
    } else {
        format!("{}?{rest}", original.path())
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Whether the request carries `token`: `Authorization: Bearer`, or the cookie.
fn carries(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && same(value.as_bytes(), token.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A state-changing request comes from the dashboard's own pages: the browser says so
/// (`Sec-Fetch-Site: same-origin`), or its `Origin` (browsers send one with every `POST`)
/// names the host it was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site == Some("same-origin") {
        return true;
    }
    if site.is_some_and(|site| site != "none") {
        return false; // cross-site, or same-site from another origin
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        // Not a browser (no `Origin`): the authorization check alone decides.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_in_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        assert!(!carries(&headers, "s3cret"));
        headers.insert(
            header::COOKIE,
            "a=b; errands_dashboard=s3cret".parse().unwrap(),
        );
        assert!(carries(&headers, "s3cret"));
        assert!(!carries(&headers, "s3cre"));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(carries(&headers, "s3cret"));
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        headers.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&headers));
        let mut behind_a_proxy = HeaderMap::new();
        behind_a_proxy.insert(header::HOST, "10.0.0.7:8080".parse().unwrap());
        behind_a_proxy.insert(header::ORIGIN, "https://ops.example".parse().unwrap());
        behind_a_proxy.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&behind_a_proxy));
    }
}
