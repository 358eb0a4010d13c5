//! Live updates: the overview's numbers as server-sent events, once a second, until the
//! client leaves or shutdown starts (an open stream must not hold up the drain).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};

use super::Dashboard;
use super::overview::snapshot;

/// How often the overview is sent.
const EVERY: Duration = Duration::from_secs(1);

pub(super) async fn events(
    State(dashboard): State<Arc<Dashboard>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stop = dashboard.errands.rt().started().clone().cancelled_owned();
    let ticks = tokio::time::interval(EVERY);
    let updates =
        futures_util::stream::unfold((dashboard, ticks), |(dashboard, mut ticks)| async move {
            ticks.tick().await;
            let data = snapshot(&dashboard, false).await.to_string();
            let event = Event::default().event("overview").data(data);
            Some((Ok(event), (dashboard, ticks)))
        });
    Sse::new(updates.take_until(stop)).keep_alive(KeepAlive::default())
}
