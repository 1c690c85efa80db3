//! Configuration of a log and of a data directory, with validated limits,
//! and the clock seam that append times, segment age and retention read.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{LogError, Result};

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// An append is acknowledged only after `fdatasync`; readers see only
    /// synced records. Syncs are shared by every log of the data directory.
    Always,
    /// The data directory's sync thread syncs dirty data at least this often;
    /// appends return at once and readers see everything written.
    IntervalMs(u64),
    /// Never synced, except when a segment is sealed or the log is closed.
    Never,
}

/// Per-log settings. Every size has a ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    /// A segment is rolled before it would pass this size.
    pub segment_bytes_max: u64,
    /// A segment is rolled once its first batch is this old.
    pub segment_ms: i64,
    /// Largest batch (or multi-batch append) accepted.
    pub batch_bytes_max: usize,
    /// Whole segments whose newest record is older than this are deleted;
    /// `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// Oldest segments are deleted while the log is larger than this;
    /// `None` keeps them.
    pub retention_bytes: Option<u64>,
    /// One offset-index and time-index entry per this many bytes of data.
    pub index_interval_bytes: u32,
    /// Disk space reserved ahead of the write position of the active
    /// segment (`fallocate`), so running out of space fails early and
    /// appends need no block allocation.
    pub preallocate_bytes: u64,
    /// Small appends also write this many zeros ahead of themselves, synced
    /// by the same round, so the appends that follow overwrite blocks the
    /// file system already counts as written: their `fdatasync` then has
    /// no extent to convert and no metadata to commit (on ext4 this makes
    /// it markedly cheaper). Only appends of at most a quarter of this size
    /// do it, since for large appends the doubled writes cost more than the
    /// metadata saved. 0 turns it off.
    pub zero_ahead_bytes: u64,
}

/// Hard ceilings that no configuration can pass.
pub const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64; // index positions are u32
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;
pub const BATCH_BYTES_LIMIT: usize = 256 * 1024 * 1024;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            segment_bytes_max: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            batch_bytes_max: 1024 * 1024 + 12,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            preallocate_bytes: 64 * 1024 * 1024,
            zero_ahead_bytes: 1024 * 1024,
        }
    }
}

impl LogConfig {
    /// Checks every limit; a log never runs with a config that fails here.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(LogError::InvalidConfig { field, reason });
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return bad(
                "segment_bytes_max",
                format!(
                    "{} is outside [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_LIMIT}]",
                    self.segment_bytes_max
                ),
            );
        }
        if self.batch_bytes_max == 0
            || self.batch_bytes_max > BATCH_BYTES_LIMIT
            || self.batch_bytes_max as u64 > self.segment_bytes_max
        {
            return bad(
                "batch_bytes_max",
                format!(
                    "{} must be in [1, min({BATCH_BYTES_LIMIT}, segment_bytes_max {})]",
                    self.batch_bytes_max, self.segment_bytes_max
                ),
            );
        }
        if self.segment_ms <= 0 {
            return bad(
                "segment_ms",
                format!("{} must be positive", self.segment_ms),
            );
        }
        if let Some(ms) = self.retention_ms
            && ms <= 0
        {
            return bad(
                "retention_ms",
                format!("{ms} must be positive (None keeps forever)"),
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "0 must be positive".into());
        }
        if let FsyncPolicy::IntervalMs(0) = self.fsync {
            return bad(
                "fsync",
                "interval_ms 0 must be positive (use always)".into(),
            );
        }
        Ok(())
    }
}

/// Settings of a whole data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirConfig {
    /// Most logs that may be open at once.
    pub logs_max: usize,
    /// How often the sync thread checks `IntervalMs` logs.
    pub flush_tick_ms: u64,
}

impl Default for DirConfig {
    fn default() -> Self {
        Self {
            logs_max: 100_000,
            flush_tick_ms: 50,
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch, injectable for tests.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
