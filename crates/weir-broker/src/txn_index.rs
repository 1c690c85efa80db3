//! What one partition knows of transactions (KIP-98): which producers have
//! a transaction open in it and from which offset, so the last stable
//! offset (LSO) is known, and which transactions were aborted, so a
//! `read_committed` fetch can list them for the consumer to skip. It is
//! built from batch headers and control records alone (an append, or a
//! scan of the log at open), so it needs no file of its own. The markers
//! themselves are control batches built by [`marker_batch`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use weir_log::BatchError;
use weir_log::batch::{self, BatchBuilder, BatchHeader};

/// A transaction marker's kind, as the control record's key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// An aborted transaction in a partition: a consumer in `read_committed`
/// skips the producer's records from `first_offset` up to the marker at
/// `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// Aborted transactions a partition keeps for fetches; the oldest go
/// first past this (a consumer that far behind sees them as committed
/// data only if it reads records older than every kept entry).
pub const ABORTED_KEPT_MAX: usize = 100_000;

/// Transactions in one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTxns {
    /// Producer id → the first offset of its open transaction here.
    ongoing: BTreeMap<i64, i64>,
    /// By marker offset, oldest first.
    aborted: Vec<AbortedTxn>,
}

impl PartitionTxns {
    /// Takes in one batch written to the partition: `header` with its
    /// offsets assigned, and for a control batch its marker kind.
    pub fn observe(&mut self, header: &BatchHeader, control: Option<ControlType>) {
        if !header.is_transactional() {
            return;
        }
        let pid = header.producer_id;
        if !header.is_control() {
            self.ongoing.entry(pid).or_insert(header.base_offset);
            return;
        }
        let first = self.ongoing.remove(&pid);
        if control == Some(ControlType::Abort) {
            // A marker with nothing open here (written again after a
            // restart) aborts nothing.
            if let Some(first_offset) = first {
                if self.aborted.len() == ABORTED_KEPT_MAX {
                    self.aborted.remove(0);
                }
                self.aborted.push(AbortedTxn {
                    producer_id: pid,
                    first_offset,
                    last_offset: header.base_offset,
                });
            }
        }
    }

    /// Takes in every batch of `bytes` (whole batches as stored, offsets
    /// assigned): for an append, or a scan at open.
    pub fn observe_all(&mut self, mut bytes: &[u8]) -> Result<(), BatchError> {
        while !bytes.is_empty() {
            let header = BatchHeader::parse(bytes)?;
            let n = header.total_bytes().min(bytes.len());
            let control = if header.is_control() {
                control_type(&bytes[..n])?
            } else {
                None
            };
            self.observe(&header, control);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the high watermark when none is open.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.ongoing
            .values()
            .copied()
            .min()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The first offset of producer `producer_id`'s open transaction here.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Aborted transactions a fetch of `[from, upto)` must list: those
    /// whose records may lie in the range.
    pub fn aborted_in(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        // Sorted by marker offset: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < upto)
            .copied()
            .collect()
    }

    /// Forgets what lies wholly below the log start offset.
    pub fn truncate_before(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }
}

/// The marker kind of a control batch (`bytes` is the whole batch): its
/// one record's key is `int16 version, int16 type` (0 abort, 1 commit).
/// `None` for a control type that is not a transaction marker.
pub fn control_type(bytes: &[u8]) -> Result<Option<ControlType>, BatchError> {
    let records = batch::records(bytes)?;
    let key = records
        .first()
        .and_then(|r| r.key)
        .ok_or(BatchError::BadRecord)?;
    if key.len() < 4 {
        return Err(BatchError::BadRecord);
    }
    Ok(match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    })
}

/// A transaction marker as Kafka writes it: a control batch of producer
/// `producer_id` at `producer_epoch` with one record, key `version 0,
/// type`, value `version 0, coordinator epoch`. Offsets are assigned by
/// the log.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = BatchBuilder::new(timestamp_ms)
        .producer(producer_id, producer_epoch, -1)
        .control();
    b.push(timestamp_ms, Some(&key), Some(&value), &[]);
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transactional data batch of `pid` with `n` records at `base`.
    fn data(pid: i64, base: i64, n: i32) -> Vec<u8> {
        let mut b = BatchBuilder::new(0).producer(pid, 0, 0).transactional();
        for _ in 0..n {
            b.push(0, Some(b"k"), Some(b"v"), &[]);
        }
        at(b.build(), base)
    }

    fn at(mut bytes: Vec<u8>, base: i64) -> Vec<u8> {
        batch::stamp(&mut bytes, base, 0, 0);
        bytes
    }

    fn marker(pid: i64, base: i64, commit: bool) -> Vec<u8> {
        at(marker_batch(pid, 0, commit, 0, 0), base)
    }

    #[test]
    fn markers_are_kafkas_control_batches() {
        let m = marker_batch(7, 3, true, 5, 1_000);
        let h = batch::validate(&m).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (7, 3, 1));
        let r = &batch::records(&m).unwrap()[0];
        assert_eq!(r.key, Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value, Some(&[0, 0, 0, 0, 0, 5][..]));
        assert_eq!(control_type(&m).unwrap(), Some(ControlType::Commit));
        let abort = marker_batch(7, 3, false, 5, 1_000);
        assert_eq!(control_type(&abort).unwrap(), Some(ControlType::Abort));
    }

    #[test]
    fn the_stable_offset_waits_for_the_oldest_open_transaction() {
        let mut t = PartitionTxns::default();
        let mut log = Vec::new();
        log.extend(data(1, 0, 2)); // 0-1: producer 1 opens
        log.extend(data(2, 2, 1)); // 2: producer 2 opens
        log.extend(data(1, 3, 1)); // 3
        t.observe_all(&log).unwrap();
        assert_eq!(t.last_stable_offset(4), 0);
        t.observe_all(&marker(1, 4, true)).unwrap(); // 4: 1 commits
        assert_eq!(t.last_stable_offset(5), 2);
        t.observe_all(&marker(2, 5, false)).unwrap(); // 5: 2 aborts
        assert_eq!(t.last_stable_offset(6), 6);
        assert_eq!(
            t.aborted_in(0, 6),
            [AbortedTxn {
                producer_id: 2,
                first_offset: 2,
                last_offset: 5
            }]
        );
        // A plain (non-transactional) batch changes nothing.
        let mut plain = BatchBuilder::new(0);
        plain.push(0, None, Some(b"x"), &[]);
        t.observe_all(&at(plain.build(), 6)).unwrap();
        assert_eq!(t.last_stable_offset(7), 7);
    }

    #[test]
    fn a_fetch_lists_the_aborted_transactions_that_overlap_it() {
        let mut t = PartitionTxns::default();
        // Producer 1 aborts [0, 2], producer 2 aborts [3, 6], producer 1
        // aborts [7, 8].
        let mut log = data(1, 0, 2);
        log.extend(marker(1, 2, false));
        log.extend(data(2, 3, 3));
        log.extend(marker(2, 6, false));
        log.extend(data(1, 7, 1));
        log.extend(marker(1, 8, false));
        t.observe_all(&log).unwrap();
        let firsts = |v: Vec<AbortedTxn>| v.iter().map(|a| a.first_offset).collect::<Vec<_>>();
        assert_eq!(firsts(t.aborted_in(0, 9)), [0, 3, 7]);
        assert_eq!(firsts(t.aborted_in(3, 5)), [3]);
        assert_eq!(firsts(t.aborted_in(2, 3)), [0]);
        assert_eq!(firsts(t.aborted_in(9, 20)), Vec::<i64>::new());
        t.truncate_before(3);
        assert_eq!(firsts(t.aborted_in(0, 9)), [3, 7]);
    }

    #[test]
    fn a_marker_written_again_aborts_nothing_more() {
        let mut t = PartitionTxns::default();
        let mut log = data(1, 0, 1);
        log.extend(marker(1, 1, false));
        log.extend(marker(1, 2, false));
        t.observe_all(&log).unwrap();
        assert_eq!(t.aborted_in(0, 10).len(), 1);
        assert_eq!(t.open_since(1), None);
    }

    #[test]
    fn a_control_batch_without_a_marker_key_is_refused() {
        let mut b = BatchBuilder::new(0).producer(1, 0, -1).control();
        b.push(0, Some(&[0]), None, &[]);
        assert!(control_type(&b.build()).is_err());
        let mut other = BatchBuilder::new(0).producer(1, 0, -1).control();
        other.push(0, Some(&[0, 0, 0, 9]), None, &[]);
        assert_eq!(control_type(&other.build()).unwrap(), None);
    }
}
