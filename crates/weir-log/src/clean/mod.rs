//! Log compaction (Kafka's log cleaner), the generic half: the log rewrites
//! its sealed segments keeping what a [`CleanPolicy`] supplied by the owner
//! decides to keep, with every surviving record at its original offset.
//! What to keep (the latest record per key, tombstones, transactions) is
//! the owner's business; the log knows batches, records, segments and how
//! to swap a rewritten segment in without a crash ever leaving a mix.
//!
//! [`crate::Log::clean`] runs one pass; the owner calls it from a thread of
//! its own, as it calls retention. The on-disk effect and the swap protocol
//! are in `docs/design/log-format.md` ("Compaction").

pub(crate) mod rewrite;
pub(crate) mod swap;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::batch::{BatchHeader, Record};

/// One batch as the cleaner meets it, in offset order.
#[derive(Debug, Clone, Copy)]
pub struct CleanBatch<'a> {
    pub header: &'a BatchHeader,
    /// The whole batch, as stored.
    pub bytes: &'a [u8],
    /// Whether the batch lies in the dirty part of the log (at or after the
    /// first offset the last pass did not clean): only the dirty part's
    /// records are new to the policy.
    pub dirty: bool,
    /// The largest timestamp of the segment holding the batch (its age, for
    /// horizons such as Kafka's `delete.retention.ms`).
    pub segment_max_timestamp: i64,
}

/// What to do with one batch in the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// Keep it byte for byte.
    All,
    /// Drop it.
    Nothing,
    /// Ask [`CleanPolicy::retain_record`] about each record (uncompressed
    /// batches only: the log never decompresses; for a compressed batch the
    /// log keeps it whole).
    Records,
}

/// The owner's decisions. A pass calls [`CleanPolicy::observe`] on every
/// batch of the cleanable range, in order, then [`CleanPolicy::begin_rewrite`]
/// once, then `retain_batch` (and `retain_record`) on the same batches in
/// the same order.
pub trait CleanPolicy {
    /// Pass one. `false` asks the pass to stop its dirty range before this
    /// batch's segment (e.g. a key map that is full); the first dirty
    /// segment is cleaned anyway, so a pass always makes progress.
    fn observe(&mut self, batch: &CleanBatch<'_>) -> bool;

    /// Between the passes.
    fn begin_rewrite(&mut self) {}

    /// Pass two: the batch's fate.
    fn retain_batch(&mut self, batch: &CleanBatch<'_>) -> Retain;

    /// Pass two, for [`Retain::Records`]: whether this record stays.
    fn retain_record(&mut self, batch: &CleanBatch<'_>, record: &Record<'_>) -> bool;
}

/// When a log is worth cleaning and how far it may be cleaned (Kafka's
/// topic configs of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanOptions {
    /// The owner's bound: nothing at or after this offset is cleaned (the
    /// last stable offset, so open transactions are never touched). The
    /// active segment is never cleaned whatever this says.
    pub end_offset_max: i64,
    /// Clean only when dirty bytes / (clean + dirty bytes) of the
    /// cleanable range reach this.
    pub min_cleanable_dirty_ratio: f64,
    /// A segment whose newest record is younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// Clean whatever the ratio once the oldest dirty record is older than
    /// this.
    pub max_compaction_lag_ms: i64,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            end_offset_max: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// What one [`crate::Log::clean`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanOutcome {
    /// The dirty share of the cleanable range when the pass looked.
    pub dirty_ratio: f64,
    /// Whether the pass ran (false: nothing cleanable, or not dirty enough).
    pub ran: bool,
    /// Segments replaced by a smaller copy.
    pub segments_rewritten: usize,
    /// Bytes of the segments the rewrite went over, and what they hold now.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub batches_removed: u64,
    pub records_removed: u64,
    /// The first dirty offset after the pass (the cleaner's checkpoint).
    pub clean_offset: i64,
}

/// A limit on the cleaner's I/O (bytes read plus written per second, Kafka's
/// `log.cleaner.io.max.bytes.per.second`), shared by every log one cleaner
/// thread cleans: [`Throttle::spend`] sleeps the caller when it is ahead.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: Option<u64>,
    /// The current one-second window: when it began and what it spent.
    window: Mutex<(Instant, u64)>,
}

impl Throttle {
    /// `None`: no limit.
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.filter(|b| *b > 0),
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Counts `bytes` of I/O and sleeps until the window's rate is back
    /// under the limit. A window lasts a second at least, so idle time
    /// never banks more than a second's worth of burst.
    pub fn spend(&self, bytes: u64) {
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        let wait = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let elapsed = w.0.elapsed();
            if elapsed >= Duration::from_secs(1) && w.1 <= rate * elapsed.as_secs() {
                *w = (Instant::now(), 0);
            }
            w.1 += bytes;
            let due = Duration::from_secs_f64(w.1 as f64 / rate as f64);
            due.saturating_sub(w.0.elapsed())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_holds_the_rate() {
        let throttle = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..30 {
            throttle.spend(10_000); // 300 kB at 1 MB/s: 0.3 s
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(280), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let free = Instant::now();
        Throttle::new(None).spend(u64::MAX / 2);
        assert!(free.elapsed() < Duration::from_millis(50));
    }
}
