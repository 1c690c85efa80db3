//! Purging dead letters: the records of a dead-letter topic are dropped by
//! moving its partitions' log start offsets forward (Kafka's DeleteRecords,
//! [`weir_broker::Broker::delete_records`]): durable before the call
//! returns, whole segments below the new start deleted from disk, and any
//! Kafka client reading from the earliest offset starts there. Only
//! dead-letter topics (`<origin><suffix>`, not internal) can be purged, so
//! a mistyped name cannot empty an ordinary topic.

use weir_broker::Broker;

use crate::error::DeadLetterError;
use crate::format::origin_topic;
use crate::ops::check_suffix;

/// Which dead letters to purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Every record of every partition, up to each one's high watermark
    /// when the call reaches it.
    All,
    /// The records of `partition` below `to_offset` (exclusive: the record
    /// at `to_offset` stays); `to_offset` must lie in
    /// [0, the high watermark].
    Below { partition: i32, to_offset: i64 },
}

/// What a purge did to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPurged {
    pub partition: i32,
    /// Records dropped by this call (0 when they were gone already).
    pub purged: u64,
    /// The partition's first offset now.
    pub log_start_offset: i64,
}

/// Purges the `what` of `dlq_topic`, a dead-letter topic (its name ends
/// with `suffix`); returns what each partition lost, by partition. A topic
/// that is not a dead-letter topic is refused with
/// [`DeadLetterError::NotDeadLetterTopic`], an unknown topic or partition
/// and an offset beyond the high watermark with the broker's errors; nothing
/// is purged then. With [`Purge::All`] a failure on one partition stops
/// the call: the partitions before it were purged (durably), none after.
pub fn purge(
    broker: &Broker,
    suffix: &str,
    dlq_topic: &str,
    what: Purge,
) -> Result<Vec<PartitionPurged>, DeadLetterError> {
    check_suffix(suffix)?;
    let topic = broker.topic(dlq_topic)?;
    if topic.internal || origin_topic(dlq_topic, suffix).is_none() {
        return Err(DeadLetterError::NotDeadLetterTopic {
            topic: dlq_topic.to_owned(),
            suffix: suffix.to_owned(),
        });
    }
    let targets: Vec<(i32, Option<i64>)> = match what {
        Purge::All => (0..topic.partition_count() as i32)
            .map(|p| (p, None))
            .collect(),
        Purge::Below {
            partition,
            to_offset,
        } => vec![(partition, Some(to_offset))],
    };
    let mut out = Vec::with_capacity(targets.len());
    for (partition, to_offset) in targets {
        let to_offset = match to_offset {
            Some(offset) => offset,
            None => topic.partition(partition)?.high_watermark(),
        };
        let deleted = broker.delete_records(dlq_topic, partition, to_offset)?;
        out.push(PartitionPurged {
            partition,
            purged: deleted.n_records(),
            log_start_offset: deleted.log_start_offset,
        });
    }
    Ok(out)
}
