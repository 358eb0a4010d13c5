//! The job types a runtime knows, by their stable names.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures_util::future::BoxFuture;

use super::{Job, JobContext, JobFailure};
use crate::durable::Claimed;
use crate::task::{BoxError, RetryPolicy};

/// Runs claimed jobs of one type.
pub(crate) trait Runner: Send + Sync {
    /// The type's retry policy.
    fn policy(&self) -> RetryPolicy;

    /// Whether the type's attempts are shielded.
    fn shield(&self) -> bool;

    /// The type's limit on one attempt.
    fn timeout(&self) -> Option<std::time::Duration>;

    /// The type's hook for a job that failed for good.
    fn on_failure(&self, failure: JobFailure) -> BoxFuture<'static, ()>;

    /// The attempt's future, or why the stored arguments do not decode.
    fn start(
        &self,
        claimed: &Claimed,
        completed: Arc<AtomicBool>,
    ) -> Result<BoxFuture<'static, Result<(), BoxError>>, serde_json::Error>;
}

struct Typed<J: Job> {
    state: J::State,
}

/// A registered type's runner and queue.
struct Entry {
    runner: Arc<dyn Runner>,
    queue: &'static str,
}

impl<J: Job> Runner for Typed<J> {
    fn policy(&self) -> RetryPolicy {
        J::retry_policy()
    }

    fn shield(&self) -> bool {
        J::SHIELD
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        J::timeout()
    }

    fn on_failure(&self, failure: JobFailure) -> BoxFuture<'static, ()> {
        Box::pin(J::on_failure(self.state.clone(), failure))
    }

    fn start(
        &self,
        claimed: &Claimed,
        completed: Arc<AtomicBool>,
    ) -> Result<BoxFuture<'static, Result<(), BoxError>>, serde_json::Error> {
        let job: J = serde_json::from_value(claimed.args.clone())?;
        let cx = JobContext {
            state: self.state.clone(),
            id: claimed.id,
            attempt: claimed.attempt,
            request_id: claimed.request_id.clone(),
            token: claimed.token,
            completed,
        };
        Ok(Box::pin(job.run(cx)))
    }
}

/// The registered job types.
#[derive(Default)]
pub(crate) struct Registry {
    runners: HashMap<&'static str, Entry>,
}

impl Registry {
    /// Registers `J`, run with `state`; a second registration of the same name replaces it.
    pub(crate) fn add<J: Job>(&mut self, state: J::State) {
        let runner = Arc::new(Typed::<J> { state });
        self.runners.insert(
            J::NAME,
            Entry {
                runner,
                queue: J::QUEUE,
            },
        );
    }

    pub(crate) fn knows(&self, name: &str) -> bool {
        self.runners.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Runner>> {
        self.runners.get(name).map(|entry| entry.runner.clone())
    }

    /// The queues of the registered types.
    pub(crate) fn queues(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.runners.values().map(|entry| entry.queue)
    }
}
