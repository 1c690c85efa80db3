//! Typed errors of the log: what was wrong with a batch, a request, the disk.

use std::io;
use std::path::PathBuf;

/// Why a batch was rejected. Nothing already in the log is touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("empty append: no batch given")]
    Empty,
    #[error("batch truncated: {bytes} bytes, a batch header needs {bytes_min}")]
    Truncated { bytes: usize, bytes_min: usize },
    #[error("batch length field says {declared} bytes but {actual} bytes are present")]
    LengthMismatch { declared: i64, actual: usize },
    #[error("unsupported record batch magic {magic}, only magic 2 is accepted")]
    UnsupportedMagic { magic: i8 },
    #[error("batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch record count {record_count} does not fit last offset delta {last_offset_delta}")]
    BadRecordCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("batch of {bytes} bytes is over the limit of {bytes_max} bytes")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("malformed record inside the batch")]
    BadRecord,
    #[error("batch is compressed with codec {codec}; the log does not decompress")]
    Compressed { codec: i16 },
    #[error("batch {index} of the append: {source}")]
    InBatch {
        index: usize,
        #[source]
        source: Box<BatchError>,
    },
}

impl BatchError {
    /// Names which batch of a multi-batch append was at fault.
    pub(crate) fn at_batch(self, index: usize) -> Self {
        if index == 0 {
            self
        } else {
            Self::InBatch {
                index,
                source: Box::new(self),
            }
        }
    }
}

/// Every error the log returns.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("offset {offset} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("log {log} is read-only after a failed fsync: {reason}")]
    ReadOnly { log: String, reason: String },
    #[error("fsync of {path} failed: {source}")]
    SyncFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("data directory {path} is locked by another process")]
    Locked { path: PathBuf },
    #[error("invalid log name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid log config: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("segment {path} is corrupt at byte {position}: {reason}")]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log {log} is full: offset {offset} would pass the largest offset")]
    OffsetOverflow { log: String, offset: i64 },
    #[error("log {log} is closed")]
    Closed { log: String },
    #[error(
        "cannot delete the records of log {log} before offset {offset}: \
         the high watermark is {high_watermark}"
    )]
    StartPastHighWatermark {
        log: String,
        offset: i64,
        high_watermark: i64,
    },
    #[error("log start offset checkpoint {path} is corrupt: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
    #[error(
        "snapshot at offset {offset} ({bytes} bytes) is past the log's end or over the size limit"
    )]
    InvalidSnapshot { offset: i64, bytes: usize },
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }

    /// A failed `fsync`/`fdatasync` of `path` (which turns logs read-only).
    pub(crate) fn sync(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::SyncFailed { path, source }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
