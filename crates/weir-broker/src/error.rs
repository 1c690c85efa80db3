//! Typed errors of the broker, each naming the offending topic, partition
//! or value. The Kafka server maps them to Kafka error codes in one table.

use weir_log::{BatchError, LogError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {topic:?} already exists")]
    TopicAlreadyExists { topic: String },
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    #[error("invalid partition count {count} for topic {topic:?}: {reason}")]
    InvalidPartitions {
        topic: String,
        count: i64,
        reason: String,
    },
    #[error("invalid replication factor {factor}: this broker keeps one copy (use 1 or -1)")]
    InvalidReplicationFactor { factor: i16 },
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("policy violation: {reason}")]
    PolicyViolation { reason: String },
    #[error("batch of {bytes} bytes is over max.message.bytes {bytes_max} of topic {topic:?}")]
    MessageTooLarge {
        topic: String,
        bytes: usize,
        bytes_max: usize,
    },
    #[error("corrupt batch for topic {topic:?}: {source}")]
    CorruptMessage {
        topic: String,
        #[source]
        source: BatchError,
    },
    #[error(
        "out-of-order sequence from producer {producer_id} on {topic}-{partition}: expected {expected}, got {got}"
    )]
    OutOfOrderSequence {
        topic: String,
        partition: i32,
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "no state for producer {producer_id} on {topic}-{partition}: it must start again from sequence 0"
    )]
    UnknownProducerId {
        topic: String,
        partition: i32,
        producer_id: i64,
    },
    #[error(
        "clients may not write control records (topic {topic:?}): markers are the coordinator's"
    )]
    ControlRecordsRefused { topic: String },
    #[error(
        "timestamp {timestamp_ms} of a record for topic {topic:?} is outside {config} {bound_ms} of the broker's time {now_ms}"
    )]
    InvalidTimestamp {
        topic: String,
        timestamp_ms: i64,
        now_ms: i64,
        config: &'static str,
        bound_ms: i64,
    },
    /// Kafka's words, which clients show (`InvalidRecordException`).
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
    )]
    KeyRequired { topic: String, partition: i32 },
    /// A record that does not match the schema its topic asks for.
    #[error("record {index} of the batch to {topic}-{partition} was refused: {reason}")]
    RecordRefused {
        topic: String,
        partition: i32,
        /// The record's index in its batch (KIP-467's `batch_index`).
        index: i32,
        reason: String,
    },
    #[error("unreadable records for topic {topic:?}: {source}")]
    InvalidRecords {
        topic: String,
        #[source]
        source: crate::compression::RecordsError,
    },
    #[error(
        "cannot delete the records of {topic}-{partition} before offset {offset}: \
         it must lie in [0, {high_watermark}], the high watermark"
    )]
    DeleteRecordsOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        high_watermark: i64,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the topic registry is unreadable: {reason}")]
    Registry { reason: String },
}

/// Splits a log error on produce into what the producer did wrong and what
/// went wrong on the broker.
pub(crate) fn produce_error(topic: &str, err: LogError) -> BrokerError {
    match err {
        LogError::Batch(BatchError::TooLarge { bytes, bytes_max }) => {
            BrokerError::MessageTooLarge {
                topic: topic.to_owned(),
                bytes,
                bytes_max,
            }
        }
        LogError::Batch(source) => BrokerError::CorruptMessage {
            topic: topic.to_owned(),
            source,
        },
        other => BrokerError::Log(other),
    }
}
