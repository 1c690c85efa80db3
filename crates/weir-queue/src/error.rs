//! Why the acknowledgement engine or the queue manager refused a call: one
//! variant per answer a client tells apart (the protocol layers map each
//! to their own code, Kafka's INVALID_RECORD_STATE for the first).

/// A refusal; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The record is not acquired by this consumer (never acquired, lock
    /// timed out and taken by another, already settled, or below the start).
    #[error("offset {offset} is not acquired by {member:?}")]
    NotAcquired { offset: i64, member: String },
    #[error("offsets {first}..={last} are not a valid range")]
    InvalidRange { first: i64, last: i64 },
    #[error("invalid queue config: {0}")]
    InvalidConfig(&'static str),
    /// The manager holds `groups_max` groups already.
    #[error("too many queue groups (at most {max})")]
    TooManyGroups { max: usize },
    /// The group has state for `max` partitions already.
    #[error("queue group {group:?} has too many partitions (at most {max})")]
    TooManyPartitions { group: String, max: usize },
    /// The journal, the snapshot or the dead letters could not be written
    /// or read; the call changed nothing.
    #[error("queue storage failed: {0}")]
    Storage(String),
}
