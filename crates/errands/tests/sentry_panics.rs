//! `errands::sentry`, "Panics": with errands' panic hook instead of Sentry's panic
//! integration, a panic errands catches is one Sentry event (its report) and a panic outside
//! errands is one event (the hook's `ERROR` line through the error layer). Its own test binary,
//! as it installs a panic hook.
#![cfg(feature = "sentry")]

use errands::Errands;
use errands::sentry::{SentryReporter, is_report_event};
use sentry::integrations::tracing::ErrorLayer;
use sentry::test::with_captured_events;
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

async fn explode() {
    panic!("inside a task")
}

#[test]
fn each_panic_is_one_event_whether_errands_catches_it_or_not() {
    std::panic::set_hook(errands::logs::panic_hook());
    let events = with_captured_events(|| {
        let subscriber = tracing_subscriber::registry().with(ErrorLayer::new().with_filter(
            filter_fn(|metadata| *metadata.level() == Level::ERROR && !is_report_event(metadata)),
        ));
        let _subscriber = tracing::subscriber::set_default(subscriber);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let errands = Errands::builder().reporter(SentryReporter::new()).build();
                errands
                    .tasks()
                    .immediate()
                    .name("exploding")
                    .schedule(explode())
                    .unwrap();
                errands.idle().await;
            });
        let outside = std::panic::catch_unwind(|| panic!("outside errands"));
        assert!(outside.is_err());
    });
    let _ = std::panic::take_hook();
    let messages: Vec<String> = events
        .iter()
        .map(|e| {
            let exception = e.exception.values.first().and_then(|x| x.value.clone());
            format!("{:?}|{:?}", e.message, exception)
        })
        .collect();
    assert_eq!(events.len(), 2, "{messages:#?}");
    assert_eq!(
        events[0].tags.get("task.name").map(String::as_str),
        Some("exploding")
    );
    assert!(messages[1].contains("outside errands"), "{messages:#?}");
}
