//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98/447):
//! held per producer until the transaction ends, durably, in the internal
//! topic `__weir_txn_offsets` (a record per commit, keyed by producer id;
//! a null value clears the producer's), applied to the group's committed
//! offsets when the commit marker reaches `__consumer_offsets`, dropped on
//! abort. Replayed at start, so a transaction decided before a stop
//! applies its offsets when its markers are written again.

use std::collections::HashMap;
use std::sync::Mutex;

use weir_broker::Broker;
use weir_groups::{CommittedOffset, Coordinator, TopicPartition};
use weir_txn::TxnError;

/// The internal topic of pending transactional offsets.
pub(crate) const PENDING_TOPIC: &str = "__weir_txn_offsets";

/// One pending offset: its group, partition and offset.
pub(crate) type PendingOffset = (String, TopicPartition, CommittedOffset);

fn storage(e: impl std::fmt::Display) -> TxnError {
    TxnError::Storage(e.to_string())
}

/// Pending offsets by producer id.
#[derive(Debug, Default)]
pub(crate) struct PendingOffsets {
    by_producer: Mutex<HashMap<i64, Vec<PendingOffset>>>,
}

impl PendingOffsets {
    /// Replays the topic (created on first use, as Kafka creates its
    /// transaction topics).
    pub fn open(broker: &Broker) -> Result<Self, weir_broker::BrokerError> {
        let mut by_producer: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        broker.read_internal_records(PENDING_TOPIC, |offset, key, value| {
            let Some(pid) = key.and_then(|k| k.try_into().ok()).map(i64::from_be_bytes) else {
                tracing::warn!(
                    offset,
                    "skipping a pending offsets record without a producer id"
                );
                return;
            };
            match value.map(decode) {
                None => {
                    by_producer.remove(&pid);
                }
                Some(Some(entries)) => by_producer.entry(pid).or_default().extend(entries),
                Some(None) => {
                    tracing::warn!(offset, "skipping an unreadable pending offsets record");
                }
            }
        })?;
        Ok(Self {
            by_producer: Mutex::new(by_producer),
        })
    }

    /// Holds `entries` for producer `producer_id`, durably.
    pub fn add(
        &self,
        broker: &Broker,
        producer_id: i64,
        entries: Vec<PendingOffset>,
    ) -> Result<(), TxnError> {
        append(broker, producer_id, Some(&encode(&entries)))?;
        self.lock().entry(producer_id).or_default().extend(entries);
        Ok(())
    }

    /// The producer's transaction ended: on commit its offsets become the
    /// groups' committed offsets (durably) first; either way they are
    /// then cleared, durably. Doing it again does nothing more.
    pub fn settle(
        &self,
        broker: &Broker,
        groups: &Coordinator,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), TxnError> {
        let Some(entries) = self.lock().get(&producer_id).cloned() else {
            return Ok(());
        };
        if commit {
            let mut by_group: HashMap<&str, Vec<(TopicPartition, CommittedOffset)>> =
                HashMap::new();
            for (group, tp, offset) in &entries {
                by_group
                    .entry(group)
                    .or_default()
                    .push((tp.clone(), offset.clone()));
            }
            for (group, offsets) in by_group {
                groups.offsets().commit(group, &offsets).map_err(storage)?;
            }
        }
        append(broker, producer_id, None)?;
        self.lock().remove(&producer_id);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<PendingOffset>>> {
        self.by_producer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends one record and waits for it to be durable.
fn append(broker: &Broker, producer_id: i64, value: Option<&[u8]>) -> Result<(), TxnError> {
    broker
        .append_internal_record(PENDING_TOPIC, &producer_id.to_be_bytes(), value)
        .map_err(storage)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Entries as `count u32`, then per entry: group, topic (u32 length and
/// bytes), partition i32, offset i64, leader epoch i32, metadata (u32
/// length and bytes), commit time i64.
fn encode(entries: &[PendingOffset]) -> Vec<u8> {
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    for (group, tp, o) in entries {
        put_str(&mut out, group);
        put_str(&mut out, &tp.topic);
        out.extend_from_slice(&tp.partition.to_be_bytes());
        out.extend_from_slice(&o.offset.to_be_bytes());
        out.extend_from_slice(&o.leader_epoch.to_be_bytes());
        put_str(&mut out, &o.metadata);
        out.extend_from_slice(&o.commit_timestamp_ms.to_be_bytes());
    }
    out
}

fn decode(mut b: &[u8]) -> Option<Vec<PendingOffset>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn u32_(b: &mut &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(take(b, 4)?.try_into().ok()?))
    }
    fn i64_(b: &mut &[u8]) -> Option<i64> {
        Some(i64::from_be_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn string(b: &mut &[u8]) -> Option<String> {
        let n = u32_(b)? as usize;
        String::from_utf8(take(b, n)?.to_vec()).ok()
    }
    let count = u32_(&mut b)? as usize;
    let mut out = Vec::with_capacity(count.min(b.len()));
    for _ in 0..count {
        let group = string(&mut b)?;
        let topic = string(&mut b)?;
        let partition = u32_(&mut b)? as i32;
        let offset = i64_(&mut b)?;
        let leader_epoch = u32_(&mut b)? as i32;
        let metadata = string(&mut b)?;
        let commit_timestamp_ms = i64_(&mut b)?;
        out.push((
            group,
            TopicPartition { topic, partition },
            CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
            },
        ));
    }
    b.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_refused() {
        let entries = vec![
            (
                "g".to_owned(),
                TopicPartition {
                    topic: "in".into(),
                    partition: 2,
                },
                CommittedOffset {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: "m".into(),
                    commit_timestamp_ms: 7,
                },
            );
            2
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), Some(entries));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut extra = bytes;
        extra.push(0);
        assert_eq!(decode(&extra), None);
    }
}
