//! Lock-free histograms with fixed buckets: what the log (fsync rounds),
//! the event store and the servers record on their hot paths so a metrics
//! exporter can read them at scrape time, without this crate knowing any
//! metrics format. Recording is two relaxed atomic adds and a binary search
//! over at most a few dozen bounds; nothing allocates or locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of latency buckets, in nanoseconds: 50 µs to 10 s.
pub const LATENCY_NS_BOUNDS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of count buckets (appends per fsync round): powers of two
/// to 4,096.
pub const COUNT_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// A histogram of `u64` observations over fixed upper bounds (inclusive,
/// as Prometheus' `le`), plus one bucket for what lies above the last.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then the overflow bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// What a histogram held when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    /// Observations per bucket (not cumulative): `bounds.len() + 1` of
    /// them, the last for values above every bound.
    pub counts: Vec<u64>,
    /// Sum of every observation (wrapping past `u64::MAX`).
    pub sum: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// An empty histogram over `bounds`, which must be strictly increasing.
    pub fn new(bounds: &'static [u64]) -> Self {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must increase"
        );
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A histogram of latencies over [`LATENCY_NS_BOUNDS`].
    pub fn latency() -> Self {
        Self::new(LATENCY_NS_BOUNDS)
    }

    pub fn record(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&b| b < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration in nanoseconds (saturating at `u64::MAX`).
    pub fn record_duration(&self, took: Duration) {
        self.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_is_not_below_them() {
        let h = Histogram::new(&[1, 2, 4]);
        for v in [0, 1, 2, 3, 4, 5, 100] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 1, 2, 2]);
        assert_eq!(s.sum, 115);
        assert_eq!(s.count(), 7);
    }

    #[test]
    fn durations_are_recorded_in_nanoseconds() {
        let h = Histogram::latency();
        h.record_duration(Duration::from_micros(60));
        let s = h.snapshot();
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.sum, 60_000);
    }
}
