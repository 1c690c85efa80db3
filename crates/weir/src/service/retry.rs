//! Retries of transient failures: how many attempts a record gets and how
//! long the runtime waits between them (exponential backoff with jitter,
//! from `backon`'s `ExponentialBuilder`, so that many consumers that failed
//! together do not retry together).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1): after this
    /// many transient failures the record is dead-lettered.
    pub attempts: u32,
    /// The wait before the second attempt.
    pub min_delay: Duration,
    /// No wait is longer than this (before jitter).
    pub max_delay: Duration,
    /// Each wait is this many times the one before (at least 1).
    pub factor: f32,
    /// Adds a random part, up to the wait itself, to each wait.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The waits between attempts, `attempts - 1` of them.
    pub(crate) fn waits(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(self.factor.max(1.0))
            .with_max_times(self.attempts.saturating_sub(1) as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_up_to_the_cap_and_stop_after_the_attempts() {
        let policy = RetryPolicy {
            attempts: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            factor: 2.0,
            jitter: false,
        };
        let waits: Vec<u128> = policy.waits().map(|d| d.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        let once = RetryPolicy {
            attempts: 1,
            ..policy
        };
        assert_eq!(once.waits().count(), 0);
    }

    #[test]
    fn jitter_stays_within_twice_the_wait() {
        let policy = RetryPolicy {
            attempts: 40,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
            factor: 2.0,
            jitter: true,
        };
        let waits: Vec<Duration> = policy.waits().collect();
        assert_eq!(waits.len(), 39);
        assert!(
            waits
                .iter()
                .all(|d| *d >= Duration::from_millis(100) && *d < Duration::from_millis(200))
        );
        assert!(waits.iter().any(|d| *d != waits[0]), "no jitter: {waits:?}");
    }
}
