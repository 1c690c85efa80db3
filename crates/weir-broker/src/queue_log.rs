//! What the queue manager (`weir-queue`'s `Queues`) needs of the broker:
//! its journal in the internal topic `__share_group_state` (one
//! partition, small segments so a snapshot lets old ones go, batches
//! appended and synced before the call returns, or appended now and
//! waited for later so that concurrent calls share a sync), and the records of a
//! partition as a `read_committed` consumer sees them (no control batch,
//! no aborted record, nothing at or past the last stable offset).

use weir_log::batch::{self, BatchBuilder};

use crate::Broker;
use crate::error::BrokerError;

/// The queue manager's journal (Kafka keeps share-group state in a topic
/// of this name).
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// The queue manager's snapshot file in the data directory.
pub const SHARE_STATE_SNAPSHOT_FILE: &str = ".share-group-state-snapshot";
/// Segment size of the journal: small, so a snapshot frees space soon.
const SHARE_STATE_SEGMENT_BYTES: &str = "8388608";
/// Bytes read per step while reading a partition for claims: a claim
/// asks for a few records, and a read returns at least one whole batch
/// however large, so more would mostly be read and thrown away.
const READ_BYTES: usize = 64 * 1024;
/// Most bytes one compressed batch may decompress to when read back.
const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// What a journal read calls with each record's offset, key and value.
pub type ShareStateVisitor<'a> = dyn FnMut(i64, &[u8], &[u8]) + 'a;

/// A record as a queue consumer gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Broker {
    /// Appends `records` (key, value) in one batch to the share-state
    /// journal (created on first use) and waits until they are durable.
    pub fn append_share_state(&self, records: &[(Vec<u8>, Vec<u8>)]) -> Result<(), BrokerError> {
        let end = self.append_share_state_nowait(records)?;
        self.wait_share_state(end)
    }

    /// Appends `records` (key, value) in one batch to the share-state
    /// journal (created on first use) without waiting for the sync;
    /// returns the journal's end after them, for
    /// [`Broker::wait_share_state`].
    pub fn append_share_state_nowait(
        &self,
        records: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<i64, BrokerError> {
        if records.is_empty() {
            return self.share_state_end();
        }
        let now = self.data_dir().clock().now_ms();
        let mut b = BatchBuilder::new(now);
        for (k, v) in records {
            b.push(now, Some(k), Some(v), &[]);
        }
        self.ensure_share_state(SHARE_STATE_SEGMENT_BYTES)?;
        let log = self.partition(SHARE_STATE_TOPIC, 0)?;
        let info = log.append_nowait(&mut b.build())?;
        Ok(info.last_offset + 1)
    }

    /// Blocks until every journal record below `end` is durable (one sync
    /// round serves every waiter); an error is final, the journal having
    /// turned read-only.
    pub fn wait_share_state(&self, end: i64) -> Result<(), BrokerError> {
        match self.partition(SHARE_STATE_TOPIC, 0) {
            Ok(log) => Ok(log.wait_durable(end)?),
            Err(BrokerError::UnknownTopic { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Resolves once every journal record below `end` is durable, holding
    /// no thread: the async form of [`Broker::wait_share_state`].
    pub async fn share_state_durable(&self, end: i64) -> Result<(), BrokerError> {
        match self.partition(SHARE_STATE_TOPIC, 0) {
            Ok(log) => Ok(log.until_durable(end).await?),
            Err(BrokerError::UnknownTopic { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates the share-state journal with `segment_bytes` segments if it
    /// does not exist (the first append does, with 8 MiB; tests ask for
    /// small ones to see segments go).
    pub fn ensure_share_state(&self, segment_bytes: &str) -> Result<(), BrokerError> {
        self.ensure_internal_topic(
            SHARE_STATE_TOPIC,
            1,
            &[
                ("retention.ms", "-1"),
                ("segment.bytes", segment_bytes),
                ("max.message.bytes", segment_bytes),
            ],
        )?;
        Ok(())
    }

    /// The journal's first offset kept (0 before the first record).
    pub fn share_state_start(&self) -> Result<i64, BrokerError> {
        match self.partition(SHARE_STATE_TOPIC, 0) {
            Ok(log) => Ok(log.start_offset()),
            Err(BrokerError::UnknownTopic { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The offset the next journal record gets (0 before the first).
    pub fn share_state_end(&self) -> Result<i64, BrokerError> {
        match self.partition(SHARE_STATE_TOPIC, 0) {
            Ok(log) => Ok(log.end_offset()),
            Err(BrokerError::UnknownTopic { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Calls `f` with every journal record from `from` on, oldest first.
    pub fn read_share_state(
        &self,
        from: i64,
        f: &mut ShareStateVisitor<'_>,
    ) -> Result<(), BrokerError> {
        self.read_internal_records(SHARE_STATE_TOPIC, |offset, key, value| {
            if offset >= from {
                f(offset, key.unwrap_or_default(), value.unwrap_or_default());
            }
        })
    }

    /// Deletes the journal's whole segments below `offset`.
    pub fn truncate_share_state(&self, offset: i64) -> Result<(), BrokerError> {
        match self.partition(SHARE_STATE_TOPIC, 0) {
            Ok(log) => {
                log.delete_segments_before(offset)?;
                Ok(())
            }
            Err(BrokerError::UnknownTopic { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The records of a partition in `[from, upto)` that a
    /// `read_committed` consumer sees, at most `max` of them; `upto` is
    /// capped at the last stable offset. Offsets in the range without such
    /// a record (markers, aborted records) are simply missing.
    pub fn committed_records(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        upto: i64,
        max: usize,
    ) -> Result<Vec<OwnedRecord>, BrokerError> {
        let log = self.partition(topic, partition)?;
        let upto = upto.min(self.last_stable_offset(topic, partition)?);
        let from = from.max(log.start_offset());
        let aborted = self.aborted_transactions(topic, partition, from, upto)?;
        let mut out = Vec::new();
        let mut at = from;
        while at < upto && out.len() < max {
            let read = log.read(at, READ_BYTES)?;
            if read.bytes.is_empty() {
                break;
            }
            let mut pos = 0;
            while pos < read.bytes.len() {
                let h = batch::BatchHeader::parse(&read.bytes[pos..])
                    .map_err(weir_log::LogError::from)?;
                let end = pos + h.total_bytes();
                let whole = &read.bytes[pos..end];
                pos = end;
                // Batches wholly outside the range are not decoded.
                if h.base_offset >= upto {
                    break;
                }
                if h.last_offset() < at {
                    continue;
                }
                let aborted_batch = h.is_transactional()
                    && aborted.iter().any(|a| {
                        a.producer_id == h.producer_id
                            && a.first_offset <= h.base_offset
                            && h.base_offset < a.last_offset
                    });
                if h.is_control() || aborted_batch {
                    continue;
                }
                let body = crate::compression::record_bytes(whole, DECOMPRESSED_BYTES_MAX)
                    .map_err(|source| BrokerError::InvalidRecords {
                        topic: topic.to_owned(),
                        source,
                    })?;
                let records = batch::parse_records(&body, &h).map_err(|source| {
                    BrokerError::CorruptMessage {
                        topic: topic.to_owned(),
                        source,
                    }
                })?;
                let append_time = h.is_log_append_time().then_some(h.max_timestamp);
                for r in records {
                    if r.offset >= at && r.offset < upto && out.len() < max {
                        out.push(OwnedRecord {
                            offset: r.offset,
                            timestamp_ms: append_time.unwrap_or(r.timestamp),
                            key: r.key.map(<[u8]>::to_vec),
                            value: r.value.map(<[u8]>::to_vec),
                            headers: r
                                .headers
                                .iter()
                                .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
                                .collect(),
                        });
                    }
                }
            }
            at = read.next_offset;
        }
        Ok(out)
    }
}
