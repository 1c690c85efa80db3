//! ShareFetch (KIP-932): a share consumer's session (epoch 0 opens it,
//! later epochs add and forget partitions, -1 closes it), the
//! acknowledgements it carries, then records of the session's partitions
//! assigned to the member, acquired through the queue manager under the
//! group's lock and delivery limit and returned as the log stores them
//! with the acquired offset ranges and their delivery counts. Reads are
//! `read_committed`: offsets the engine acquired that hold no committed
//! record (markers, aborted records, compacted away) are settled as gaps
//! and left out of the ranges. A fetch that acquires less than MinBytes
//! waits on the data directory's change signal for more, up to MaxWaitMs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareFetchRequest, ShareFetchResponse};
use weir_log::Clock as _;
use weir_log::batch::BatchHeader;
use weir_queue::{AckKind, Create, QueueKey};

use super::share_ack::{self, AckBatch, PartitionAcks};
use super::{Caller, blocking, leader_epoch, str_bytes};
use crate::Shared;
use crate::authz::Read;
use crate::codes::{Code, for_broker_error, for_group_error};
use crate::conn::{ConnError, decode, encode};
use crate::share_sessions::{Refused, SharePartitionId};

/// Records one ShareFetch acquires at most, whatever it asks.
const RECORDS_MAX: usize = 2_000;
/// Bytes read from the log per step while gathering acquired batches.
const READ_STEP_BYTES: usize = 1024 * 1024;

/// What a fetch gathered for one partition so far.
#[derive(Debug, Default)]
struct Gathered {
    records: Vec<u8>,
    acquired: Vec<AcquiredRecords>,
    /// The offset after the last batch in `records`: acquired offsets
    /// below it are in a batch already sent.
    covered: i64,
    error: Option<(Code, String)>,
}

/// One fetch's partitions and what each gathered.
type Gathering = Vec<(SharePartitionId, Gathered)>;

/// The settings a fetch runs with.
struct Ask {
    group: String,
    member: String,
    records_max: usize,
    bytes_max: usize,
}

fn refused_response(version: i16, r: Refused) -> Result<Bytes, ConnError> {
    encode(
        ApiKey::ShareFetch,
        version,
        &ShareFetchResponse::default()
            .with_error_code(r.code.code())
            .with_error_message(Some(str_bytes(&r.message))),
    )
}

fn refusal(code: Code, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

pub(crate) async fn fetch(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: ShareFetchRequest = decode(ApiKey::ShareFetch, version, body)?;
    let group = request
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = request
        .member_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        return refused_response(
            version,
            refusal(Code::InvalidRequest, "GroupId and MemberId must be set"),
        );
    }
    // Kafka: READ on the share group, then READ on each topic fetched.
    if !caller.may_group(Read, &group) {
        let message = format!("not authorized to read group {group:?}");
        return refused_response(version, refusal(Code::GroupAuthorizationFailed, message));
    }
    // The member must be in the share group now (Kafka's ShareFetch
    // carries no member epoch), except to close its session: its leave
    // heartbeat may come first.
    let assignment = match shared.groups.share_assignment(&group, &member) {
        Ok((_, a)) => a,
        Err(_) if request.share_session_epoch == -1 => Default::default(),
        Err(e) => return refused_response(version, refusal(for_group_error(&e), e.to_string())),
    };
    let mut named = Vec::new();
    let mut acks = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            named.push((t.topic_id, p.partition_index));
            if !p.acknowledgement_batches.is_empty() {
                acks.push(PartitionAcks {
                    topic_id: t.topic_id,
                    partition: p.partition_index,
                    batches: p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| AckBatch {
                            first: b.first_offset,
                            last: b.last_offset,
                            types: b.acknowledge_types.clone(),
                        })
                        .collect(),
                });
            }
        }
    }
    let forgotten: Vec<SharePartitionId> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
        .collect();
    let epoch = request.share_session_epoch;
    let sessions = &shared.share_sessions;
    let (session, replaced) = match epoch {
        0 if !acks.is_empty() => {
            return refused_response(
                version,
                refusal(
                    Code::InvalidRequest,
                    "a ShareFetch opening a session (epoch 0) cannot acknowledge",
                ),
            );
        }
        0 => match sessions.open(&group, &member, named.iter().copied().collect()) {
            Ok(replaced) => (named.iter().copied().collect(), replaced),
            Err(r) => return refused_response(version, r),
        },
        -1 if !forgotten.is_empty() || named.len() != acks.len() => {
            return refused_response(
                version,
                refusal(
                    Code::InvalidRequest,
                    "a ShareFetch closing its session (epoch -1) only acknowledges",
                ),
            );
        }
        -1 => match sessions.close(&group, &member) {
            Ok(()) => (BTreeSet::new(), false),
            Err(r) => return refused_response(version, r),
        },
        e if e < -1 => {
            return refused_response(
                version,
                refusal(
                    Code::InvalidShareSessionEpoch,
                    format!("share session epoch {e}"),
                ),
            );
        }
        e => match sessions.advance(&group, &member, e, &named, &forgotten) {
            Ok(parts) => (parts, false),
            Err(r) => return refused_response(version, r),
        },
    };
    let lock_ms = shared.config.share_lock_ms;
    let (s, c) = (shared.clone(), caller.clone());
    let (g, m) = (group.clone(), member.clone());
    let ack_results = blocking(move || {
        // A session opened again, or closed, gives back what it held.
        if replaced {
            share_ack::release_member(&s, &g, &m);
        }
        let results = share_ack::apply(&s, &c, &g, &m, &acks);
        if epoch == -1 {
            share_ack::release_member(&s, &g, &m);
        }
        results
    })
    .await;

    // The session's partitions this member is assigned now.
    let mut gathering: Gathering = session
        .into_iter()
        .filter(|(topic, partition)| {
            assignment
                .get(&weir_groups::TopicId(topic.as_u128()))
                .is_some_and(|ps| ps.contains(partition))
        })
        .map(|p| (p, Gathered::default()))
        .collect();
    for ((topic_id, _), g) in &mut gathering {
        let topic = shared.broker.topic_by_id(topic_id.as_u128());
        if topic.is_some_and(|t| !caller.may_topic(Read, &t.name)) {
            g.error = Some((Code::TopicAuthorizationFailed, String::new()));
        }
    }
    let records_max = usize::try_from(request.max_records)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(RECORDS_MAX)
        .min(RECORDS_MAX);
    let bytes_max = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .clamp(1, shared.config.fetch_bytes_max);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0).max(1);
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(shared.config.fetch_wait_ms_max),
    );
    if epoch != -1 && !gathering.is_empty() {
        let ask = Arc::new(Ask {
            group,
            member,
            records_max,
            bytes_max,
        });
        let deadline = Instant::now() + wait;
        let changes = shared.broker.data_dir().changes();
        loop {
            let seen = changes.epoch();
            let (s, a) = (shared.clone(), ask.clone());
            let (g, done) = blocking(move || {
                let done = acquire_pass(&s, &a, &mut gathering);
                (gathering, done)
            })
            .await;
            gathering = g;
            let now = Instant::now();
            if done || gathered_bytes(&gathering) >= min_bytes || now >= deadline {
                break;
            }
            if tokio::time::timeout(deadline - now, changes.changed(seen))
                .await
                .is_err()
            {
                let (s, a) = (shared.clone(), ask.clone());
                gathering = blocking(move || {
                    acquire_pass(&s, &a, &mut gathering);
                    gathering
                })
                .await;
                break;
            }
        }
    }
    let response = ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
        .with_responses(respond(shared, ack_results, gathering));
    encode(ApiKey::ShareFetch, version, &response)
}

fn gathered_bytes(g: &Gathering) -> usize {
    g.iter().map(|(_, p)| p.records.len()).sum()
}

fn gathered_records(g: &Gathering) -> usize {
    g.iter()
        .flat_map(|(_, p)| &p.acquired)
        .map(|a| (a.last_offset - a.first_offset + 1) as usize)
        .sum()
}

/// One pass over the partitions: acquires what each has, within the
/// fetch's record and byte limits. Returns whether the fetch is done (a
/// limit reached or an error to report).
fn acquire_pass(shared: &Shared, ask: &Ask, gathering: &mut Gathering) -> bool {
    let q = match shared.queues.get() {
        Ok(q) => q,
        Err(e) => {
            for (_, g) in gathering.iter_mut() {
                g.error = Some((Code::KafkaStorageError, e.to_string()));
            }
            return true;
        }
    };
    let mut done = false;
    for i in 0..gathering.len() {
        let want = ask.records_max.saturating_sub(gathered_records(gathering));
        if want == 0 || gathered_bytes(gathering) >= ask.bytes_max {
            return true;
        }
        let ((topic_id, partition), g) = &mut gathering[i];
        if g.error.is_some() {
            continue;
        }
        if let Err((code, message)) =
            acquire_partition(shared, &q, ask, *topic_id, *partition, want, g)
        {
            g.error = Some((code, message));
            done = true;
        }
    }
    done
}

fn acquire_partition(
    shared: &Shared,
    q: &weir_deadletter::queue_slot::QueueManager,
    ask: &Ask,
    topic_id: uuid::Uuid,
    partition: i32,
    want: usize,
    g: &mut Gathered,
) -> Result<(), (Code, String)> {
    let broker_err = |e: weir_broker::BrokerError| (for_broker_error(&e), e.to_string());
    let queue_err = |e: weir_queue::QueueError| (Code::KafkaStorageError, e.to_string());
    let Some(topic) = shared.broker.topic_by_id(topic_id.as_u128()) else {
        return Err((Code::UnknownTopicId, format!("no topic has id {topic_id}")));
    };
    if topic.internal {
        // The queue journal among them: acquiring from it would write to it.
        return Err((
            Code::InvalidRequest,
            format!(
                "{} is an internal topic; share groups cannot read it",
                topic.name
            ),
        ));
    }
    let log = topic.partition(partition).map_err(broker_err)?;
    let log_start = log.start_offset();
    let lso = topic.last_stable_offset(partition).map_err(broker_err)?;
    let key = QueueKey {
        group: ask.group.clone(),
        topic: topic.name.clone(),
        partition,
    };
    let create = Create {
        delivery_limit: shared.config.share_delivery_limit,
        start: if shared
            .group_configs
            .start_earliest(&ask.group)
            .unwrap_or(shared.config.share_start_earliest)
        {
            log_start
        } else {
            lso
        },
    };
    let now = weir_log::SystemClock.now_ms();
    let lock_ms = shared.config.share_lock_ms;
    let acquired = q
        .acquire(
            &key,
            &create,
            &ask.member,
            want,
            lock_ms,
            log_start,
            lso,
            now,
        )
        .map_err(queue_err)?;
    for a in acquired {
        // The offsets that hold committed records; the rest are gaps.
        let records = shared
            .broker
            .committed_records(&topic.name, partition, a.first, a.last + 1, usize::MAX)
            .map_err(broker_err)?;
        let mut next = a.first;
        let gap = |from: i64, to: i64| -> Result<(), (Code, String)> {
            if from <= to {
                q.acknowledge(&key, &ask.member, from, to, AckKind::Gap)
                    .map_err(queue_err)?;
            }
            Ok(())
        };
        let mut run: Option<(i64, i64)> = None;
        let delivery_count = i16::try_from(a.deliveries).unwrap_or(i16::MAX);
        let push = |run: (i64, i64), g: &mut Gathered| {
            g.acquired.push(
                AcquiredRecords::default()
                    .with_first_offset(run.0)
                    .with_last_offset(run.1)
                    .with_delivery_count(delivery_count),
            );
        };
        for r in &records {
            gap(next, r.offset - 1)?;
            run = match run {
                Some((f, l)) if l + 1 == r.offset => Some((f, r.offset)),
                Some(done) => {
                    push(done, g);
                    Some((r.offset, r.offset))
                }
                None => Some((r.offset, r.offset)),
            };
            next = r.offset + 1;
        }
        gap(next, a.last)?;
        if let Some(done) = run {
            push(done, g);
            read_batches(&log, run_first(&records), a.last, g)
                .map_err(|e| (crate::codes::for_log_error(&e), e.to_string()))?;
        }
    }
    Ok(())
}

fn run_first(records: &[weir_broker::queue_log::OwnedRecord]) -> i64 {
    records.first().map_or(0, |r| r.offset)
}

/// Appends the stored batches holding `first..=last` to `g.records`,
/// skipping those already there.
fn read_batches(
    log: &weir_log::Log,
    first: i64,
    last: i64,
    g: &mut Gathered,
) -> Result<(), weir_log::LogError> {
    let mut at = first.max(g.covered).max(log.start_offset());
    while at <= last {
        let read = log.read(at, READ_STEP_BYTES)?;
        if read.bytes.is_empty() {
            break;
        }
        // Keep the whole batches that start at or below `last`.
        let mut pos = 0;
        let mut end = at;
        while pos < read.bytes.len() {
            let Ok(h) = BatchHeader::parse(&read.bytes[pos..]) else {
                break;
            };
            if h.base_offset > last {
                break;
            }
            end = h.base_offset + i64::from(h.last_offset_delta) + 1;
            pos += h.total_bytes();
        }
        g.records.extend_from_slice(&read.bytes[..pos]);
        if pos == 0 || end <= at {
            break;
        }
        at = end;
        g.covered = end;
    }
    Ok(())
}

/// The answer: every partition with acknowledgement results, records or
/// an error (an incremental answer, as Kafka's share sessions give it).
fn respond(
    shared: &Shared,
    acks: Vec<share_ack::AckResult>,
    gathering: Gathering,
) -> Vec<ShareFetchableTopicResponse> {
    let leader = LeaderIdAndEpoch::default()
        .with_leader_id(shared.config.node_id)
        .with_leader_epoch(leader_epoch::LEADER_EPOCH);
    let mut parts: Vec<(uuid::Uuid, PartitionData)> = Vec::new();
    let blank = |partition: i32| {
        PartitionData::default()
            .with_partition_index(partition)
            .with_current_leader(leader.clone())
            .with_records(Some(Bytes::new()))
    };
    for ((topic, partition), g) in gathering {
        let mut data = blank(partition);
        if let Some((code, message)) = g.error {
            data = data
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message)));
        } else if g.acquired.is_empty() {
            continue;
        }
        data = data
            .with_records(Some(Bytes::from(g.records)))
            .with_acquired_records(g.acquired);
        parts.push((topic, data));
    }
    for (topic, partition, code, message) in acks {
        let found = parts
            .iter_mut()
            .find(|(t, p)| *t == topic && p.partition_index == partition);
        let data = match found {
            Some((_, d)) => d,
            None => {
                parts.push((topic, blank(partition)));
                &mut parts.last_mut().expect("just pushed").1
            }
        };
        data.acknowledge_error_code = code.code();
        data.acknowledge_error_message = message.map(|m| str_bytes(&m));
    }
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for (topic, data) in parts {
        match topics.iter_mut().find(|t| t.topic_id == topic) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![data]),
            ),
        }
    }
    topics
}
