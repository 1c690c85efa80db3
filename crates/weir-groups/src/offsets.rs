//! Committed offsets, kept durably in the internal `__consumer_offsets`
//! topic and in memory for OffsetFetch. (Interface; the implementation
//! lands with its tests.)

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_broker::Broker;

use crate::GroupError;

/// The internal topic that holds committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// One committed offset with what the client stored beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch of the record before `offset` (-1 if unknown).
    pub leader_epoch: i32,
    /// The client's commit metadata, returned as given by OffsetFetch.
    pub metadata: String,
    /// When the commit was written (broker clock).
    pub commit_timestamp_ms: i64,
}

/// Settings of the offset store.
#[derive(Debug, Clone)]
pub struct OffsetsConfig {
    /// Largest commit metadata accepted (Kafka's
    /// `offset.metadata.max.bytes`).
    pub metadata_bytes_max: usize,
    /// Segment size of `__consumer_offsets`; a snapshot is taken when it
    /// rolls.
    pub segment_bytes: u64,
}

impl Default for OffsetsConfig {
    fn default() -> Self {
        Self {
            metadata_bytes_max: 4096,
            segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Committed offsets of every group.
#[derive(Debug)]
pub struct OffsetStore {
    _broker: Arc<Broker>,
}

/// A commit or deletion written but not yet durable.
#[derive(Debug)]
#[must_use = "a commit is acknowledged only after `wait`"]
pub struct PendingCommit {}

impl PendingCommit {
    /// Blocks until durable; then OffsetFetch shows the change.
    pub fn wait(self) -> Result<(), GroupError> {
        Ok(())
    }
}

impl OffsetStore {
    pub fn open(broker: Arc<Broker>, _config: OffsetsConfig) -> Result<Self, GroupError> {
        Ok(Self { _broker: broker })
    }

    /// Largest commit metadata accepted.
    pub fn metadata_bytes_max(&self) -> usize {
        4096
    }

    pub fn commit_nowait(
        &self,
        _group: &str,
        _offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<PendingCommit, GroupError> {
        Ok(PendingCommit {})
    }

    pub fn committed(&self, _group: &str) -> BTreeMap<TopicPartition, CommittedOffset> {
        BTreeMap::new()
    }

    pub fn groups(&self) -> Vec<String> {
        Vec::new()
    }

    pub fn delete_group(&self, _group: &str) -> Result<PendingCommit, GroupError> {
        Ok(PendingCommit {})
    }

    pub fn delete_offsets(
        &self,
        _group: &str,
        _partitions: &[TopicPartition],
    ) -> Result<PendingCommit, GroupError> {
        Ok(PendingCommit {})
    }

    pub fn maintain(&self) -> Result<(), GroupError> {
        Ok(())
    }
}
