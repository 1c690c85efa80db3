//! Errors of the event store, one variant per answer a caller can act on;
//! the HTTP API maps each to a status and a stable code.

use weir_broker::BrokerError;
use weir_log::LogError;

use crate::ExpectedVersion;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream}: expected version {expected}, but the stream is at {}", actual.map_or_else(|| "no stream".to_owned(), |v| v.to_string()))]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's last version, `None` if it does not exist.
        actual: Option<u64>,
    },
    #[error(
        "stream {stream}: events {ids:?} were appended before, but this append differs from that one ({reason})"
    )]
    IdempotencyConflict {
        stream: String,
        ids: Vec<String>,
        reason: String,
    },
    #[error("stream {stream} not found")]
    StreamNotFound { stream: String },
    #[error("stream {stream} is deleted for good (tombstoned)")]
    StreamDeleted { stream: String },
    #[error("invalid stream id {stream:?}: {reason}")]
    InvalidStream {
        stream: String,
        reason: &'static str,
    },
    #[error("invalid event {id:?}: {reason}")]
    InvalidEvent { id: String, reason: String },
    /// An event of a category with schema validation on that does not
    /// match its subject's schema.
    #[error("stream {stream}: event {index} ({id:?}) was refused: {reason}")]
    SchemaRefused {
        stream: String,
        /// The event's index in the append.
        index: usize,
        id: String,
        reason: String,
    },
    #[error("append too large: {reason}")]
    AppendTooLarge { reason: String },
    #[error("invalid correlation id {id:?}: {reason}")]
    InvalidCorrelationId { id: String, reason: String },
    #[error("invalid stream metadata: {reason}")]
    InvalidMetadata { reason: String },
    #[error("the events log is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A malformed record in the store's own log is corruption (Kafka clients
/// cannot write there).
impl From<weir_log::BatchError> for StoreError {
    fn from(e: weir_log::BatchError) -> Self {
        StoreError::Corrupt {
            reason: format!("records in the events log: {e}"),
        }
    }
}
