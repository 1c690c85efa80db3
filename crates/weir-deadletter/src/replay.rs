//! Replaying dead letters to their origin: each one is produced back to
//! the topic and partition its `weir.dlq.origin.*` headers name, with its
//! original key, value, headers and timestamp plus the replay markers, in
//! the dead-letter topic's order. A call replays at most
//! [`REPLAY_COUNT_MAX`] records and says where to continue; consecutive
//! dead letters bound for the same partition share one batch (at most
//! [`REPLAY_BATCH_BYTES_MAX`] bytes, or the origin's `max.message.bytes`).

use weir_broker::Broker;
use weir_log::batch::BatchBuilder;

use crate::error::DeadLetterError;
use crate::format::{DeadLetter, parse_dead_letter, replay_headers};
use crate::ops::{Scan, origin_of};

/// Most records (dead letters or not) one [`replay`] call looks at.
pub const REPLAY_COUNT_MAX: usize = 1_000;
/// Most bytes of one batch a replay produces.
pub const REPLAY_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Which dead letters to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The record at `offset` of `partition`; it must exist.
    One { partition: i32, offset: i64 },
    /// The records of `partition` from `first_offset` to `last_offset`,
    /// both included (clamped to what the partition holds).
    Range {
        partition: i32,
        first_offset: i64,
        last_offset: i64,
    },
    /// Every record of every partition, up to each one's high watermark
    /// when the call reaches it.
    All,
    /// [`Selection::All`] continued: partition `partition` from `offset`,
    /// then every later partition from its start.
    AllFrom { partition: i32, offset: i64 },
}

/// What one [`replay`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub replayed: u64,
    /// Records of the selection that are not well-formed dead letters;
    /// they stay where they are.
    pub skipped_not_dead_letters: u64,
    /// The rest of the selection when the call stopped at
    /// [`REPLAY_COUNT_MAX`] records; `None` when it is done.
    pub next: Option<Selection>,
}

/// Replays the `selection` of `dlq_topic`'s dead letters to their origins;
/// each produce is durable before the call goes on. A dead letter whose
/// origin topic or partition is gone stops the call with
/// [`DeadLetterError::ReplayStopped`]: the ones before it were replayed.
/// Dead letters stay in the dead-letter topic until [`crate::purge`]d.
pub fn replay(
    broker: &Broker,
    dlq_topic: &str,
    selection: Selection,
) -> Result<ReplayOutcome, DeadLetterError> {
    let topic = broker.topic(dlq_topic)?;
    let partitions = topic.partition_count() as i32;
    // Where to start, and the last offset for a selection within one
    // partition (`None`: to the end of every partition from there on).
    let (first_partition, first_offset, last) = match selection {
        Selection::One { partition, offset } => {
            let log = topic.partition(partition)?;
            let (start, end) = (log.start_offset(), log.high_watermark());
            if offset < start || offset >= end {
                return Err(DeadLetterError::NoSuchRecord {
                    topic: dlq_topic.to_owned(),
                    partition,
                    offset,
                    start,
                    end,
                });
            }
            (partition, offset, Some(offset))
        }
        Selection::Range {
            partition,
            first_offset,
            last_offset,
        } => {
            topic.partition(partition)?;
            (partition, first_offset, Some(last_offset))
        }
        Selection::All => (0, 0, None),
        Selection::AllFrom { partition, offset } => {
            topic.partition(partition)?;
            (partition, offset, None)
        }
    };
    let mut sink = Sink::new(broker);
    let mut outcome = ReplayOutcome {
        replayed: 0,
        skipped_not_dead_letters: 0,
        next: None,
    };
    let mut budget = REPLAY_COUNT_MAX;
    let last_partition = if last.is_some() {
        first_partition
    } else {
        partitions - 1
    };
    for partition in first_partition..=last_partition {
        let log = topic.partition(partition)?;
        let from = if partition == first_partition {
            first_offset
        } else {
            0
        };
        let hwm = log.high_watermark();
        let end = last.map_or(hwm, |l| l.saturating_add(1).min(hwm));
        let scan = Scan {
            log: &log,
            topic: dlq_topic,
            partition,
            decompressed_bytes_max: broker.config().decompressed_bytes_max,
        };
        let mut seen = 0usize;
        let next = scan.each(from, end, budget, |record| {
            seen += 1;
            match parse_dead_letter(record) {
                Ok(dead) => sink.add(&dead, dlq_topic, partition, record.offset),
                Err(_) => {
                    outcome.skipped_not_dead_letters += 1;
                    Ok(())
                }
            }
        });
        let next = match next {
            Ok(next) => next,
            Err(e @ DeadLetterError::ReplayStopped { .. }) => return Err(e),
            Err(e) => {
                // The log could not be read: what was gathered before is
                // still replayed, so the error's count is true.
                sink.flush(dlq_topic)?;
                let offset = match &e {
                    DeadLetterError::Unreadable { offset, .. } => *offset,
                    _ => from,
                };
                return Err(sink.stopped(dlq_topic, partition, offset, e));
            }
        };
        budget -= seen;
        if budget == 0 && next < end {
            outcome.next = Some(match last {
                Some(last_offset) => Selection::Range {
                    partition,
                    first_offset: next,
                    last_offset,
                },
                None => Selection::AllFrom {
                    partition,
                    offset: next,
                },
            });
            break;
        }
        if budget == 0 && partition < last_partition {
            outcome.next = Some(Selection::AllFrom {
                partition: partition + 1,
                offset: 0,
            });
            break;
        }
    }
    sink.flush(dlq_topic)?;
    outcome.replayed = sink.replayed;
    Ok(outcome)
}

/// The batch being gathered for one origin partition, produced when the
/// next dead letter goes elsewhere, would make it too large, or at the end.
struct Sink<'a> {
    broker: &'a Broker,
    target: Option<(String, i32)>,
    batch: Option<BatchBuilder>,
    batch_bytes_max: usize,
    /// Where the first dead letter of `batch` is stored: (partition,
    /// offset) in the dead-letter topic.
    batch_from: (i32, i64),
    /// Records produced and durable.
    replayed: u64,
}

impl<'a> Sink<'a> {
    fn new(broker: &'a Broker) -> Self {
        Self {
            broker,
            target: None,
            batch: None,
            batch_bytes_max: REPLAY_BATCH_BYTES_MAX,
            batch_from: (0, 0),
            replayed: 0,
        }
    }

    /// Gathers the replay of `dead` (stored at `partition`, `offset`),
    /// producing what was gathered first when it goes elsewhere or would
    /// not fit. Errors are [`DeadLetterError::ReplayStopped`].
    fn add(
        &mut self,
        dead: &DeadLetter,
        dlq_topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), DeadLetterError> {
        let origin = &dead.origin;
        let same_target = self
            .target
            .as_ref()
            .is_some_and(|(t, p)| *t == origin.topic && *p == origin.partition);
        if !same_target {
            self.flush(dlq_topic)?;
            let topic = origin_of(self.broker, &origin.topic, origin.partition)
                .map_err(|e| self.stopped(dlq_topic, partition, offset, e))?;
            self.batch_bytes_max = REPLAY_BATCH_BYTES_MAX.min(topic.config().max_message_bytes());
            self.target = Some((origin.topic.clone(), origin.partition));
        }
        let headers = replay_headers(dead, dlq_topic, partition, offset);
        let headers: Vec<(&str, Option<&[u8]>)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        let mut record = BatchBuilder::new(origin.timestamp_ms);
        record.push_nullable(
            origin.timestamp_ms,
            dead.key.as_deref(),
            dead.value.as_deref(),
            &headers,
        );
        // In a shared batch the record's timestamp and offset deltas may
        // take a few more bytes than alone: 16 covers both varints.
        let record_bytes = record.size_bytes() - BatchBuilder::new(0).size_bytes() + 16;
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.size_bytes() + record_bytes > self.batch_bytes_max)
        {
            self.flush(dlq_topic)?;
        }
        if self.batch.is_none() {
            self.batch_from = (partition, offset);
        }
        self.batch
            .get_or_insert_with(|| BatchBuilder::new(origin.timestamp_ms))
            .push_nullable(
                origin.timestamp_ms,
                dead.key.as_deref(),
                dead.value.as_deref(),
                &headers,
            );
        Ok(())
    }

    /// Produces the gathered batch, durable when it returns. An error is
    /// [`DeadLetterError::ReplayStopped`] at the batch's first dead letter.
    fn flush(&mut self, dlq_topic: &str) -> Result<(), DeadLetterError> {
        let (Some(batch), Some((topic, partition))) = (self.batch.take(), self.target.as_ref())
        else {
            return Ok(());
        };
        if let Err(e) = self.broker.produce(topic, *partition, &mut batch.build()) {
            let (p, offset) = self.batch_from;
            return Err(self.stopped(dlq_topic, p, offset, e.into()));
        }
        self.replayed += batch.record_count() as u64;
        Ok(())
    }

    fn stopped(
        &self,
        dlq_topic: &str,
        partition: i32,
        offset: i64,
        source: DeadLetterError,
    ) -> DeadLetterError {
        DeadLetterError::ReplayStopped {
            topic: dlq_topic.to_owned(),
            partition,
            offset,
            replayed: self.replayed,
            source: Box::new(source),
        }
    }
}
