//! Dead-letter operations over the broker that the HTTP API and the CLI
//! call: send a dead letter, list dead-letter topics, read dead letters.
//! (Replaying them is in `replay.rs`.) Each call blocks on disk I/O and is
//! bounded: reads return at most [`READ_COUNT_MAX`] records, and hold at
//! most one read of [`READ_BYTES_MAX`] bytes at a time.

use std::sync::Arc;

use weir_broker::{Broker, BrokerError, Topic, validate_topic_name};
use weir_log::Log;
use weir_log::batch::{BatchBuilder, BatchHeader, Record, parse_records};

use crate::error::{DeadLetterError, cut};
use crate::format::{
    DeadLetter, Failure, FormatError, Origin, dead_letter_headers, dead_letter_topic, origin_topic,
    parse_dead_letter,
};

/// Most records one [`read`] returns, whatever it is asked.
pub const READ_COUNT_MAX: usize = 1_000;
/// Bytes asked of the log per read while scanning a partition.
pub const READ_BYTES_MAX: usize = 1024 * 1024;

/// The failed record as it was read: kept unchanged in its dead letter.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> From<&'a Record<'a>> for Original<'a> {
    fn from(record: &'a Record<'a>) -> Self {
        Self {
            key: record.key,
            value: record.value,
            headers: &record.headers,
        }
    }
}

/// One dead-letter topic, as [`list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTopic {
    pub topic: String,
    /// The topic it is named after (its name without the suffix).
    pub origin_topic: String,
    /// Whether that topic exists now (it may have been deleted since).
    pub origin_exists: bool,
    pub partitions: usize,
    /// Records from log start to the high watermark, over all partitions.
    pub depth: u64,
    /// The earliest first-record timestamp over the partitions; `None`
    /// when every partition is empty.
    pub oldest_timestamp_ms: Option<i64>,
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Dead letters by offset, in order.
    pub dead_letters: Vec<(i64, DeadLetter)>,
    /// Records of the range that are not well-formed dead letters (a Kafka
    /// client may write anything to a dead-letter topic), with why.
    pub not_dead_letters: Vec<(i64, FormatError)>,
    /// Where the next read continues.
    pub next_offset: i64,
}

/// Writes the dead letter of `original`, which failed as `failure` said
/// after being read at `origin`, to partition `origin.partition` of the
/// origin topic's dead-letter topic (`origin.topic` + `suffix`), creating
/// that topic with the origin's partition count on first use. Returns its
/// offset once durable.
pub fn send(
    broker: &Broker,
    suffix: &str,
    original: Original<'_>,
    failure: &Failure,
    origin: &Origin,
) -> Result<i64, DeadLetterError> {
    check_suffix(suffix)?;
    let origin_topic = origin_of(broker, &origin.topic, origin.partition)?;
    let dlq = ensure_topic(broker, &origin_topic, suffix)?;
    let headers = dead_letter_headers(original.headers, failure, origin);
    let headers: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    let now_ms = broker.data_dir().clock().now_ms();
    let mut batch = BatchBuilder::new(now_ms);
    batch.push_nullable(now_ms, original.key, original.value, &headers);
    let info = broker.produce(&dlq.name, origin.partition, &mut batch.build())?;
    Ok(info.base_offset)
}

/// The dead-letter topics: every topic whose name ends with `suffix` (the
/// broker's own `__` topics aside), with its origin topic's name.
fn dead_letter_topics(
    broker: &Broker,
    suffix: &str,
) -> Result<Vec<(Arc<Topic>, String)>, DeadLetterError> {
    check_suffix(suffix)?;
    Ok(broker
        .topics()
        .into_iter()
        .filter(|t| !t.internal)
        .filter_map(|t| {
            let origin = origin_topic(&t.name, suffix)?.to_owned();
            Some((t, origin))
        })
        .collect())
}

/// Records a topic holds, over its partitions.
fn depth(topic: &Topic) -> Result<u64, DeadLetterError> {
    let mut depth = 0u64;
    for p in 0..topic.partition_count() as i32 {
        let log = topic.partition(p)?;
        depth += log
            .high_watermark()
            .saturating_sub(log.start_offset())
            .max(0) as u64;
    }
    Ok(depth)
}

/// Every dead-letter topic with its depth only: what alerts watch, without
/// reading any record.
pub fn depths(broker: &Broker, suffix: &str) -> Result<Vec<(String, u64)>, DeadLetterError> {
    dead_letter_topics(broker, suffix)?
        .into_iter()
        .map(|(topic, _)| Ok((topic.name.clone(), depth(&topic)?)))
        .collect()
}

/// Every topic whose name ends with `suffix` (the broker's own `__` topics
/// aside), with its depth and oldest record.
pub fn list(broker: &Broker, suffix: &str) -> Result<Vec<DeadLetterTopic>, DeadLetterError> {
    let decompressed_bytes_max = broker.config().decompressed_bytes_max;
    let mut out = Vec::new();
    for (topic, origin) in dead_letter_topics(broker, suffix)? {
        let mut oldest_timestamp_ms: Option<i64> = None;
        let partitions = topic.partition_count();
        for p in 0..partitions as i32 {
            let log = topic.partition(p)?;
            let first = first_timestamp_ms(&log, &topic.name, p, decompressed_bytes_max)?;
            oldest_timestamp_ms = match (oldest_timestamp_ms, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        out.push(DeadLetterTopic {
            topic: topic.name.clone(),
            origin_exists: broker.topic(&origin).is_ok(),
            origin_topic: origin,
            partitions,
            depth: depth(&topic)?,
            oldest_timestamp_ms,
        });
    }
    Ok(out)
}

/// Reads up to `count_max` (at most [`READ_COUNT_MAX`]) records of
/// `dlq_topic`'s `partition` from `from_offset` (from the log start if it
/// lies before it), each as a dead letter or the reason it is not one.
pub fn read(
    broker: &Broker,
    dlq_topic: &str,
    partition: i32,
    from_offset: i64,
    count_max: usize,
) -> Result<Page, DeadLetterError> {
    let log = broker.partition(dlq_topic, partition)?;
    let mut page = Page {
        dead_letters: Vec::new(),
        not_dead_letters: Vec::new(),
        next_offset: from_offset,
    };
    let scan = Scan {
        log: &log,
        topic: dlq_topic,
        partition,
        decompressed_bytes_max: broker.config().decompressed_bytes_max,
    };
    page.next_offset = scan.each(
        from_offset,
        log.high_watermark(),
        count_max.min(READ_COUNT_MAX),
        |record| {
            match parse_dead_letter(record) {
                Ok(dead) => page.dead_letters.push((record.offset, dead)),
                Err(e) => page.not_dead_letters.push((record.offset, e)),
            }
            Ok(())
        },
    )?;
    Ok(page)
}

/// A dead-letter suffix must make a valid topic name out of any valid one
/// and never match every topic.
pub(crate) fn check_suffix(suffix: &str) -> Result<(), DeadLetterError> {
    let bad = |reason| {
        Err(DeadLetterError::InvalidSuffix {
            suffix: suffix.to_owned(),
            reason,
        })
    };
    if suffix.is_empty() {
        return bad("empty");
    }
    // Checked as a topic name of its own, with a letter before it so a
    // leading dot is allowed.
    if validate_topic_name(&format!("t{suffix}")).is_err() {
        return bad("only ASCII letters, digits, '.', '_' and '-', at most 237 bytes");
    }
    Ok(())
}

/// The origin topic, checked: it exists, is not internal, and has
/// `partition`.
pub(crate) fn origin_of(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<Arc<Topic>, DeadLetterError> {
    let origin = broker.topic(topic).map_err(|e| match e {
        BrokerError::UnknownTopic { topic } => DeadLetterError::UnknownOrigin { topic },
        other => other.into(),
    })?;
    if origin.internal {
        return Err(DeadLetterError::InternalOrigin {
            topic: topic.to_owned(),
        });
    }
    if partition < 0 || partition as usize >= origin.partition_count() {
        return Err(DeadLetterError::UnknownOriginPartition {
            topic: topic.to_owned(),
            partition,
        });
    }
    Ok(origin)
}

/// The dead-letter topic of `origin`, created with its partition count if
/// it is not there yet.
fn ensure_topic(
    broker: &Broker,
    origin: &Topic,
    suffix: &str,
) -> Result<Arc<Topic>, DeadLetterError> {
    let name = dead_letter_topic(&origin.name, suffix);
    let origin_partitions = origin.partition_count();
    let topic = match broker.topic(&name) {
        Ok(topic) => topic,
        Err(BrokerError::UnknownTopic { .. }) => {
            match broker.create_topic(&name, origin_partitions as i64, -1, &[], false) {
                Ok(topic) => topic,
                // Another sender created it first.
                Err(BrokerError::TopicAlreadyExists { .. }) => broker.topic(&name)?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    // More partitions than the origin (added later by hand) are harmless:
    // partition p still exists.
    if topic.partition_count() < origin_partitions {
        return Err(DeadLetterError::PartitionMismatch {
            topic: name,
            partitions: topic.partition_count(),
            origin_partitions,
        });
    }
    Ok(topic)
}

/// The timestamp of the first record of `log`, or `None` when it has none
/// below its high watermark (or only transaction markers in its first
/// read).
fn first_timestamp_ms(
    log: &Log,
    topic: &str,
    partition: i32,
    decompressed_bytes_max: usize,
) -> Result<Option<i64>, DeadLetterError> {
    let scan = Scan {
        log,
        topic,
        partition,
        decompressed_bytes_max,
    };
    let mut first = None;
    scan.each(log.start_offset(), log.high_watermark(), 1, |record| {
        first = Some(record.timestamp);
        Ok(())
    })?;
    Ok(first)
}

/// A bounded walk over the records of one partition.
pub(crate) struct Scan<'a> {
    pub log: &'a Log,
    pub topic: &'a str,
    pub partition: i32,
    pub decompressed_bytes_max: usize,
}

impl Scan<'_> {
    /// Calls `f` with each record from `from_offset` (or the log start)
    /// below `end_offset`, at most `count_max` of them, skipping
    /// transaction markers. Returns the offset to continue from.
    pub fn each(
        &self,
        from_offset: i64,
        end_offset: i64,
        count_max: usize,
        mut f: impl FnMut(&Record<'_>) -> Result<(), DeadLetterError>,
    ) -> Result<i64, DeadLetterError> {
        let mut at = from_offset.max(self.log.start_offset());
        let mut seen = 0usize;
        while seen < count_max && at < end_offset {
            let read = self
                .log
                .read(at, READ_BYTES_MAX)
                .map_err(BrokerError::from)?;
            if read.bytes.is_empty() {
                break;
            }
            let mut pos = 0;
            while pos < read.bytes.len() && seen < count_max && at < end_offset {
                let header = BatchHeader::parse(&read.bytes[pos..])
                    .map_err(|e| self.unreadable(at, e.to_string()))?;
                let whole = &read.bytes[pos..(pos + header.total_bytes()).min(read.bytes.len())];
                pos += header.total_bytes();
                if header.last_offset() < at {
                    continue;
                }
                if !header.is_control() {
                    let body =
                        weir_broker::compression::record_bytes(whole, self.decompressed_bytes_max)
                            .map_err(|e| self.unreadable(header.base_offset, e.to_string()))?;
                    let records = parse_records(&body, &header)
                        .map_err(|e| self.unreadable(header.base_offset, e.to_string()))?;
                    for mut record in records {
                        if record.offset < at {
                            continue;
                        }
                        if seen == count_max || record.offset >= end_offset {
                            return Ok(at);
                        }
                        if header.is_log_append_time() {
                            record.timestamp = header.max_timestamp;
                        }
                        f(&record)?;
                        seen += 1;
                        at = record.offset + 1;
                    }
                }
                at = at.max((header.last_offset() + 1).min(end_offset));
            }
            if pos >= read.bytes.len() {
                // Past whatever the read stepped over (compacted gaps).
                at = at.max(read.next_offset.min(end_offset));
            }
        }
        Ok(at)
    }

    fn unreadable(&self, offset: i64, reason: String) -> DeadLetterError {
        DeadLetterError::Unreadable {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset,
            reason: cut(reason),
        }
    }
}
