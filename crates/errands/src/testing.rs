//! Test support: an in-process client whose responses can wait for exactly the work their
//! request started.
//!
//! ```
//! use axum::{Router, routing::post};
//! use errands::{Errands, Tasks, testing::TestClient};
//!
//! async fn send_welcome_email() -> Result<(), std::io::Error> { Ok(()) }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let errands = Errands::new();
//! let app = Router::new()
//!     .route("/signup", post(|tasks: Tasks| async move {
//!         tasks.after_response().schedule(send_welcome_email()).unwrap();
//!         "welcome"
//!     }))
//!     .layer(errands.layer());
//! let client = TestClient::new(app, &errands);
//!
//! let response = client.post("/signup").await;
//! assert_eq!(response.text(), "welcome");
//! response.settle().await; // the email task is terminal now
//! assert_eq!(client.stats().succeeded, 1);
//! assert!(client.reports().is_empty());
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::errands::Errands;
use crate::report::ErrorReport;
use crate::request::RequestId;
use crate::stats::Stats;
use crate::watch::{Watch, WatchSlot};

/// An in-process client for a router that includes [`Errands::layer`].
///
/// It captures every report of the runtime (the most recent 10 000).
#[derive(Clone, Debug)]
pub struct TestClient {
    app: Router,
    errands: Errands,
    settle_timeout: Duration,
}

impl TestClient {
    /// A client for `app`, whose layer comes from `errands`.
    pub fn new(app: Router, errands: &Errands) -> Self {
        errands.rt().reporters().capture();
        // The guard `Errands::serve` puts outside every layer, so that tests see what a
        // served application would.
        let app = app.layer(crate::layer::OuterLayer::new(errands.pipeline().clone()));
        TestClient {
            app,
            errands: errands.clone(),
            settle_timeout: Duration::from_secs(10),
        }
    }

    /// How long [`TestResponse::settle`] waits before failing (default 10 s).
    pub fn settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// A `GET uri` request: `.await` it to send it, or add headers or a body first.
    pub fn get(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::GET, uri)
    }

    /// A `POST uri` request, empty unless a body is added.
    pub fn post(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::POST, uri)
    }

    /// A `PUT uri` request, empty unless a body is added.
    pub fn put(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::PUT, uri)
    }

    /// A `PATCH uri` request, empty unless a body is added.
    pub fn patch(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::PATCH, uri)
    }

    /// A `DELETE uri` request.
    pub fn delete(&self, uri: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, uri)
    }

    /// A request with any method.
    ///
    /// # Panics
    ///
    /// If `uri` is not a valid URI.
    pub fn request(&self, method: Method, uri: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            request: request(method, uri, Body::empty()),
        }
    }

    /// Sends `POST uri` with a JSON body.
    pub async fn post_json(&self, uri: &str, json: &serde_json::Value) -> TestResponse {
        self.post(uri).json(json).await
    }

    /// Sends any request and reads the whole response body, as a server would hand it over.
    pub async fn send(&self, mut request: Request<Body>) -> TestResponse {
        let slot = WatchSlot::default();
        request.extensions_mut().insert(slot.clone());
        let response = match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            watch: slot.get().cloned(),
            errands: self.errands.clone(),
            settle_timeout: self.settle_timeout,
        }
    }

    /// The runtime's counters.
    pub fn stats(&self) -> Stats {
        self.errands.stats()
    }

    /// Waits until no request and no task of the runtime is in flight.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Errands::idle`].
    pub async fn idle(&self) {
        self.errands.idle().await
    }

    /// Every report captured since the client was made, oldest first.
    pub fn reports(&self) -> Vec<ErrorReport> {
        self.errands.rt().reporters().capture().snapshot()
    }
}

fn request(method: Method, uri: &str, body: Body) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri
        .parse()
        .unwrap_or_else(|e| panic!("invalid test uri {uri:?}: {e}"));
    request
}

/// A request being built by a [`TestClient`]; `.await` sends it.
///
/// ```
/// # use axum::{Router, routing::put, Json};
/// # use errands::{Errands, testing::TestClient};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Item { name: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let errands = Errands::new();
/// # let app = Router::new()
/// #     .route("/items/{id}", put(|Json(item): Json<Item>| async move { Json(item) }))
/// #     .layer(errands.layer());
/// let client = TestClient::new(app, &errands);
/// let item = Item { name: "lamp".into() };
/// let response = client.put("/items/7").header("x-tenant", "acme").json(&item).await;
/// assert_eq!(response.json_as::<Item>(), item);
/// # }
/// ```
#[must_use = "a request is sent when awaited"]
#[derive(Debug)]
pub struct TestRequest<'a> {
    client: &'a TestClient,
    request: Request<Body>,
}

impl TestRequest<'_> {
    /// Adds a header.
    ///
    /// # Panics
    ///
    /// If the name or the value is not valid in a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = http::HeaderName::try_from(name)
            .unwrap_or_else(|e| panic!("invalid test header name {name:?}: {e}"));
        let value = http::HeaderValue::try_from(value)
            .unwrap_or_else(|e| panic!("invalid test header value {value:?}: {e}"));
        self.request.headers_mut().append(name, value);
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialized.
    pub fn json(mut self, value: &impl serde::Serialize) -> Self {
        let json = serde_json::to_vec(value).expect("test JSON body serializes");
        *self.request.body_mut() = Body::from(json);
        self.request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        self
    }

    /// Sets the body as it is (set a `content-type` header with [`header`](Self::header)).
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        *self.request.body_mut() = body.into();
        self
    }
}

impl<'a> IntoFuture for TestRequest<'a> {
    type Output = TestResponse;
    type IntoFuture = std::pin::Pin<Box<dyn Future<Output = TestResponse> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.client.send(self.request))
    }
}

/// A response whose body was read completely.
#[derive(Debug)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    watch: Option<(RequestId, Arc<Watch>)>,
    errands: Errands,
    settle_timeout: Duration,
}

impl TestResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }

    /// The body deserialized as `T`; panics with the body text if it is not.
    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not a {} ({e}): {}",
                std::any::type_name::<T>(),
                self.text()
            )
        })
    }

    /// The request's id, from the errands layer.
    pub fn request_id(&self) -> Option<RequestId> {
        self.watch.as_ref().map(|(id, _)| id.clone())
    }

    /// Waits until every task this request started is terminal, including tasks it scheduled
    /// late through a `Tasks` handle that outlived it.
    ///
    /// # Panics
    ///
    /// After the settle timeout, naming the unfinished tasks; or if the route is not wrapped
    /// by the errands layer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits, and may be called again.
    pub async fn settle(&self) {
        if let Err(unsettled) = self.try_settle().await {
            panic!("{unsettled}");
        }
    }

    /// Like [`settle`](TestResponse::settle), returning the unfinished tasks instead of
    /// panicking.
    ///
    /// # Errors
    ///
    /// [`Unsettled`] when the timeout ran out first.
    ///
    /// # Panics
    ///
    /// If the route is not wrapped by the errands layer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits, and may be called again.
    pub async fn try_settle(&self) -> Result<(), Unsettled> {
        let (id, watch) = self
            .watch
            .as_ref()
            .expect("the response did not pass through the errands layer");
        match tokio::time::timeout(self.settle_timeout, watch.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Unsettled {
                request_id: id.to_string(),
                timeout: self.settle_timeout,
                unfinished: watch.unfinished(),
            }),
        }
    }

    /// The captured reports that carry this request's id.
    pub fn reports(&self) -> Vec<ErrorReport> {
        let id = self.request_id();
        self.errands
            .rt()
            .reporters()
            .capture()
            .snapshot()
            .into_iter()
            .filter(|r| r.request_id.is_some() && r.request_id == id)
            .collect()
    }
}

/// The tasks of a request that were not terminal when `settle` gave up.
#[derive(Debug, Clone)]
pub struct Unsettled {
    /// The request's id.
    pub request_id: String,
    /// How long `settle` waited.
    pub timeout: Duration,
    /// Each unfinished task as `name (id N, timing)`.
    pub unfinished: Vec<String>,
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request {} did not settle within {:?}; unfinished tasks: {}",
            self.request_id,
            self.timeout,
            self.unfinished.join(", ")
        )
    }
}

impl std::error::Error for Unsettled {}

#[cfg(test)]
mod tests {
    use axum::routing::post;

    use super::*;
    use crate::tasks::Tasks;

    #[tokio::test]
    async fn a_dropped_runtime_is_freed_after_its_tasks_were_reported() {
        let errands = Errands::new();
        let app = Router::new()
            .route(
                "/",
                post(|tasks: Tasks| async move {
                    let failing = async { Err::<(), _>("the task failed") };
                    tasks.after_response().schedule(failing).unwrap();
                    "ok"
                }),
            )
            .layer(errands.layer());
        let client = TestClient::new(app, &errands);
        let response = client.post("/").await;
        response.settle().await;
        let reports = client.reports();
        assert_eq!(reports.len(), 1, "the failure was captured: {reports:?}");
        assert!(reports[0].task.as_ref().unwrap().request_id().is_some());

        let runtime = Arc::downgrade(errands.rt());
        drop((response, client, errands));
        assert!(
            runtime.upgrade().is_none(),
            "the captured report must not keep the runtime alive"
        );
        drop(reports);
    }
}
