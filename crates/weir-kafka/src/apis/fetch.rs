//! Fetch: whole stored batches from each partition up to its high
//! watermark, within `max_bytes` and each partition's limit as KIP-74 has
//! it (only the first batch of the first partition with data may pass
//! them, so a consumer always makes progress), and a long poll
//! that waits for new records until `min_bytes` is met or `max_wait_ms`
//! passes. A `read_committed` fetch (isolation level 1) stops at the last
//! stable offset and lists the aborted transactions in what it returns,
//! so the consumer skips their records. A partition whose
//! `current_leader_epoch` (v9+) is not this node's is refused as Kafka's
//! leader refuses it (`leader_epoch::check_current`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId};
use weir_log::LogError;
use weir_log::batch::BatchHeader;

use super::{Caller, blocking, leader_epoch, topic_name};
use crate::Shared;
use crate::authz::Read;
use crate::codes::{Code, for_broker_error, for_log_error};
use crate::conn::{ConnError, decode, encode};

/// What one pass over the requested partitions found.
struct Pass {
    topics: Vec<FetchableTopicResponse>,
    bytes: usize,
    errors: bool,
}

/// One requested topic, as plain values for the blocking pass: its name
/// (`None` for an id no topic has, KIP-516), its id, and its partitions.
struct WantedTopic {
    name: Option<String>,
    /// The caller may not read the topic: each partition is refused.
    denied: bool,
    id: uuid::Uuid,
    partitions: Vec<WantedPartition>,
}

/// One requested partition: where to read from, how much, and the leader
/// epoch the consumer believes current (KIP-320; -1 for none).
struct WantedPartition {
    index: i32,
    offset: i64,
    bytes_max: usize,
    current_leader_epoch: i32,
}

type Wanted = Vec<WantedTopic>;

/// Keeps the whole batches of `bytes` that start below `end`; returns
/// the offset after the last one kept (`None` when none is dropped).
fn cut_at(bytes: &mut Vec<u8>, end: i64) -> Option<i64> {
    let mut pos = 0;
    while pos < bytes.len() {
        let header = BatchHeader::parse(&bytes[pos..]).ok()?;
        if header.base_offset >= end {
            bytes.truncate(pos);
            return Some(end);
        }
        pos += header.total_bytes();
    }
    None
}

fn read_all(shared: &Shared, wanted: &Wanted, max_bytes: usize, committed: bool) -> Pass {
    let mut pass = Pass {
        topics: Vec::with_capacity(wanted.len()),
        bytes: 0,
        errors: false,
    };
    for wanted in wanted {
        let mut topic = FetchableTopicResponse::default()
            .with_topic(topic_name(wanted.name.as_deref().unwrap_or_default()))
            .with_topic_id(wanted.id);
        for p in &wanted.partitions {
            let (index, offset, partition_max) = (p.index, p.offset, p.bytes_max);
            // Kafka sends no aborted-transaction list (null) outside
            // read_committed.
            let data = PartitionData::default()
                .with_partition_index(index)
                .with_aborted_transactions(None);
            let Some(name) = &wanted.name else {
                pass.errors = true;
                topic
                    .partitions
                    .push(data.with_error_code(Code::UnknownTopicId.code()));
                continue;
            };
            if wanted.denied {
                pass.errors = true;
                topic.partitions.push(
                    data.with_error_code(Code::TopicAuthorizationFailed.code())
                        .with_high_watermark(-1)
                        .with_log_start_offset(-1),
                );
                continue;
            }
            let log = match shared.broker.topic(name).and_then(|t| {
                let log = t.partition(index)?;
                Ok((t, log))
            }) {
                Ok(found) => found,
                Err(e) => {
                    pass.errors = true;
                    topic
                        .partitions
                        .push(data.with_error_code(for_broker_error(&e).code()));
                    continue;
                }
            };
            // KIP-74: only the first batch of the first partition with data
            // may pass the limits (a reader must always make progress); every
            // later partition gets whole batches within what is left.
            let (topic_state, log) = log;
            if let Err(code) = leader_epoch::check_current(p.current_leader_epoch) {
                pass.errors = true;
                topic.partitions.push(
                    data.with_error_code(code.code())
                        .with_high_watermark(-1)
                        .with_log_start_offset(-1),
                );
                continue;
            }
            let budget = partition_max.min(max_bytes.saturating_sub(pass.bytes));
            let read = if pass.bytes == 0 {
                log.read(offset, budget)
            } else {
                log.read_within(offset, budget)
            };
            // The topic is in hand: no second lookup per partition.
            let stable = topic_state.last_stable_offset(index);
            let read = read.map(|mut read| {
                let lso = stable.as_ref().map_or(read.high_watermark, |s| *s);
                let mut aborted = None;
                if committed {
                    if let Some(next) = cut_at(&mut read.bytes, lso) {
                        read.next_offset = next;
                    }
                    let upto = read.next_offset.max(offset);
                    let list = topic_state
                        .aborted_transactions(index, offset, upto)
                        .unwrap_or_default();
                    aborted = Some(
                        list.into_iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect::<Vec<_>>(),
                    );
                }
                (read, lso, aborted)
            });
            match read {
                Ok((read, lso, aborted)) => {
                    pass.bytes += read.bytes.len();
                    if !read.bytes.is_empty() {
                        // Records from the fetch offset on (a first batch
                        // may start before it; clients skip those).
                        let records = (read.next_offset - offset).max(0) as u64;
                        topic_state
                            .traffic
                            .count_out(records, read.bytes.len() as u64);
                    }
                    topic.partitions.push(
                        data.with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(lso)
                            .with_aborted_transactions(aborted)
                            .with_log_start_offset(read.log_start_offset)
                            .with_records(Some(Bytes::from(read.bytes))),
                    );
                }
                Err(e) => {
                    pass.errors = true;
                    let (start, end) = match &e {
                        LogError::OffsetOutOfRange { start, end, .. } => (*start, *end),
                        _ => (-1, -1),
                    };
                    topic.partitions.push(
                        data.with_error_code(for_log_error(&e).code())
                            .with_high_watermark(end)
                            .with_log_start_offset(start),
                    );
                }
            }
        }
        pass.topics.push(topic);
    }
    pass
}

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: FetchRequest = decode(ApiKey::Fetch, version, body)?;
    let wanted: Wanted = request
        .topics
        .into_iter()
        .map(|t| {
            // From v13 topics are named by id (KIP-516).
            let name = if version >= 13 {
                shared
                    .broker
                    .topic_by_id(t.topic_id.as_u128())
                    .map(|t| t.name.clone())
            } else {
                Some(t.topic.0.to_string())
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| WantedPartition {
                    index: p.partition,
                    offset: p.fetch_offset,
                    bytes_max: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                    // Before v9 the field is absent and decodes as -1.
                    current_leader_epoch: p.current_leader_epoch,
                })
                .collect();
            let denied = name.as_deref().is_some_and(|n| !caller.may_topic(Read, n));
            WantedTopic {
                denied,
                name,
                id: t.topic_id,
                partitions,
            }
        })
        .collect();
    // max_bytes arrived in v3; before, only the per-partition limits count.
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .clamp(1, shared.config.fetch_bytes_max);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(shared.config.fetch_wait_ms_max),
    );
    let committed = request.isolation_level == 1;
    let deadline = Instant::now() + wait;
    let changes = shared.broker.data_dir().changes();
    let wanted = Arc::new(wanted);
    let pass = loop {
        let epoch = changes.epoch();
        let (shared2, wanted2) = (shared.clone(), wanted.clone());
        let pass = blocking(move || read_all(&shared2, &wanted2, max_bytes, committed)).await;
        let now = Instant::now();
        if pass.bytes >= min_bytes || pass.errors || now >= deadline {
            break pass;
        }
        if tokio::time::timeout(deadline - now, changes.changed(epoch))
            .await
            .is_err()
        {
            // Waited long enough: one last look, in case a change raced the
            // timeout.
            let (shared2, wanted2) = (shared.clone(), wanted.clone());
            break blocking(move || read_all(&shared2, &wanted2, max_bytes, committed)).await;
        }
    };
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(pass.topics);
    encode(ApiKey::Fetch, version, &response)
}
