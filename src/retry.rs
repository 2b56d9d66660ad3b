//! Retry policy: exponential (or fixed) backoff with jitter, applied to transient errors.

use crate::error::Error;
use crate::wire::condition;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How delays grow between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryMode {
    /// `delay · 2^(attempt-1)`, capped at `max_delay`.
    Exponential,
    /// Always `delay`.
    Fixed,
}

/// What a [`RetryObserver`] is told before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryNotice<'a> {
    /// The operation being retried (`"get_properties"`, `"sending to eh1"`, ...).
    pub what: &'a str,
    /// The attempt about to start, 1-based (so the first retry is attempt 2).
    pub attempt: u32,
    /// All attempts the policy allows (`max_retries + 1`).
    pub attempts: u32,
    /// How long the policy waits before that attempt.
    pub delay: Duration,
    /// Why the previous attempt failed.
    pub error: &'a Error,
}

/// A callback told about every retry, so that a tool can show progress while a slow or silent
/// endpoint is retried (the library itself only logs retries at DEBUG).
#[derive(Clone)]
pub struct RetryObserver(Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>);

impl RetryObserver {
    /// Calls `f` before each retry; it runs on the retrying task, so it should be quick.
    pub fn new(f: impl Fn(&RetryNotice<'_>) + Send + Sync + 'static) -> Self {
        RetryObserver(Arc::new(f))
    }
}

impl fmt::Debug for RetryObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryObserver(..)")
    }
}

/// Retry settings (defaults: 3 retries, 800 ms base delay, 60 s cap, ±20-30 % jitter).
///
/// The waits between the default four attempts add up to at most 7.3 s (0.8 + 1.6 + 3.2 s,
/// jittered up to 1.3×); with the client's per-attempt timeouts this bounds how long a call
/// takes to fail (see [`crate::ClientOptions::connect_timeout`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// The first retry's delay.
    pub delay: Duration,
    /// No delay exceeds this.
    pub max_delay: Duration,
    /// How delays grow.
    pub mode: RetryMode,
    /// Randomise delays by a factor in `[0.8, 1.3)` so that clients do not retry in step.
    pub jitter: bool,
    /// Told before each retry (default none).
    pub observer: Option<RetryObserver>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl RetryOptions {
    /// Sets how many times a transient failure is retried.
    pub fn with_max_retries(mut self, value: u32) -> Self {
        self.max_retries = value;
        self
    }

    /// Sets the base delay between attempts.
    pub fn with_delay(mut self, value: Duration) -> Self {
        self.delay = value;
        self
    }

    /// Sets the longest delay between attempts.
    pub fn with_max_delay(mut self, value: Duration) -> Self {
        self.max_delay = value;
        self
    }

    /// Sets how delays grow between attempts.
    pub fn with_mode(mut self, value: RetryMode) -> Self {
        self.mode = value;
        self
    }

    /// Sets whether delays are randomised (so that clients do not retry in step).
    pub fn with_jitter(mut self, value: bool) -> Self {
        self.jitter = value;
        self
    }

    /// Sets the callback told before each retry (for progress output).
    pub fn with_observer(mut self, observer: RetryObserver) -> Self {
        self.observer = Some(observer);
        self
    }
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: 3,
            delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            mode: RetryMode::Exponential,
            jitter: true,
            observer: None,
        }
    }
}

static SEED: AtomicU64 = AtomicU64::new(0);

/// A small non-cryptographic random number in `[0, 1)` (splitmix64 over time and a counter).
pub(crate) fn random_unit() -> f64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut z = t ^ SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryOptions {
    /// No retries at all.
    pub fn none() -> Self {
        RetryOptions {
            max_retries: 0,
            ..RetryOptions::default()
        }
    }

    /// The delay before retry number `retry` (1-based) after `error`. Busy-server errors
    /// wait at least 4 s, as the service asks.
    pub fn delay_for(&self, retry: u32, error: Option<&Error>) -> Duration {
        let base = match self.mode {
            RetryMode::Fixed => self.delay,
            RetryMode::Exponential => {
                let exp = retry.saturating_sub(1).min(30);
                self.delay.saturating_mul(1u32 << exp)
            }
        };
        let mut d = base.min(self.max_delay);
        if self.jitter {
            d = d.mul_f64(0.8 + 0.5 * random_unit()).min(self.max_delay);
        }
        if error.and_then(Error::condition) == Some(condition::SERVER_BUSY.as_str()) {
            d = d.max(Duration::from_secs(4).min(self.max_delay));
        }
        d
    }

    /// Tells the debug log and the observer that `what` is retried (retry number `retry`,
    /// 1-based) after `delay` because of `error`.
    pub(crate) fn announce(&self, what: &str, retry: u32, delay: Duration, error: &Error) {
        tracing::debug!(target: "eventhubs::retry", error = %error, attempt = retry, delay = ?delay, "{what}: retrying");
        if let Some(observer) = &self.observer {
            (observer.0)(&RetryNotice {
                what,
                attempt: retry.saturating_add(1),
                attempts: self.max_retries.saturating_add(1),
                delay,
                error,
            });
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or runs out of retries; each attempt is
    /// bounded by `timeout` (an overrun is a transient [`crate::ErrorKind::OperationTimeout`]).
    pub async fn run<T, F, Fut>(&self, what: &str, timeout: Duration, mut op: F) -> Result<T, Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0u32;
        loop {
            let r = match tokio::time::timeout(timeout, op(attempt)).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    crate::ErrorKind::OperationTimeout,
                    format!("{what} did not complete within {timeout:?}"),
                )),
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.max_retries => {
                    attempt += 1;
                    let d = self.delay_for(attempt, Some(&e));
                    self.announce(what, attempt, d, &e);
                    tokio::time::sleep(d).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn delays_grow_and_are_capped() {
        let o = RetryOptions {
            jitter: false,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryOptions::default()
        };
        let d: Vec<_> = (1..=6).map(|i| o.delay_for(i, None).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        let j = RetryOptions {
            jitter: true,
            ..o.clone()
        };
        for _ in 0..100 {
            let d = j.delay_for(2, None).as_millis();
            assert!((160..260).contains(&d), "{d}");
        }
        let f = RetryOptions {
            mode: RetryMode::Fixed,
            ..o.clone()
        };
        assert_eq!(f.delay_for(5, None), Duration::from_millis(100));
        assert!(o.delay_for(u32::MAX, None) <= Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let o = RetryOptions {
            delay: Duration::from_millis(1),
            ..RetryOptions::default()
        };
        let mut calls = 0;
        let r: Result<u32, Error> = o
            .run("op", Duration::from_secs(1), |a| {
                calls += 1;
                async move {
                    if a < 2 {
                        Err(Error::new(ErrorKind::ConnectionLost, "x"))
                    } else {
                        Ok(a)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), Error> = o
            .run("op", Duration::from_secs(1), |_| {
                calls += 1;
                async { Err(Error::invalid_argument("no")) }
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: Result<(), Error> = o
            .run("op", Duration::from_secs(1), |_| {
                calls += 1;
                async { Err(Error::new(ErrorKind::ConnectionLost, "x")) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn the_observer_hears_each_retry() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = heard.clone();
        let o = RetryOptions {
            delay: Duration::from_millis(1),
            observer: Some(RetryObserver::new(move |n| {
                log.lock()
                    .unwrap()
                    .push((n.what.to_owned(), n.attempt, n.attempts));
            })),
            ..RetryOptions::default()
        };
        let r: Result<(), Error> = o
            .run("op", Duration::from_secs(1), |_| async {
                Err(Error::new(ErrorKind::ConnectionLost, "x"))
            })
            .await;
        assert!(r.is_err());
        let heard = heard.lock().unwrap().clone();
        let want: Vec<_> = (2..=4).map(|a| ("op".to_owned(), a, 4)).collect();
        assert_eq!(heard, want);
    }
}
