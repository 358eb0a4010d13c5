//! Declarative retries: [`RetryPolicy`].

use std::error::Error as StdError;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use super::TaskError;

type Predicate = Arc<dyn Fn(&TaskError) -> bool + Send + Sync>;

/// When and how often a task is tried again: exponential backoff with jitter, a maximum
/// number of attempts, a maximum delay, and a predicate over the error.
///
/// The delay before attempt `n + 1` is `initial × multiplier^(n-1)`, capped at `max_delay`,
/// then reduced by a random share of at most `jitter` (so it lies in
/// `[base × (1 − jitter), base]`, see [`delay_bounds`](RetryPolicy::delay_bounds)).
///
/// The jitter is random; for exact timings (for example in tests under
/// `tokio::time::pause()`) set [`jitter(0.0)`](RetryPolicy::jitter).
///
/// By default a task is retried when it *failed* or *timed out*, never when it panicked.
/// [`retry_on`](RetryPolicy::retry_on) and [`retry_if`](RetryPolicy::retry_if) replace that
/// default: the task is then retried when any of them matches.
///
/// ```
/// use std::time::Duration;
/// use errands::RetryPolicy;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("connection reset")]
/// struct ConnectionReset;
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(200))
///     .max_attempts(5)
///     .max_delay(Duration::from_secs(5))
///     .retry_on::<ConnectionReset>();
/// assert_eq!(policy.delay_bounds(1), (Duration::from_millis(100), Duration::from_millis(200)));
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
    predicates: Vec<Predicate>,
}

impl RetryPolicy {
    /// Exponential backoff starting at `initial`, doubling, at most 30 s, with 50 % jitter,
    /// for at most 3 attempts in all.
    pub fn exponential(initial: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial,
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
            predicates: Vec::new(),
        }
    }

    /// How many attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The factor between consecutive delays (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay between attempts.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The largest share (0 to 1) taken off a delay at random; 0 makes delays exact.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Retries when the task failed with an error of type `E` anywhere along its `source()`
    /// chain.
    pub fn retry_on<E: StdError + 'static>(mut self) -> Self {
        self.predicates
            .push(Arc::new(|error| error.find::<E>().is_some()));
        self
    }

    /// Retries when `predicate` says so; it sees failures, panics and timeouts alike.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&TaskError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// The number of attempts in all.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The range the delay after the failed attempt `attempt` (1-based) falls in.
    pub fn delay_bounds(&self, attempt: u32) -> (Duration, Duration) {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let base = Duration::try_from_secs_f64(base)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        (base.mul_f64(1.0 - self.jitter), base)
    }

    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let (low, high) = self.delay_bounds(attempt);
        let unit = RandomState::new().hash_one(attempt) as f64 / u64::MAX as f64;
        low + (high - low).mul_f64(unit)
    }

    pub(crate) fn retries(&self, attempt: u32, error: &TaskError) -> bool {
        if attempt >= self.max_attempts {
            return false;
        }
        if self.predicates.is_empty() {
            return matches!(error, TaskError::Failed { .. } | TaskError::TimedOut(_));
        }
        self.predicates.iter().any(|p| p(error))
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial", &self.initial)
            .field("multiplier", &self.multiplier)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}
