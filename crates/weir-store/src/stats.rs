//! Counters of the event store's work (appends, their latency, live
//! subscriptions) for a metrics exporter to read at scrape time: relaxed
//! atomics and a lock-free histogram, nothing per event beyond an add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weir_log::stats::{Histogram, HistogramSnapshot};

/// What the store has done since it opened.
#[derive(Debug)]
pub struct StoreStats {
    appends: AtomicU64,
    events: AtomicU64,
    /// From the call to the events being durable, in nanoseconds.
    append_ns: Histogram,
    subscriptions: AtomicU64,
}

impl Default for StoreStats {
    fn default() -> Self {
        Self {
            appends: AtomicU64::new(0),
            events: AtomicU64::new(0),
            append_ns: Histogram::latency(),
            subscriptions: AtomicU64::new(0),
        }
    }
}

/// [`StoreStats`] when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCounts {
    /// Successful appends (a retry recognised by its event ids counts).
    pub appends: u64,
    /// Events those appends carried.
    pub events: u64,
    pub append_ns: HistogramSnapshot,
    /// Subscriptions open now.
    pub subscriptions: u64,
}

impl StoreStats {
    pub(crate) fn appended(&self, events: usize, took: Duration) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        self.append_ns.record_duration(took);
    }

    pub(crate) fn subscribed(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unsubscribed(&self) {
        self.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            append_ns: self.append_ns.snapshot(),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
        }
    }
}
