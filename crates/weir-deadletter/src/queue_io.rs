//! The queue manager's storage on the broker ([`weir_queue::QueueIo`]):
//! its journal in `__share_group_state`, its snapshot in a file of the
//! data directory, and its dead letters in the origin topic's dead-letter
//! topic, with the origin headers (group, partition, offset, deliveries
//! as attempts, and the reason). It lives here because dead letters are
//! this crate's; the journal is the broker's (`weir_broker::queue_log`).

use std::sync::Arc;

use weir_broker::Broker;
use weir_broker::queue_log::SHARE_STATE_SNAPSHOT_FILE;
use weir_queue::{DeadLetter, DeadLetterReason, JournalRecord, JournalVisitor, QueueIo, QueueKey};

use crate::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
use crate::ops::{Original, send};

/// The queue manager's storage over one broker.
#[derive(Debug, Clone)]
pub struct BrokerQueueIo {
    broker: Arc<Broker>,
}

impl BrokerQueueIo {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl QueueIo for BrokerQueueIo {
    fn append(&self, records: &[JournalRecord]) -> Result<(), String> {
        self.broker.append_share_state(records).map_err(text)
    }

    fn append_nowait(&self, records: &[JournalRecord]) -> Result<i64, String> {
        self.broker.append_share_state_nowait(records).map_err(text)
    }

    fn wait_durable(&self, end: i64) -> Result<(), String> {
        self.broker.wait_share_state(end).map_err(text)
    }

    fn journal_end(&self) -> Result<i64, String> {
        self.broker.share_state_end().map_err(text)
    }

    fn read_journal(&self, from: i64, f: &mut JournalVisitor<'_>) -> Result<(), String> {
        self.broker.read_share_state(from, f).map_err(text)
    }

    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), String> {
        self.broker
            .data_dir()
            .write_meta(SHARE_STATE_SNAPSHOT_FILE, bytes)
            .map_err(text)
    }

    fn read_snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        self.broker
            .data_dir()
            .read_meta(SHARE_STATE_SNAPSHOT_FILE)
            .map_err(text)
    }

    fn truncate_before(&self, offset: i64) -> Result<(), String> {
        self.broker.truncate_share_state(offset).map_err(text)
    }

    /// Writes each letter's record, as the log has it, to the dead-letter
    /// topic. A record the log no longer has (retention took it) has
    /// nothing to keep and is passed over.
    fn dead_letter(&self, key: &QueueKey, letters: &[DeadLetter]) -> Result<(), String> {
        let now_ms = self.broker.data_dir().clock().now_ms();
        for letter in letters {
            let found = self
                .broker
                .committed_records(
                    &key.topic,
                    key.partition,
                    letter.offset,
                    letter.offset + 1,
                    1,
                )
                .map_err(text)?;
            let Some(record) = found.into_iter().next() else {
                continue;
            };
            let (error, kind) = match letter.reason {
                DeadLetterReason::Rejected => (
                    format!("rejected by a consumer of queue group {:?}", key.group),
                    ErrorKind::Permanent,
                ),
                DeadLetterReason::DeliveryLimit => (
                    format!(
                        "delivered {} times, the delivery limit of queue group {:?}",
                        letter.deliveries, key.group
                    ),
                    ErrorKind::Transient,
                ),
            };
            let failure = Failure {
                error,
                kind,
                attempts: u32::from(letter.deliveries),
                first_failure_ms: now_ms,
                last_failure_ms: now_ms,
                group: key.group.clone(),
            };
            let origin = Origin {
                topic: key.topic.clone(),
                partition: key.partition,
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
            };
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            let original = Original {
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &headers,
            };
            send(&self.broker, DEFAULT_SUFFIX, original, &failure, &origin).map_err(text)?;
        }
        Ok(())
    }
}
