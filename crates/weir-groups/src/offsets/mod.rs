//! Committed offsets of consumer groups, kept durably in the internal
//! `__consumer_offsets` topic and in memory for OffsetFetch, with snapshots
//! so that opening replays only the log's recent past.
//!
//! Every commit or deletion is one RecordBatch v2 appended to the topic's
//! single partition, so a commit of many partitions is atomic. Records use
//! Kafka's own layout of `__consumer_offsets` (offset commit key version 1,
//! value version 3, a null value for a deletion), so the log reads as
//! Kafka's would. When the log has rolled a segment, [`OffsetStore::maintain`]
//! writes the whole map to a snapshot file covering every record below some
//! offset, and only then deletes the segments that lie below it. The byte
//! layouts and the recovery rules are in `docs/design/consumer-offsets.md`.
//!
//! ```
//! use std::sync::Arc;
//! use weir_broker::{Broker, BrokerConfig};
//! use weir_groups::{CommittedOffset, OffsetStore, OffsetsConfig, TopicPartition};
//! use weir_log::{DataDir, DirConfig};
//!
//! let tmp = tempfile::tempdir()?;
//! let dir = DataDir::open(tmp.path(), DirConfig::default())?;
//! let broker = Arc::new(Broker::open(dir, BrokerConfig::default())?);
//! let store = OffsetStore::open(broker, OffsetsConfig::default())?;
//!
//! let orders_0 = TopicPartition { topic: "orders".into(), partition: 0 };
//! let offset = CommittedOffset {
//!     offset: 42,
//!     leader_epoch: -1,
//!     metadata: String::new(),
//!     commit_timestamp_ms: 1_700_000_000_000,
//! };
//! let pending = store.commit_nowait("billing", &[(orders_0.clone(), offset.clone())])?;
//! assert_eq!(store.committed_offset("billing", &orders_0), None); // not durable yet
//! pending.wait()?;
//! assert_eq!(store.committed_offset("billing", &orders_0), Some(offset));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Invariants:
//! - [`OffsetStore::committed`] never shows a change the log could lose: a
//!   written batch waits in a queue, in log order, until the log's high
//!   watermark (the durable offset under `fsync=always`) passes it.
//! - Changes are applied to the map in log order, whichever waiter applies
//!   them, so the map always equals a replay of the log.
//! - A snapshot is durable before any segment it covers is deleted, and a
//!   newer snapshot never gives way to an older one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use weir_broker::{Broker, TOPIC_NAME_BYTES_MAX, validate_topic_name};
use weir_log::batch::{self, BatchBuilder, BatchHeader};
use weir_log::{BATCH_BYTES_LIMIT, BatchError, Clock, FsyncPolicy, Log, LogError};

use crate::GroupError;

mod codec;
mod recovery;

use codec::*;
use recovery::*;

/// The internal topic that holds committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Longest group id accepted. Kafka sets none; an id is a string with an
/// i16 length in the log, and every snapshot and response repeats it.
pub const GROUP_ID_BYTES_MAX: usize = 1024;
/// Most partitions one commit (or one OffsetDelete) may name.
pub const COMMIT_PARTITIONS_MAX: usize = 10_000;
/// Ceiling of `metadata_bytes_max`: metadata is an i16-length string.
pub const METADATA_BYTES_LIMIT: usize = i16::MAX as usize;

/// The snapshot's metadata file in the data directory.
pub const SNAPSHOT_FILE: &str = ".consumer-offsets-snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"WOFS";
const SNAPSHOT_VERSION: u16 = 1;
/// Magic, version and CRC: the bytes before the checksummed body.
const SNAPSHOT_PREFIX_BYTES: usize = 4 + 2 + 4;

/// Kafka's offset commit key versions 0 and 1 share one layout.
const KEY_VERSIONS: [i16; 2] = [0, 1];
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;
/// What a record adds to its key and value in a batch, at most: length,
/// attributes, timestamp and offset deltas, key and value lengths, header
/// count, all as varints.
const RECORD_OVERHEAD_BYTES: usize = 32;
/// Bytes of log read at a time during replay.
const REPLAY_READ_BYTES: usize = 1024 * 1024;

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
    /// When the commit was written (broker clock), stored as the caller
    /// gives it.
    pub commit_timestamp_ms: i64,
}

/// Settings of the offset store.
#[derive(Debug, Clone)]
pub struct OffsetsConfig {
    /// Largest commit metadata accepted (Kafka's
    /// `offset.metadata.max.bytes`); at most [`METADATA_BYTES_LIMIT`].
    pub metadata_bytes_max: usize,
    /// Segment size of `__consumer_offsets`; a snapshot is taken when it
    /// rolls. Applies when the topic is created; an existing topic keeps
    /// its own.
    pub segment_bytes: u64,
    /// Most committed offsets held, all groups together: a commit that
    /// would add offsets past it is refused. Commits in flight at once are
    /// counted when they apply, so they may pass it by their own size.
    pub offsets_max: usize,
    /// The clock that stamps the records' timestamps; `None` takes the
    /// data directory's.
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for OffsetsConfig {
    fn default() -> Self {
        Self {
            metadata_bytes_max: 4096,
            segment_bytes: 16 * 1024 * 1024,
            offsets_max: 1_000_000,
            clock: None,
        }
    }
}

impl OffsetsConfig {
    /// Checks the limits, and that a commit of one partition with the
    /// longest group id, topic name and metadata fits a segment.
    pub fn validate(&self) -> Result<(), GroupError> {
        let bad = |field, reason: String| Err(GroupError::InvalidConfig { field, reason });
        if self.metadata_bytes_max > METADATA_BYTES_LIMIT {
            return bad(
                "metadata_bytes_max",
                format!(
                    "{} is over the limit of {METADATA_BYTES_LIMIT}",
                    self.metadata_bytes_max
                ),
            );
        }
        let one_record = batch::HEADER_BYTES
            + key_bytes(GROUP_ID_BYTES_MAX, TOPIC_NAME_BYTES_MAX)
            + value_bytes(self.metadata_bytes_max)
            + RECORD_OVERHEAD_BYTES;
        if (one_record as u64) > self.segment_bytes {
            return bad(
                "segment_bytes",
                format!(
                    "{} cannot hold one commit of {one_record} bytes (lower metadata_bytes_max \
                     or raise segment_bytes)",
                    self.segment_bytes
                ),
            );
        }
        if self.offsets_max == 0 {
            return bad("offsets_max", "0 must be positive".into());
        }
        Ok(())
    }
}

/// What opening the store found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The offset below which the loaded snapshot covered the log, if a
    /// valid snapshot was used.
    pub snapshot_offset: Option<i64>,
    /// Where replay of the log started.
    pub replayed_from: i64,
    /// Records applied from the log.
    pub records_replayed: u64,
    /// Records skipped: unknown key or value versions, malformed records,
    /// batches this store never writes (compressed, control).
    pub records_skipped: u64,
}

/// Committed offsets of every group.
#[derive(Debug)]
pub struct OffsetStore {
    broker: Arc<Broker>,
    shared: Arc<Shared>,
    /// The offset the newest durable snapshot covers. Held through a whole
    /// `maintain`, so snapshots are written in order and segments deleted
    /// only below what the snapshot on disk covers.
    snapshot_offset: Mutex<Option<i64>>,
    recovery: Recovery,
}

/// A commit or deletion written but not yet durable. Dropping it does not
/// undo the write: the change shows once a later wait or `maintain` finds
/// it durable.
#[derive(Debug)]
#[must_use = "a commit is acknowledged only after `wait`"]
pub struct PendingCommit {
    /// The store and the offset after the last batch written; `None` when
    /// nothing had to be written.
    written: Option<(Arc<Shared>, i64)>,
}

impl PendingCommit {
    fn done() -> Self {
        Self { written: None }
    }

    /// Blocks until durable (under `fsync=always`; at once otherwise); then
    /// OffsetFetch shows the change.
    pub fn wait(self) -> Result<(), GroupError> {
        let Some((shared, end)) = self.written else {
            return Ok(());
        };
        if shared.log.fsync_policy() == FsyncPolicy::Always {
            shared.log.wait_durable(end)?;
        }
        shared.apply_visible();
        assert!(
            read(&shared.offsets).applied_end >= end,
            "a durable batch is applied by the wait that saw it durable"
        );
        Ok(())
    }
}

impl OffsetStore {
    /// Opens the store: creates `__consumer_offsets` if needed, loads the
    /// latest snapshot and replays the log from the offset it covers (from
    /// the log's start without one).
    pub fn open(broker: Arc<Broker>, config: OffsetsConfig) -> Result<Self, GroupError> {
        config.validate()?;
        let segment_bytes = config.segment_bytes.to_string();
        let message_bytes = config
            .segment_bytes
            .min(BATCH_BYTES_LIMIT as u64)
            .to_string();
        broker.ensure_internal_topic(
            OFFSETS_TOPIC,
            1,
            &[
                ("retention.ms", "-1"),
                ("segment.bytes", &segment_bytes),
                ("max.message.bytes", &message_bytes),
            ],
        )?;
        let log = broker.partition(OFFSETS_TOPIC, 0)?;
        let existing = log.config().segment_bytes_max;
        if existing != config.segment_bytes {
            tracing::warn!(
                topic = OFFSETS_TOPIC,
                existing,
                configured = config.segment_bytes,
                "the topic exists with another segment size; it keeps its own"
            );
        }
        let clock = config
            .clock
            .clone()
            .unwrap_or_else(|| broker.data_dir().clock());
        let (offsets, snapshot_offset, recovery) = recover(&broker, &log)?;
        let shared = Arc::new(Shared {
            log,
            clock,
            config,
            pending: Mutex::default(),
            offsets: RwLock::new(offsets),
        });
        tracing::info!(
            ?recovery,
            n_offsets = read(&shared.offsets).n_offsets,
            "committed offsets recovered"
        );
        Ok(Self {
            broker,
            shared,
            snapshot_offset: Mutex::new(snapshot_offset),
            recovery,
        })
    }

    /// What opening found and did.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Largest commit metadata accepted (`offset.metadata.max.bytes`).
    pub fn metadata_bytes_max(&self) -> usize {
        self.shared.config.metadata_bytes_max
    }

    /// Writes a group's commit of `offsets` (all or none, one batch) and
    /// returns before it is durable; [`PendingCommit::wait`] acknowledges
    /// it. Whether the topics exist is the caller's to check.
    pub fn commit_nowait(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<PendingCommit, GroupError> {
        check_group(group)?;
        check_partition_count(group, offsets.len())?;
        for (tp, committed) in offsets {
            validate_topic_name(&tp.topic)?;
            if committed.metadata.len() > self.shared.config.metadata_bytes_max {
                return Err(GroupError::MetadataTooLarge {
                    bytes: committed.metadata.len(),
                    bytes_max: self.shared.config.metadata_bytes_max,
                });
            }
        }
        if offsets.is_empty() {
            return Ok(PendingCommit::done());
        }
        let changes: Vec<Change> = offsets
            .iter()
            .map(|(tp, committed)| Change {
                group: group.to_owned(),
                partition: tp.clone(),
                value: Some(committed.clone()),
            })
            .collect();
        let batches = self.shared.build_batches(&changes);
        if batches.len() > 1 {
            return Err(GroupError::CommitTooLarge {
                bytes: batches.iter().map(|(bytes, _)| bytes.len()).sum(),
                bytes_max: self.shared.batch_bytes_max(),
            });
        }
        let mut pending = lock(&self.shared.pending);
        self.check_capacity(group, offsets)?;
        self.shared.append_locked(&mut pending, batches, changes)
    }

    /// [`OffsetStore::commit_nowait`], then [`PendingCommit::wait`].
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<(), GroupError> {
        self.commit_nowait(group, offsets)?.wait()
    }

    /// A group's durable committed offsets.
    pub fn committed(&self, group: &str) -> BTreeMap<TopicPartition, CommittedOffset> {
        read(&self.shared.offsets)
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the group has any durable committed offset (without copying
    /// them).
    pub fn has_commits(&self, group: &str) -> bool {
        read(&self.shared.offsets)
            .groups
            .get(group)
            .is_some_and(|offsets| !offsets.is_empty())
    }

    /// One partition's durable committed offset for a group.
    pub fn committed_offset(
        &self,
        group: &str,
        partition: &TopicPartition,
    ) -> Option<CommittedOffset> {
        read(&self.shared.offsets)
            .groups
            .get(group)?
            .get(partition)
            .cloned()
    }

    /// Groups with at least one durable committed offset, sorted.
    pub fn groups(&self) -> Vec<String> {
        read(&self.shared.offsets).groups.keys().cloned().collect()
    }

    /// Deletes every offset of a group: one tombstone each, in one batch
    /// when they fit (a group with more offsets than a batch holds is
    /// deleted in consecutive batches). Offsets committed but not yet
    /// durable are deleted too: the tombstones follow them in the log. A
    /// group with no offsets writes nothing.
    pub fn delete_group(&self, group: &str) -> Result<PendingCommit, GroupError> {
        check_group(group)?;
        let mut pending = lock(&self.shared.pending);
        let from_map: Vec<TopicPartition> = read(&self.shared.offsets)
            .groups
            .get(group)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        let live = live_after(
            &pending,
            from_map.into_iter().map(|tp| (group.to_owned(), tp)),
            |c| c.group == group,
        );
        self.shared.delete_locked(&mut pending, live)
    }

    /// Deletes a group's offsets of the given partitions (those it has).
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<PendingCommit, GroupError> {
        check_group(group)?;
        check_partition_count(group, partitions.len())?;
        let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
        let mut pending = lock(&self.shared.pending);
        let from_map: Vec<TopicPartition> = {
            let offsets = read(&self.shared.offsets);
            let group_offsets = offsets.groups.get(group);
            wanted
                .iter()
                .filter(|tp| group_offsets.is_some_and(|g| g.contains_key(**tp)))
                .map(|tp| (*tp).clone())
                .collect()
        };
        let live = live_after(
            &pending,
            from_map.into_iter().map(|tp| (group.to_owned(), tp)),
            |c| c.group == group && wanted.contains(&c.partition),
        );
        self.shared.delete_locked(&mut pending, live)
    }

    /// Deletes every group's offsets of a deleted topic, in as few batches
    /// as they fit.
    pub fn delete_topic(&self, topic: &str) -> Result<PendingCommit, GroupError> {
        let mut pending = lock(&self.shared.pending);
        let from_map: Vec<(String, TopicPartition)> = {
            let offsets = read(&self.shared.offsets);
            let first = TopicPartition {
                topic: topic.to_owned(),
                partition: i32::MIN,
            };
            offsets
                .groups
                .iter()
                .flat_map(|(group, g)| {
                    g.range(&first..)
                        .take_while(|(tp, _)| tp.topic == topic)
                        .map(|(tp, _)| (group.clone(), tp.clone()))
                })
                .collect()
        };
        let live = live_after(&pending, from_map.into_iter(), |c| {
            c.partition.topic == topic
        });
        self.shared.delete_locked(&mut pending, live)
    }

    /// Periodic upkeep, called by the server: once the log has rolled a
    /// segment, writes a snapshot of every offset covering the log below
    /// the durable offset, then deletes the segments below what the
    /// snapshot covers.
    pub fn maintain(&self) -> Result<(), GroupError> {
        let mut snapshot_offset = lock(&self.snapshot_offset);
        self.shared.apply_visible();
        let log = &self.shared.log;
        if log.segment_count() <= 1 {
            return Ok(());
        }
        let snapshot = {
            let offsets = read(&self.shared.offsets);
            // Under fsync=always every applied record is durable; under the
            // other policies the map may hold records past the durable
            // offset, which a replay from it applies again to the same end.
            let covered = offsets.applied_end.min(log.durable_offset());
            snapshot_offset
                .is_none_or(|s| covered > s)
                .then(|| (covered, encode_snapshot(&offsets, covered)))
        };
        if let Some((covered, bytes)) = snapshot {
            self.broker.data_dir().write_meta(SNAPSHOT_FILE, &bytes)?;
            tracing::info!(
                covered,
                snapshot_bytes = bytes.len(),
                "committed offsets snapshot written"
            );
            *snapshot_offset = Some(covered);
        }
        if let Some(covered) = *snapshot_offset {
            log.delete_segments_before(covered)?;
        }
        Ok(())
    }

    /// Refuses a commit that would add offsets past `offsets_max`.
    fn check_capacity(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<(), GroupError> {
        let map = read(&self.shared.offsets);
        let group_offsets = map.groups.get(group);
        let new: BTreeSet<&TopicPartition> = offsets
            .iter()
            .map(|(tp, _)| tp)
            .filter(|tp| !group_offsets.is_some_and(|g| g.contains_key(*tp)))
            .collect();
        let offsets_max = self.shared.config.offsets_max;
        if map.n_offsets + new.len() > offsets_max {
            return Err(GroupError::TooManyOffsets { offsets_max });
        }
        Ok(())
    }
}

/// What commits and waiters share.
#[derive(Debug)]
struct Shared {
    log: Log,
    clock: Arc<dyn Clock>,
    config: OffsetsConfig,
    /// Batches written but not applied, in log order: appends happen under
    /// this lock, so the queue's order is the log's. Lock order: `pending`,
    /// then `offsets`.
    pending: Mutex<VecDeque<Written>>,
    offsets: RwLock<Offsets>,
}

/// One written batch and the changes it carries.
#[derive(Debug)]
struct Written {
    last_offset: i64,
    changes: Vec<Change>,
}

/// One record: a commit, or a deletion (`value` `None`, a tombstone).
#[derive(Debug, Clone)]
struct Change {
    group: String,
    partition: TopicPartition,
    value: Option<CommittedOffset>,
}

/// The durable offsets of every group.
#[derive(Debug, Default)]
struct Offsets {
    /// Groups with at least one offset; an emptied group is removed.
    groups: BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
    /// Offsets in `groups`, all groups together.
    n_offsets: usize,
    /// Every record of the log below this offset is applied, and, under
    /// `fsync=always`, none at or above it.
    applied_end: i64,
}

impl Offsets {
    fn apply(&mut self, change: Change) {
        let Change {
            group,
            partition,
            value,
        } = change;
        match value {
            Some(value) => {
                if self
                    .groups
                    .entry(group)
                    .or_default()
                    .insert(partition, value)
                    .is_none()
                {
                    self.n_offsets += 1;
                }
            }
            None => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if g.remove(&partition).is_some() {
                    self.n_offsets -= 1;
                }
                if g.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
    }
}

impl Shared {
    /// Largest batch the log takes now.
    fn batch_bytes_max(&self) -> usize {
        self.log.config().batch_bytes_max
    }

    /// Applies, in log order, every written batch readers may now see.
    fn apply_visible(&self) {
        let mut pending = lock(&self.pending);
        let visible = self.log.high_watermark();
        let mut offsets = write(&self.offsets);
        while pending.front().is_some_and(|w| w.last_offset < visible) {
            let written = pending.pop_front().expect("just checked");
            for change in written.changes {
                offsets.apply(change);
            }
        }
        // Every batch is in the queue from its write until it applies, so
        // with none left below `visible`, all records below it are applied.
        offsets.applied_end = offsets.applied_end.max(visible);
    }

    /// Encodes changes into batches of at most [`COMMIT_PARTITIONS_MAX`]
    /// records and the log's batch size; returns each batch with how many
    /// changes it holds.
    fn build_batches(&self, changes: &[Change]) -> Vec<(Vec<u8>, usize)> {
        let bytes_max = self.batch_bytes_max();
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        let mut builder = BatchBuilder::new(now);
        for change in changes {
            let key = encode_key(&change.group, &change.partition);
            let value = change.value.as_ref().map(encode_value);
            let record_bytes =
                key.len() + value.as_ref().map_or(0, Vec::len) + RECORD_OVERHEAD_BYTES;
            let full = builder.record_count() as usize >= COMMIT_PARTITIONS_MAX
                || builder.size_bytes() + record_bytes > bytes_max;
            if builder.record_count() > 0 && full {
                out.push((builder.build(), builder.record_count() as usize));
                builder = BatchBuilder::new(now);
            }
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        if builder.record_count() > 0 {
            out.push((builder.build(), builder.record_count() as usize));
        }
        out
    }

    /// Writes batches (built from `changes`, in order) and queues them.
    /// Called with the `pending` lock held, so the queue keeps log order.
    /// A failed append queues nothing of its own batch; batches before it
    /// stay written and queued.
    fn append_locked(
        self: &Arc<Self>,
        pending: &mut VecDeque<Written>,
        batches: Vec<(Vec<u8>, usize)>,
        mut changes: Vec<Change>,
    ) -> Result<PendingCommit, GroupError> {
        let mut end = None;
        for (mut bytes, n_changes) in batches {
            let info = self.log.append_nowait(&mut bytes).map_err(|e| match e {
                LogError::Batch(BatchError::TooLarge { bytes, bytes_max }) => {
                    GroupError::CommitTooLarge { bytes, bytes_max }
                }
                other => GroupError::Log(other),
            })?;
            let rest = changes.split_off(n_changes);
            pending.push_back(Written {
                last_offset: info.last_offset,
                changes: std::mem::replace(&mut changes, rest),
            });
            end = Some(info.last_offset + 1);
        }
        assert!(changes.is_empty(), "every change is in a batch");
        Ok(PendingCommit {
            written: end.map(|end| (self.clone(), end)),
        })
    }

    /// Writes tombstones for `live` offsets (nothing if there are none).
    fn delete_locked(
        self: &Arc<Self>,
        pending: &mut VecDeque<Written>,
        live: BTreeSet<(String, TopicPartition)>,
    ) -> Result<PendingCommit, GroupError> {
        if live.is_empty() {
            return Ok(PendingCommit::done());
        }
        let changes: Vec<Change> = live
            .into_iter()
            .map(|(group, partition)| Change {
                group,
                partition,
                value: None,
            })
            .collect();
        let batches = self.build_batches(&changes);
        self.append_locked(pending, batches, changes)
    }
}

/// The offsets that will exist once every queued batch applies: those of
/// `from_map` (already applied), then, in log order, the queued changes
/// that `matches` selects.
fn live_after(
    pending: &VecDeque<Written>,
    from_map: impl Iterator<Item = (String, TopicPartition)>,
    matches: impl Fn(&Change) -> bool,
) -> BTreeSet<(String, TopicPartition)> {
    let mut live: BTreeSet<(String, TopicPartition)> = from_map.collect();
    for change in pending
        .iter()
        .flat_map(|w| &w.changes)
        .filter(|c| matches(c))
    {
        let key = (change.group.clone(), change.partition.clone());
        if change.value.is_some() {
            live.insert(key);
        } else {
            live.remove(&key);
        }
    }
    live
}

fn check_group(group: &str) -> Result<(), GroupError> {
    if group.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    if group.len() > GROUP_ID_BYTES_MAX {
        return Err(GroupError::GroupIdTooLong {
            bytes: group.len(),
            bytes_max: GROUP_ID_BYTES_MAX,
        });
    }
    Ok(())
}

fn check_partition_count(group: &str, partitions: usize) -> Result<(), GroupError> {
    if partitions > COMMIT_PARTITIONS_MAX {
        return Err(GroupError::TooManyPartitions {
            group: group.to_owned(),
            partitions,
            partitions_max: COMMIT_PARTITIONS_MAX,
        });
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
