//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver: the page loads behind its token, its counters change live after
//! requests without a reload, a failed task's detail shows its error chain and its request,
//! a retry of a failed durable job works when actions are enabled and is refused when the
//! dashboard is read-only, and without authorization the pages are refused.
//!
//! Without `chromedriver` on the `PATH` (or in `ERRANDS_CHROMEDRIVER`) the test says so and
//! passes; `.ci/run` installs both packages and fails unless the test left its marker in
//! `ERRANDS_BROWSER_MARKER`. With `ERRANDS_SCREENSHOTS` set to a directory, the test saves
//! the overview and a task's detail there (`docs/` holds the ones the docs show).

#![cfg(all(feature = "dashboard", feature = "sqlite"))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use errands::dashboard::Dashboard;
use errands::durable::{JobState, SqliteStore, Store};
use errands::jobs::{Job, JobContext};
use errands::{BoxError, Errands, Tasks};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

const TOKEN: &str = "correct-horse-battery-staple";

/// Why the payment failed: an error with a source, so the chain has two links.
#[derive(Debug, thiserror::Error)]
#[error("the payment provider refused the charge")]
struct Refused(#[source] std::io::Error);

/// A durable job that fails on its first run and succeeds after an operator's retry.
#[derive(Serialize, Deserialize)]
struct Charge {
    order: u32,
}

#[derive(Clone)]
struct Provider {
    up: Arc<AtomicBool>,
    ran: mpsc::UnboundedSender<&'static str>,
}

impl Job for Charge {
    const NAME: &'static str = "charge";
    type State = Provider;

    fn retry_policy() -> errands::RetryPolicy {
        errands::RetryPolicy::exponential(Duration::ZERO).max_attempts(1)
    }

    async fn run(self, cx: JobContext<Provider>) -> Result<(), BoxError> {
        let provider = cx.state();
        if provider.up.load(Ordering::Acquire) {
            let _ = provider.ran.send("succeeded");
            Ok(())
        } else {
            let _ = provider.ran.send("failed");
            Err(Refused(std::io::Error::other("card declined by the issuer")).into())
        }
    }
}

async fn ok(tasks: Tasks) -> errands::Result<&'static str> {
    tasks.immediate().name("count_visit").schedule(async {})?;
    Ok("ok")
}

async fn fail(tasks: Tasks) -> errands::Result<&'static str> {
    tasks
        .after_response()
        .name("sync_invoice")
        .field("invoice_id", 42)
        .schedule(async {
            Err::<(), _>(Refused(std::io::Error::other("connection reset by peer")))
        })?;
    Ok("accepted")
}

async fn charge(errands: axum::extract::State<Errands>) -> errands::Result<String> {
    let id = errands.jobs().enqueue(Charge { order: 7 }).await?;
    Ok(id.to_string())
}

/// `chromedriver`, started on a free port for this test, stopped (by its pid) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Option<Driver> {
        let binary =
            std::env::var("ERRANDS_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Ready when it says so.
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        lines
            .find(|line| {
                line.as_ref()
                    .is_ok_and(|l| l.contains("started successfully"))
            })?
            .ok()?;
        Some(Driver { child, port })
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("ERRANDS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits, in the page, until the text of `selector` is no longer `old`: the browser's own
/// notification of the change (a `MutationObserver`), no polling from here.
async fn text_changes(browser: &Client, selector: &str, old: &str) -> String {
    let script = r#"
        const [selector, old, done] = arguments;
        const element = document.querySelector(selector);
        if (element.textContent !== old) { done(element.textContent); return; }
        new MutationObserver((_, observer) => {
            if (element.textContent !== old) { observer.disconnect(); done(element.textContent); }
        }).observe(element, { childList: true, characterData: true, subtree: true });
    "#;
    let changed = browser
        .execute_async(script, vec![json!(selector), json!(old)])
        .await
        .expect("the counter changed");
    changed.as_str().unwrap_or_default().to_owned()
}

async fn text_of(browser: &Client, selector: &str) -> String {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn screenshot(browser: &Client, name: &str) {
    if let Ok(dir) = std::env::var("ERRANDS_SCREENSHOTS") {
        let png = browser.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        eprintln!(
            "the dashboard's browser test was skipped: no chromedriver. Install Debian's \
             `chromium` and `chromium-driver` (or set ERRANDS_CHROMEDRIVER) to run it."
        );
        return;
    };

    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = SqliteStore::new(pool).await.unwrap();
    let (ran, mut runs) = mpsc::unbounded_channel();
    let up = Arc::new(AtomicBool::new(false));
    let errands = Errands::builder()
        .without_tracing_reporter()
        .durable(store.clone())
        .job::<Charge>(Provider {
            up: up.clone(),
            ran,
        })
        .build();
    let app = Router::new()
        .route("/ok", get(ok))
        .route("/fail", get(fail))
        .route("/charge", get(charge))
        .with_state(errands.clone())
        .layer(errands.layer())
        .nest(
            "/ops/dashboard",
            Dashboard::new(&errands).token(TOKEN).actions(true).router(),
        )
        .nest(
            "/ro/dashboard",
            Dashboard::new(&errands).token(TOKEN).router(),
        )
        .nest("/closed/dashboard", Dashboard::new(&errands).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn({
        let errands = errands.clone();
        async move { errands.serve(listener, app).await }
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    // Without authorization, refused.
    assert_eq!(get("/ops/dashboard").await.unwrap().status(), 403);
    assert_eq!(
        get("/ops/dashboard?token=wrong").await.unwrap().status(),
        403
    );
    let closed = http
        .get(format!("{base}/closed/dashboard"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 403, "no check configured: closed");

    let browser = driver.browser().await;
    browser
        .goto(&format!("{base}/closed/dashboard"))
        .await
        .unwrap();
    let source = browser.source().await.unwrap();
    assert!(source.contains("The dashboard is closed"), "{source}");

    // The page loads behind its token (the address loses the token, a cookie keeps it).
    browser
        .goto(&format!("{base}/ops/dashboard?token={TOKEN}"))
        .await
        .unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "{url}");
    assert_eq!(text_of(&browser, "h1").await, "Overview");
    let before = text_of(&browser, "[data-stat=\"succeeded\"]").await;

    // Counters change live after requests, without a reload.
    for _ in 0..3 {
        assert_eq!(get("/ok").await.unwrap().status(), 200);
    }
    errands.idle().await;
    let after = text_changes(&browser, "[data-stat=\"succeeded\"]", &before).await;
    assert!(after.parse::<u64>().unwrap() >= before.parse::<u64>().unwrap() + 3);
    assert_eq!(url, browser.current_url().await.unwrap(), "no reload");

    // A failed task's detail: its error chain and its request.
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let failed = http
        .get(format!("{base}/fail"))
        .header("traceparent", trace)
        .send()
        .await
        .unwrap();
    let request_id = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    errands.idle().await;
    browser
        .goto(&format!("{base}/ops/dashboard/tasks?state=failed"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("table.tasks tbody a"))
        .await
        .expect("the failed task in the list")
        .click()
        .await
        .unwrap();
    let detail = text_of(&browser, "main").await;
    assert!(detail.contains("sync_invoice"), "{detail}");
    assert!(
        detail.contains("the payment provider refused the charge"),
        "{detail}"
    );
    assert!(detail.contains("connection reset by peer"), "{detail}");
    assert!(detail.contains(&request_id), "{detail}");
    assert!(
        detail.contains("/fail") && detail.contains("GET"),
        "{detail}"
    );
    assert!(
        detail.contains("before the task started"),
        "after_response: {detail}"
    );
    assert!(
        detail.contains("invoice_id=42"),
        "fields are shown: {detail}"
    );
    screenshot(&browser, "dashboard-task.png").await;

    // A failed durable job: retried from the page when actions are enabled.
    let job: i64 = get("/charge")
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(runs.recv().await, Some("failed"));
    let job_id = errands::durable::JobId(job);
    // The failure is written right after the run returned, by the attempt's task.
    errands.idle().await;
    let failed_for_good = store.status(job_id).await.unwrap();
    assert_eq!(failed_for_good.state, JobState::Failed);
    assert_eq!(failed_for_good.attempt, 1);

    // Read-only: no actions on the page, and a retry is refused.
    browser
        .goto(&format!("{base}/ro/dashboard/jobs/{job}?token={TOKEN}"))
        .await
        .unwrap();
    let read_only = text_of(&browser, "main").await;
    assert!(read_only.contains("Read-only"), "{read_only}");
    assert!(browser.find(Locator::Id("retry")).await.is_err());
    let refused = http
        .post(format!("{base}/ro/dashboard/jobs/{job}/retry"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        store.status(job_id).await.unwrap().state,
        JobState::Failed,
        "nothing changed"
    );

    browser
        .goto(&format!("{base}/ops/dashboard/jobs/{job}"))
        .await
        .unwrap();
    let page = text_of(&browser, "main").await;
    assert!(page.contains("card declined by the issuer"), "{page}");
    up.store(true, Ordering::Release);
    browser
        .find(Locator::Id("retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(runs.recv().await, Some("succeeded"), "the retry ran");
    assert_eq!(text_of(&browser, "h1").await, format!("Job {job}"));

    // The overview, for the docs, once its rates have come in.
    browser
        .goto(&format!("{base}/ops/dashboard"))
        .await
        .unwrap();
    text_changes(&browser, "[data-rate=\"scheduled\"]", "–").await;
    screenshot(&browser, "dashboard-overview.png").await;

    browser.close().await.unwrap();
    drop(driver);
    errands.begin_shutdown();
    server.await.unwrap().unwrap();
    if let Ok(marker) = std::env::var("ERRANDS_BROWSER_MARKER") {
        std::fs::write(marker, "the dashboard's browser test ran\n").unwrap();
    }
}

/// The task list pages through every task it keeps, 50 a page, newest first (no browser
/// needed).
#[tokio::test]
async fn the_task_list_pages_through_every_task() {
    let errands = Errands::builder().without_tracing_reporter().build();
    for n in 0..120 {
        errands
            .tasks()
            .immediate()
            .name(format!("job-{n:03}"))
            .schedule(async {})
            .unwrap();
    }
    errands.idle().await;
    let app = Router::new().nest(
        "/ops/dashboard",
        Dashboard::new(&errands).token(TOKEN).router(),
    );
    let client = errands::testing::TestClient::new(app, &errands);
    let page = |n: usize| {
        let client = &client;
        async move {
            let response = client
                .get(&format!("/ops/dashboard/tasks?page={n}"))
                .header("authorization", &format!("Bearer {TOKEN}"))
                .await;
            assert_eq!(response.status(), 200);
            response.text()
        }
    };
    let rows = |html: &str| html.matches("<td>task</td>").count();
    let first = page(0).await;
    assert_eq!(rows(&first), 50);
    assert!(
        first.contains("job-119") && !first.contains("job-069"),
        "newest first"
    );
    assert!(first.contains(">older</a>"), "a next page");
    let last = page(2).await;
    assert_eq!(rows(&last), 20);
    assert!(last.contains("job-000") && !last.contains(">older</a>"));
}
