//! Typed errors of the dead-letter operations, each naming the offending
//! topic, partition, offset or value.

use weir_broker::BrokerError;

/// Most bytes of a lower layer's reason an error keeps.
pub(crate) const REASON_BYTES_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("unknown origin topic {topic:?}")]
    UnknownOrigin { topic: String },
    #[error("origin topic {topic:?} has no partition {partition}")]
    UnknownOriginPartition { topic: String, partition: i32 },
    #[error("internal topic {topic:?} has no dead-letter topic: only Weir writes internal topics")]
    InternalOrigin { topic: String },
    #[error(
        "dead-letter topic {topic:?} has {partitions} partitions, fewer than the {origin_partitions} of its origin"
    )]
    PartitionMismatch {
        topic: String,
        partitions: usize,
        origin_partitions: usize,
    },
    #[error("invalid dead-letter suffix {suffix:?}: {reason}")]
    InvalidSuffix {
        suffix: String,
        reason: &'static str,
    },
    #[error("no record at offset {offset} of {topic}-{partition} (it holds {start}..{end})")]
    NoSuchRecord {
        topic: String,
        partition: i32,
        offset: i64,
        start: i64,
        end: i64,
    },
    #[error("unreadable batch at offset {offset} of {topic}-{partition}: {reason}")]
    Unreadable {
        topic: String,
        partition: i32,
        offset: i64,
        /// Cut to 256 bytes.
        reason: String,
    },
    /// A replay stopped at a dead letter it could not replay; the ones
    /// before it in the selection were replayed, none after.
    #[error(
        "replay stopped at offset {offset} of {topic}-{partition} after {replayed} replayed records: {source}"
    )]
    ReplayStopped {
        topic: String,
        partition: i32,
        offset: i64,
        replayed: u64,
        #[source]
        source: Box<DeadLetterError>,
    },
    #[error(
        "{topic:?} is not a dead-letter topic: its name does not end with {suffix:?}, or it is internal"
    )]
    NotDeadLetterTopic { topic: String, suffix: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// `reason` cut to [`REASON_BYTES_MAX`] on a char boundary.
pub(crate) fn cut(mut reason: String) -> String {
    if reason.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}
