//! A partition's producer and transaction state across restarts: rebuilt
//! at open from the log's newest snapshot ([`weir_log::Log::write_snapshot`])
//! plus the batches after it, and snapshotted again by the broker's
//! maintenance pass once the tail after the last snapshot passes
//! [`SNAPSHOT_INTERVAL_BYTES`] or a segment rolled, so a reopen replays
//! about that much at most. Nothing is forgotten: a producer silent for
//! long keeps its sequence, a long transaction keeps the stable offset
//! back, and an old abort keeps its records hidden from `read_committed`
//! readers.
//!
//! The payload is JSON of the state (a few dozen bytes per producer and
//! per aborted transaction kept), written under the partition's locks so
//! it matches the log's end at that moment.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use weir_log::batch::BatchHeader;

use crate::error::BrokerError;
use crate::producers::{BatchMeta, PartitionProducers};
use crate::topic::{Partition, lock_txns};
use crate::txn_index::PartitionTxns;

/// How much of the log's tail a reopen replays at most, when snapshots
/// are taken on time.
pub const SNAPSHOT_INTERVAL_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes read per step while replaying the tail.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    producers: PartitionProducers,
    txns: PartitionTxns,
}

/// A partition's state at open: from its newest snapshot, then every
/// batch after it (every batch of the log when it has no usable snapshot).
/// Returns the state and the snapshot's offset.
pub(crate) fn recover(
    log: &weir_log::Log,
) -> Result<(PartitionProducers, PartitionTxns, Option<i64>), BrokerError> {
    let snapshot = match log.latest_snapshot()? {
        Some((offset, bytes)) => match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) => Some((offset, s)),
            Err(e) => {
                tracing::warn!(log = log.name(), offset, %e, "passing over an unreadable snapshot");
                None
            }
        },
        None => None,
    };
    let (mut producers, mut txns, from, at) = match snapshot {
        Some((offset, s)) => (s.producers, s.txns, offset, Some(offset)),
        // Never snapshotted (new, or from before snapshots): all of it.
        None => (
            PartitionProducers::default(),
            PartitionTxns::default(),
            log.start_offset(),
            None,
        ),
    };
    let start = log.start_offset();
    txns.truncate_before(start);
    let mut offset = from.max(start);
    loop {
        let read = log.read(offset, REPLAY_READ_BYTES)?;
        if read.bytes.is_empty() {
            break;
        }
        let mut bytes = &read.bytes[..];
        while !bytes.is_empty() {
            let header = BatchHeader::parse(bytes).map_err(weir_log::LogError::from)?;
            let n = header.total_bytes().min(bytes.len());
            // A read starts at the batch holding `offset`: one the
            // snapshot already counts is skipped (snapshots are taken at
            // batch boundaries).
            if header.base_offset >= from {
                if header.producer_id >= 0 && header.base_sequence >= 0 {
                    producers.record(
                        header.producer_id,
                        header.producer_epoch,
                        BatchMeta::of(&header),
                    );
                }
                txns.observe_all(&bytes[..n])
                    .map_err(weir_log::LogError::from)?;
            }
            bytes = &bytes[n..];
        }
        offset = read.next_offset;
    }
    Ok((producers, txns, at))
}

impl Partition {
    /// Snapshots the partition's state when the tail a reopen would replay
    /// passes [`SNAPSHOT_INTERVAL_BYTES`] or leaves the active segment, or
    /// with `always` when anything was appended since the last one;
    /// returns whether it wrote one.
    pub(crate) fn snapshot_if_due(&self, always: bool) -> Result<bool, BrokerError> {
        let last = self.snapshot_offset.load(Ordering::Acquire);
        let due = always || last < self.log.recent_offset(SNAPSHOT_INTERVAL_BYTES);
        if !due || self.log.end_offset() == last {
            return Ok(false);
        }
        self.snapshot()?;
        Ok(true)
    }

    /// Writes a snapshot of the partition's state at the log's end now.
    pub(crate) fn snapshot(&self) -> Result<(), BrokerError> {
        let (offset, payload) = {
            // Every batch that changes the state is appended under the
            // producer lock: the end read under it matches the state.
            let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
            let txns = lock_txns(self);
            let offset = self.log.end_offset();
            let payload = serde_json::to_vec(&SnapshotRef {
                producers: &producers,
                txns: &txns,
            })
            .map_err(|e| BrokerError::Registry {
                reason: format!("encoding a partition snapshot: {e}"),
            })?;
            (offset, payload)
        };
        self.log.write_snapshot(offset, &payload)?;
        self.snapshot_offset.store(offset, Ordering::Release);
        Ok(())
    }
}

/// [`Snapshot`] borrowed, for writing.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    producers: &'a PartitionProducers,
    txns: &'a PartitionTxns,
}
