//! The semantics page, "Timing modes": when each mode spawns, what it waits for, and when it is skipped.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use common::{Probe, assert_balanced, idle, probe_reporter};
use errands::testing::TestClient;
use errands::{Errands, Outcome, SkipReason, Tasks};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Clone)]
struct Ctx {
    probe: Probe,
    errands: Errands,
    handles: Arc<Mutex<Vec<Tasks>>>,
}

fn setup(routes: Router<Ctx>) -> (Ctx, TestClient) {
    let probe = Probe::new();
    let errands = Errands::builder().reporter(probe_reporter(&probe)).build();
    let ctx = Ctx {
        probe,
        errands: errands.clone(),
        handles: Default::default(),
    };
    let app = routes.with_state(ctx.clone()).layer(errands.layer());
    let client = TestClient::new(app, &errands);
    (ctx, client)
}

/// A task body that records its name when it runs.
fn mark(probe: &Probe, event: &'static str) -> impl Future<Output = ()> + Send + 'static {
    let probe = probe.clone();
    async move { probe.hit(event) }
}

#[tokio::test]
async fn immediate_task_starts_at_the_call_and_never_delays_the_response() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        let probe = ctx.probe.clone();
        tasks
            .schedule(async move {
                probe.hit("task started");
                probe.gate("finish").await;
            })
            .unwrap();
        // Spawned at the call: the task starts while the handler is still running.
        ctx.probe.reached("task started").await;
        "ok"
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    // The response is complete while the task still runs.
    assert_eq!(client.stats().running, 1);
    ctx.probe.open("finish");
    response.settle().await;
    assert_eq!(client.stats().succeeded, 1);
    assert_balanced(&ctx.errands);
}

#[tokio::test]
async fn after_route_starts_after_the_handler_returned_and_before_the_body_is_sent() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> Body {
        tasks
            .after_route()
            .schedule(mark(&ctx.probe, "after_route ran"))
            .unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Still queued while the handler runs.
        let stats = ctx.errands.stats();
        assert_eq!((stats.pending, stats.running), (1, 0));
        assert!(!ctx.probe.has("after_route ran"));
        // The body only starts once the after_route task ran: it must not wait for the body.
        let probe = ctx.probe.clone();
        Body::from_stream(futures_util::stream::once(async move {
            probe.reached("after_route ran").await;
            Ok::<_, Infallible>(Bytes::from_static(b"body"))
        }))
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    assert_eq!(response.text(), "body");
    response.settle().await;
    assert_eq!(client.stats().succeeded, 1);
    assert_balanced(&ctx.errands);
}

#[tokio::test]
async fn after_response_starts_only_when_the_body_was_handed_over() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> Body {
        tasks
            .after_response()
            .schedule(mark(&ctx.probe, "after_response ran"))
            .unwrap();
        let probe = ctx.probe.clone();
        let chunks = futures_util::stream::iter(["one", "two"]).then(move |chunk| {
            let probe = probe.clone();
            async move {
                if chunk == "two" {
                    probe.gate("second chunk").await;
                }
                Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))
            }
        });
        Body::from_stream(chunks)
    }
    let (ctx, _client) = setup(Router::new().route("/", get(handler)));
    let app = Router::new()
        .route("/", get(handler))
        .with_state(ctx.clone())
        .layer(ctx.errands.layer());
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "one");
    // Mid-body: the task is still queued.
    assert_eq!(
        (ctx.errands.stats().pending, ctx.errands.stats().running),
        (1, 0)
    );
    assert!(!ctx.probe.has("after_response ran"));
    ctx.probe.open("second chunk");
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "two");
    assert!(body.frame().await.is_none());
    drop(body);
    idle(&ctx.errands).await;
    assert!(ctx.probe.has("after_response ran"));
    assert_balanced(&ctx.errands);
}

#[tokio::test]
async fn after_tasks_never_delay_the_response_and_after_response_is_not_held_back() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        let probe = ctx.probe.clone();
        // The after_route task blocks until the after_response task ran: if after_response
        // waited for the request's other tasks, this would never settle.
        tasks
            .after_route()
            .schedule(async move { probe.reached("after_response ran").await })
            .unwrap();
        tasks
            .after_response()
            .schedule(mark(&ctx.probe, "after_response ran"))
            .unwrap();
        "done"
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    assert_eq!(response.text(), "done");
    response.settle().await;
    assert_eq!(client.stats().succeeded, 2);
    assert_balanced(&ctx.errands);
}

async fn schedule_all_modes(ctx: &Ctx, tasks: &Tasks) {
    tasks.schedule(mark(&ctx.probe, "immediate ran")).unwrap();
    tasks
        .after_route()
        .name("audit")
        .schedule(mark(&ctx.probe, "audit ran"))
        .unwrap();
    tasks
        .after_response()
        .name("email")
        .schedule(mark(&ctx.probe, "email ran"))
        .unwrap();
    tasks
        .after_route()
        .name("cleanup")
        .always()
        .schedule(mark(&ctx.probe, "cleanup ran"))
        .unwrap();
    tasks
        .after_response()
        .name("metrics")
        .always()
        .schedule(mark(&ctx.probe, "metrics ran"))
        .unwrap();
}

fn assert_skipped_with(client: &TestClient, ctx: &Ctx, reason: SkipReason) {
    for name in ["audit", "email"] {
        let reports: Vec<_> = client
            .reports()
            .into_iter()
            .filter(|r| r.task.as_ref().is_some_and(|t| t.name() == name))
            .collect();
        assert_eq!(reports.len(), 1, "one report for {name}");
        assert_eq!(reports[0].outcome, Some(Outcome::Skipped));
        assert_eq!(reports[0].skip_reason, Some(reason));
        assert!(!ctx.probe.has(&format!("{name} ran")));
    }
    // `always` tasks ran anyway, and immediate tasks are never skipped.
    for ran in ["immediate ran", "cleanup ran", "metrics ran"] {
        assert!(ctx.probe.has(ran), "{ran}: {:?}", ctx.probe.events());
    }
    let stats = ctx.errands.stats();
    assert_eq!((stats.skipped, stats.succeeded), (2, 3), "{stats:?}");
    assert_balanced(&ctx.errands);
}

#[tokio::test]
async fn error_status_skips_after_tasks_but_not_always_or_immediate_ones() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> StatusCode {
        schedule_all_modes(&ctx, &tasks).await;
        StatusCode::CONFLICT
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    response.settle().await;
    assert_skipped_with(&client, &ctx, SkipReason::ErrorStatus(StatusCode::CONFLICT));
    // Exactly the two skips, plus the 409 response itself, are reported.
    let reports = response.reports();
    let skips = reports.iter().filter(|r| r.origin == errands::Origin::Task);
    assert_eq!(skips.count(), 2);
    let error = reports
        .iter()
        .find(|r| r.origin == errands::Origin::Handler)
        .unwrap();
    assert_eq!(error.status, Some(StatusCode::CONFLICT));
    assert_eq!(error.code.as_deref(), Some("conflict"));
    assert_eq!(reports.len(), 3);
    assert_eq!(
        response.json()["code"],
        "conflict",
        "an empty error status gets the schema body"
    );
}

#[tokio::test]
async fn status_399_is_not_an_error_but_500_is() {
    async fn ok(State(ctx): State<Ctx>, tasks: Tasks) -> StatusCode {
        tasks
            .after_response()
            .schedule(mark(&ctx.probe, "ran"))
            .unwrap();
        StatusCode::from_u16(399).unwrap()
    }
    async fn err(State(ctx): State<Ctx>, tasks: Tasks) -> StatusCode {
        tasks
            .after_response()
            .schedule(mark(&ctx.probe, "never"))
            .unwrap();
        StatusCode::INTERNAL_SERVER_ERROR
    }
    let (ctx, client) = setup(Router::new().route("/ok", get(ok)).route("/err", get(err)));
    client.get("/ok").await.settle().await;
    client.get("/err").await.settle().await;
    assert!(ctx.probe.has("ran") && !ctx.probe.has("never"));
    assert_eq!(
        (ctx.errands.stats().succeeded, ctx.errands.stats().skipped),
        (1, 1)
    );
}

#[tokio::test]
async fn handler_panic_skips_after_tasks_and_answers_500_without_the_message() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        schedule_all_modes(&ctx, &tasks).await;
        panic!("secret internal detail");
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!response.text().contains("secret"));
    assert_eq!(response.json()["code"], "internal_error");
    response.settle().await;
    assert_skipped_with(&client, &ctx, SkipReason::HandlerPanicked);
    let panics: Vec<_> = response
        .reports()
        .into_iter()
        .filter(|r| r.origin == errands::Origin::Handler)
        .collect();
    assert_eq!(panics.len(), 1, "the panic is reported once");
    assert_eq!(panics[0].chain_text(), "secret internal detail");
    assert_eq!(panics[0].status, Some(StatusCode::INTERNAL_SERVER_ERROR));
}

#[tokio::test]
async fn handler_dropped_by_a_disconnecting_client_skips_after_tasks() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        schedule_all_modes(&ctx, &tasks).await;
        ctx.probe.hit("handler waiting");
        ctx.probe.gate("never").await;
        "unreachable"
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let app = Router::new()
        .route("/", get(handler))
        .with_state(ctx.clone())
        .layer(ctx.errands.layer());
    let call = app.oneshot(Request::get("/").body(Body::empty()).unwrap());
    tokio::select! {
        _ = call => panic!("the handler cannot complete"),
        _ = ctx.probe.reached("handler waiting") => {}
    }
    // The response future is dropped here, as the server drops it when the client goes away.
    idle(&ctx.errands).await;
    assert_skipped_with(&client, &ctx, SkipReason::ClientDisconnected);
}

#[tokio::test]
async fn a_handle_that_outlived_its_request_starts_after_tasks_at_once() {
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        ctx.handles.lock().unwrap().push(tasks);
        "ok"
    }
    let (ctx, client) = setup(Router::new().route("/", get(handler)));
    let response = client.get("/").await;
    response.settle().await;
    let tasks = ctx.handles.lock().unwrap().pop().unwrap();
    tasks
        .after_route()
        .schedule(mark(&ctx.probe, "late route"))
        .unwrap();
    tasks
        .after_response()
        .schedule(mark(&ctx.probe, "late response"))
        .unwrap();
    // Late tasks still belong to the request: settle waits for them too.
    response.settle().await;
    assert!(ctx.probe.has("late route") && ctx.probe.has("late response"));
    assert_eq!(tasks.request_id(), response.request_id().as_ref());
    assert_balanced(&ctx.errands);
}

#[tokio::test]
async fn tasks_work_in_middleware() {
    async fn audit(tasks: Tasks, request: Request<Body>, next: Next) -> Response {
        let route = request.uri().path().to_owned();
        let response = next.run(request).await;
        tasks
            .after_response()
            .field("route", route)
            .schedule(async { Ok::<_, std::io::Error>(()) })
            .unwrap();
        response
    }
    async fn handler(State(ctx): State<Ctx>, tasks: Tasks) -> &'static str {
        tasks
            .after_response()
            .schedule(mark(&ctx.probe, "handler task ran"))
            .unwrap();
        "ok"
    }
    let (ctx, _client) = setup(Router::new());
    let app = Router::new()
        .route("/", get(handler))
        .layer(middleware::from_fn(audit))
        .with_state(ctx.clone())
        .layer(ctx.errands.layer());
    let client = TestClient::new(app, &ctx.errands);
    let response = client.get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.settle().await;
    assert!(ctx.probe.has("handler task ran"));
    assert_eq!(client.stats().succeeded, 2);
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_clear_500_not_a_panic_or_a_drop() {
    let app = Router::new().route(
        "/",
        get(|tasks: Tasks| async move {
            tasks.schedule(async {}).unwrap();
            "unreachable"
        }),
    );
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], "internal_error");
    assert_eq!(json["success"], false);
}
