//! The transaction coordinator's storage on the broker ([`weir_txn::TxnIo`]):
//! its records in the internal topic `__transaction_state` (one
//! partition, Kafka's record layout, appended and synced before the
//! coordinator takes a transition), the markers in the transaction's
//! partitions (all written, then all waited for), and producer ids from
//! the broker's allocator. Replaying the topic at start gives the
//! coordinator its state back ([`Broker::transaction_log`]).
//!
//! Partitions of `__consumer_offsets` get no marker from here: offsets
//! committed in a transaction are the group coordinator's to apply, and
//! the server's [`TxnIo`] passes those partitions to it.

use std::collections::BTreeSet;

use weir_log::batch::{self, BatchBuilder};
use weir_txn::{LogRecord, TRANSACTION_LOG_TOPIC, TopicPartition, TxnError, TxnIo};

use crate::Broker;
use crate::error::BrokerError;

/// The topic of committed offsets, whose partitions take no marker here.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// A transaction log record as stored: its key and value (none for a
/// tombstone).
pub type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// Bytes of an internal topic read per step while replaying it.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

fn storage(e: impl std::fmt::Display) -> TxnError {
    TxnError::Storage(e.to_string())
}

/// The coordinator's storage over one broker.
#[derive(Debug, Clone, Copy)]
pub struct BrokerTxnIo<'a> {
    broker: &'a Broker,
}

impl<'a> BrokerTxnIo<'a> {
    /// Storage over `broker`. The transaction log topic is created by the
    /// first append (as Kafka creates it on first use).
    pub fn new(broker: &'a Broker) -> Self {
        Self { broker }
    }
}

impl TxnIo for BrokerTxnIo<'_> {
    fn allocate_producer_id(&self) -> Result<i64, TxnError> {
        self.broker
            .init_producer_id(-1, -1)
            .map(|(id, _)| id)
            .map_err(storage)
    }

    fn append(&self, record: &LogRecord) -> Result<(), TxnError> {
        self.broker
            .append_internal_record(
                TRANSACTION_LOG_TOPIC,
                &record.key(),
                record.value().as_deref(),
            )
            .map_err(storage)
    }

    fn append_lazily(&self, record: &LogRecord) -> Result<(), TxnError> {
        self.broker
            .append_internal_record_nowait(
                TRANSACTION_LOG_TOPIC,
                &record.key(),
                record.value().as_deref(),
            )
            .map(|_| ())
            .map_err(storage)
    }

    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), TxnError> {
        // All written first, so their syncs share rounds; then all waited.
        let mut written = Vec::with_capacity(partitions.len());
        for tp in partitions.iter().filter(|tp| tp.topic != OFFSETS_TOPIC) {
            match self.broker.write_marker(
                &tp.topic,
                tp.partition,
                producer_id,
                producer_epoch,
                commit,
                0,
            ) {
                Ok(p) => written.push(p),
                // A partition deleted since it was added has nothing to
                // mark; anything else fails the phase (it is retried).
                Err(BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. }) => {}
                Err(e) => return Err(storage(e)),
            }
        }
        for p in written {
            p.wait().map_err(storage)?;
        }
        Ok(())
    }
}

impl Broker {
    /// Every record of the transaction log, oldest first, as (key, value):
    /// what [`weir_txn::TxnCoordinator::recover`] replays. Empty when the
    /// topic does not exist yet.
    pub fn transaction_log(&self) -> Result<Vec<RawRecord>, BrokerError> {
        let mut out = Vec::new();
        self.read_internal_records(TRANSACTION_LOG_TOPIC, |_, key, value| {
            if let Some(key) = key {
                out.push((key.to_vec(), value.map(<[u8]>::to_vec)));
            }
        })?;
        Ok(out)
    }

    /// Appends one record to partition 0 of internal topic `topic`
    /// (created, with one partition and no retention, on first use; the
    /// transaction log compacted) and waits until it is durable: the
    /// coordinators' logs.
    pub fn append_internal_record(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), BrokerError> {
        let (log, end) = self.append_internal_record_nowait(topic, key, value)?;
        Ok(log.wait_durable(end)?)
    }

    /// Like [`Broker::append_internal_record`], but returns once the record
    /// is written (in order with the log's other records), with the log
    /// and the offset it is durable below once synced.
    pub fn append_internal_record_nowait(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(weir_log::Log, i64), BrokerError> {
        let now = self.data_dir().clock().now_ms();
        let mut b = BatchBuilder::new(now);
        b.push(now, Some(key), value, &[]);
        // The transaction log keeps only each transactional id's latest
        // record (recovery lets the last one win, and a tombstone forget),
        // so it is compacted, as Kafka's is; the pending transactional
        // offsets add up per producer across records, so compaction would
        // lose some, and they are only kept, never deleted.
        let configs: &[(&str, &str)] = if topic == TRANSACTION_LOG_TOPIC {
            &[("cleanup.policy", "compact")]
        } else {
            &[("retention.ms", "-1")]
        };
        self.ensure_internal_topic(topic, 1, configs)?;
        let log = self.partition(topic, 0)?;
        let info = log.append_nowait(&mut b.build())?;
        Ok((log, info.last_offset + 1))
    }

    /// Calls `f` with the offset, key and value of every record of
    /// partition 0 of internal topic `topic`, oldest first; nothing when
    /// the topic does not exist yet.
    pub fn read_internal_records(
        &self,
        topic: &str,
        mut f: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
    ) -> Result<(), BrokerError> {
        let log = match self.partition(topic, 0) {
            Ok(log) => log,
            Err(BrokerError::UnknownTopic { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut offset = log.start_offset();
        loop {
            let read = log.read(offset, REPLAY_READ_BYTES)?;
            if read.bytes.is_empty() {
                return Ok(());
            }
            let mut pos = 0;
            while pos < read.bytes.len() {
                let header = batch::BatchHeader::parse(&read.bytes[pos..])
                    .map_err(weir_log::LogError::from)?;
                let end = pos + header.total_bytes();
                for r in batch::records(&read.bytes[pos..end]).map_err(weir_log::LogError::from)? {
                    // A first batch may start before the read offset.
                    if r.offset >= offset {
                        f(r.offset, r.key, r.value);
                    }
                }
                pos = end;
            }
            offset = read.next_offset;
        }
    }
}
