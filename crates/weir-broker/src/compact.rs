//! Compaction of Kafka topics (`cleanup.policy=compact`): the decisions the
//! broker gives `weir-log`'s cleaner, by Kafka's rules, and the pass over
//! every compacted partition that `weir serve` runs in the background.
//!
//! - The latest record of each key stays; an older one goes once a later
//!   record of its key lies in the cleaned range (the key map is built
//!   from the dirty part of that range only, as Kafka's offset map is).
//! - A tombstone (null value) stays while its segment is younger than
//!   `delete.retention.ms`, so a consumer that read up to before it has
//!   that long to see the delete; then it goes too. Records without a key
//!   go (a topic switched from delete to compact may have some).
//! - Transactions: an aborted transaction's records go; a committed one's
//!   are cleaned like any others; one whose marker is not in the cleaned
//!   range yet is kept whole and adds nothing to the key map. A commit or
//!   abort marker goes only once no record of its transaction is left
//!   before it and its segment is past `delete.retention.ms` (Kafka's
//!   rule: a consumer must still be able to see the end of a transaction
//!   whose records it may have read). The cleaned range ends at the last
//!   stable offset, so an open transaction is never touched.
//! - A compressed batch is kept whole if any of its records stays (the log
//!   never recompresses), and dropped when none does.

use std::collections::HashMap;

use weir_log::batch::{self, Record};
use weir_log::{CleanBatch, CleanPolicy, Retain, Throttle};

use crate::compression::record_bytes;
use crate::txn_index::{ControlType, control_type};
use crate::{Broker, BrokerError};

/// Limits of the cleaner (Kafka's `log.cleaner.*` broker settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerLimits {
    /// Bytes of keys one pass remembers (Kafka's
    /// `log.cleaner.dedupe.buffer.size`); a pass whose dirty range has more
    /// stops early and the next pass goes on.
    pub key_bytes_max: usize,
    /// The most a compressed batch may decompress to.
    pub decompressed_bytes_max: usize,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        Self {
            key_bytes_max: 128 * 1024 * 1024,
            decompressed_bytes_max: 128 * 1024 * 1024,
        }
    }
}

/// Per-key overhead counted against [`CleanerLimits::key_bytes_max`] (the
/// map entry and the key's allocation).
const KEY_OVERHEAD_BYTES: usize = 48;

/// Kafka's compaction rules for one partition and one pass.
#[derive(Debug)]
pub struct KafkaCompaction {
    limits: CleanerLimits,
    /// Segments whose newest record is older than this lose their
    /// tombstones and finished transactions' markers.
    horizon_ms: i64,
    /// Key → offset of its latest committed (or non-transactional) record
    /// in the dirty range.
    latest: HashMap<Vec<u8>, i64>,
    key_bytes: usize,
    /// Keys of transactional records whose marker pass one has not met yet.
    pending: HashMap<i64, Vec<(Vec<u8>, i64)>>,
    /// Every marker of the cleanable range, per producer, in offset order.
    markers: HashMap<i64, Vec<(i64, ControlType)>>,
    /// Pass two: whether a record of each producer's current transaction
    /// was kept.
    txn_kept: HashMap<i64, bool>,
}

impl KafkaCompaction {
    pub fn new(limits: CleanerLimits, now_ms: i64, delete_retention_ms: i64) -> Self {
        Self {
            limits,
            horizon_ms: now_ms.saturating_sub(delete_retention_ms),
            latest: HashMap::new(),
            key_bytes: 0,
            pending: HashMap::new(),
            markers: HashMap::new(),
            txn_kept: HashMap::new(),
        }
    }

    /// Remembers `key` at `offset` if it is the latest; false when the
    /// map is full.
    fn remember(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(at) = self.latest.get_mut(key) {
            *at = (*at).max(offset);
            return true;
        }
        if self.key_bytes + key.len() + KEY_OVERHEAD_BYTES > self.limits.key_bytes_max {
            return false;
        }
        self.key_bytes += key.len() + KEY_OVERHEAD_BYTES;
        self.latest.insert(key.to_vec(), offset);
        true
    }

    /// The outcome of the transaction a data batch of `producer_id` at
    /// `offset` belongs to: its first marker after the batch.
    fn outcome(&self, producer_id: i64, offset: i64) -> Option<ControlType> {
        let markers = self.markers.get(&producer_id)?;
        let i = markers.partition_point(|(at, _)| *at <= offset);
        markers.get(i).map(|(_, t)| *t)
    }

    fn keep(&self, batch: &CleanBatch<'_>, record: &Record<'_>) -> bool {
        let Some(key) = record.key else {
            return false;
        };
        let latest = self.latest.get(key).is_none_or(|at| record.offset >= *at);
        let expired_tombstone =
            record.value.is_none() && batch.segment_max_timestamp < self.horizon_ms;
        latest && !expired_tombstone
    }

    /// For a compressed batch: whether any record stays.
    fn keep_any(&self, batch: &CleanBatch<'_>) -> bool {
        let Ok(body) = record_bytes(batch.bytes, self.limits.decompressed_bytes_max) else {
            // Unreadable here: keep it rather than guess.
            return true;
        };
        let mut any = false;
        let walked = batch::for_each_record(&body, batch.header, |r| {
            any |= self.keep(batch, r);
            Ok::<_, weir_log::BatchError>(())
        });
        walked.is_err() || any
    }
}

impl CleanPolicy for KafkaCompaction {
    fn observe(&mut self, batch: &CleanBatch<'_>) -> bool {
        let h = batch.header;
        if h.is_control() {
            let Ok(Some(kind)) = control_type(batch.bytes) else {
                return true;
            };
            self.markers
                .entry(h.producer_id)
                .or_default()
                .push((h.base_offset, kind));
            if let Some(keys) = self.pending.remove(&h.producer_id)
                && kind == ControlType::Commit
            {
                for (key, offset) in keys {
                    if !self.remember(&key, offset) {
                        return false;
                    }
                }
            }
            return true;
        }
        if !batch.dirty {
            return true;
        }
        let Ok(body) = record_bytes(batch.bytes, self.limits.decompressed_bytes_max) else {
            return true;
        };
        let mut keys: Vec<(Vec<u8>, i64)> = Vec::new();
        let _ = batch::for_each_record(&body, h, |r| {
            if let Some(key) = r.key {
                keys.push((key.to_vec(), r.offset));
            }
            Ok::<_, weir_log::BatchError>(())
        });
        if h.is_transactional() {
            self.pending.entry(h.producer_id).or_default().extend(keys);
            return true;
        }
        keys.iter().all(|(key, offset)| self.remember(key, *offset))
    }

    fn begin_rewrite(&mut self) {
        // Transactions still open at the range's end add nothing.
        self.pending.clear();
        self.txn_kept.clear();
    }

    fn retain_batch(&mut self, batch: &CleanBatch<'_>) -> Retain {
        let h = batch.header;
        let old = batch.segment_max_timestamp < self.horizon_ms;
        if h.is_control() {
            let kept = self.txn_kept.remove(&h.producer_id).unwrap_or(false);
            return if kept || !old {
                Retain::All
            } else {
                Retain::Nothing
            };
        }
        if h.is_transactional() {
            match self.outcome(h.producer_id, h.base_offset) {
                Some(ControlType::Abort) => return Retain::Nothing,
                None => {
                    // Its marker lies past the range: keep it whole.
                    self.txn_kept.insert(h.producer_id, true);
                    return Retain::All;
                }
                Some(ControlType::Commit) => {}
            }
        }
        if h.compression() != 0 {
            let keep = self.keep_any(batch);
            if keep && h.is_transactional() {
                self.txn_kept.insert(h.producer_id, true);
            }
            return if keep { Retain::All } else { Retain::Nothing };
        }
        Retain::Records
    }

    fn retain_record(&mut self, batch: &CleanBatch<'_>, record: &Record<'_>) -> bool {
        let keep = self.keep(batch, record);
        if keep && batch.header.is_transactional() {
            self.txn_kept.insert(batch.header.producer_id, true);
        }
        keep
    }
}

/// What one [`Broker::clean_compacted`] pass did, summed over partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanSummary {
    pub partitions_cleaned: usize,
    pub segments_rewritten: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

impl Broker {
    /// Cleans every partition of every compacted topic that is due (see
    /// `weir_log::Log::clean`), each up to its last stable offset, under
    /// one I/O throttle. A partition that fails is logged and skipped.
    pub fn clean_compacted(&self, limits: &CleanerLimits, throttle: &Throttle) -> CleanSummary {
        let mut summary = CleanSummary::default();
        for topic in self.topics() {
            let config = topic.config();
            if !config.compacted() {
                continue;
            }
            let compaction = config.compaction();
            for partition in 0..topic.partition_count() as i32 {
                match self.clean_partition(&topic, partition, limits, compaction, throttle) {
                    Ok(o) if o.ran => {
                        summary.partitions_cleaned += 1;
                        summary.segments_rewritten += o.segments_rewritten;
                        summary.bytes_before += o.bytes_before;
                        summary.bytes_after += o.bytes_after;
                        summary.records_removed += o.records_removed;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition, %e, "cleaning failed")
                    }
                }
            }
        }
        summary
    }

    fn clean_partition(
        &self,
        topic: &crate::Topic,
        partition: i32,
        limits: &CleanerLimits,
        compaction: crate::config::Compaction,
        throttle: &Throttle,
    ) -> Result<weir_log::CleanOutcome, BrokerError> {
        let log = topic.partition(partition)?;
        let options = weir_log::CleanOptions {
            end_offset_max: topic.last_stable_offset(partition)?,
            ..compaction.options
        };
        let now_ms = self.data_dir().clock().now_ms();
        let mut policy = KafkaCompaction::new(*limits, now_ms, compaction.delete_retention_ms);
        Ok(log.clean(&options, &mut policy, throttle)?)
    }
}
