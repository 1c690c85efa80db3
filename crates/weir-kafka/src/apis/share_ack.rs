//! Share groups' acknowledgements (KIP-932): the batches a ShareFetch
//! carries and ShareAcknowledge sends alone (first and last offset, one
//! type for the range or one per offset: 0 gap, 1 accept, 2 release, 3
//! reject), applied through the queue manager, each partition answered
//! with its own code once its changes are durable; ShareAcknowledge
//! itself; and the upkeep timer that releases the records of members
//! that left and expires locks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use weir_log::Clock as _;
use weir_queue::{AckKind, QueueError, QueueKey};

use super::{Caller, blocking, str_bytes};
use crate::Shared;
use crate::authz::Read;
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};
use crate::share_sessions::Refused;

/// Offsets one acknowledgement batch may name at most: a client names
/// only records it was given, and a fetch gives at most the window.
const BATCH_OFFSETS_MAX: i64 = weir_queue::IN_FLIGHT_MAX as i64;

/// One acknowledgement batch as decoded from either API.
#[derive(Debug, Clone)]
pub(crate) struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

/// A partition's acknowledgements.
#[derive(Debug, Clone)]
pub(crate) struct PartitionAcks {
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub batches: Vec<AckBatch>,
}

/// A partition's answer: its code and message.
pub(crate) type AckResult = (uuid::Uuid, i32, Code, Option<String>);

fn kind(t: i8) -> Option<AckKind> {
    Some(match t {
        0 => AckKind::Gap,
        1 => AckKind::Accept,
        2 => AckKind::Release,
        3 => AckKind::Reject,
        _ => return None,
    })
}

/// The runs of one batch: consecutive offsets of one kind.
fn runs(b: &AckBatch) -> Result<Vec<(i64, i64, AckKind)>, String> {
    if b.first < 0 || b.last < b.first || b.last - b.first >= BATCH_OFFSETS_MAX {
        return Err(format!(
            "acknowledgement batch {}..={} is not a valid range",
            b.first, b.last
        ));
    }
    let n = b.last - b.first + 1;
    if b.types.len() != 1 && b.types.len() as i64 != n {
        return Err(format!(
            "{} acknowledge types for {n} offsets (one, or one per offset)",
            b.types.len()
        ));
    }
    let mut out: Vec<(i64, i64, AckKind)> = Vec::new();
    for i in 0..n {
        let t = if b.types.len() == 1 {
            b.types[0]
        } else {
            b.types[i as usize]
        };
        let k = kind(t).ok_or_else(|| format!("unknown acknowledge type {t}"))?;
        let offset = b.first + i;
        match out.last_mut() {
            Some((_, last, lk)) if *lk == k && *last + 1 == offset => *last = offset,
            _ => out.push((offset, offset, k)),
        }
    }
    Ok(out)
}

fn queue_code(e: &QueueError) -> Code {
    match e {
        QueueError::NotAcquired { .. } => Code::InvalidRecordState,
        QueueError::Storage(_) => Code::KafkaStorageError,
        _ => Code::InvalidRequest,
    }
}

/// Applies every partition's acknowledgements for `member` (blocking);
/// each partition is answered on its own, TOPIC_AUTHORIZATION_FAILED
/// where `caller` may not read its topic (as Kafka checks READ on each
/// topic acknowledged).
pub(crate) fn apply(
    shared: &Shared,
    caller: &Caller,
    group: &str,
    member: &str,
    acks: &[PartitionAcks],
) -> Vec<AckResult> {
    let mut out = Vec::with_capacity(acks.len());
    for p in acks {
        let result = apply_partition(shared, caller, group, member, p);
        let (code, message) = match result {
            Ok(()) => (Code::None, None),
            Err((code, message)) => (code, Some(message)),
        };
        out.push((p.topic_id, p.partition, code, message));
    }
    out
}

fn apply_partition(
    shared: &Shared,
    caller: &Caller,
    group: &str,
    member: &str,
    p: &PartitionAcks,
) -> Result<(), (Code, String)> {
    let Some(topic) = shared.broker.topic_by_id(p.topic_id.as_u128()) else {
        return Err((
            Code::UnknownTopicId,
            format!("no topic has id {}", p.topic_id),
        ));
    };
    if !caller.may_topic(Read, &topic.name) {
        return Err((
            Code::TopicAuthorizationFailed,
            format!("not authorized to read topic {:?}", topic.name),
        ));
    }
    let mut all = Vec::new();
    for b in &p.batches {
        all.extend(runs(b).map_err(|m| (Code::InvalidRequest, m))?);
    }
    let q = shared
        .queues
        .get()
        .map_err(|e| (Code::KafkaStorageError, e.to_string()))?;
    let key = QueueKey {
        group: group.to_owned(),
        topic: topic.name.clone(),
        partition: p.partition,
    };
    for (first, last, kind) in all {
        q.acknowledge(&key, member, first, last, kind)
            .map_err(|e| (queue_code(&e), e.to_string()))?;
    }
    Ok(())
}

/// Releases what `member` holds in `group` and logs a failure (the locks
/// then end by timeout, which is still correct).
pub(crate) fn release_member(shared: &Shared, group: &str, member: &str) {
    let Some(q) = shared.queues.opened() else {
        return;
    };
    if let Err(e) = q.release_member(group, member) {
        tracing::warn!(%e, group, member, "releasing a share member's records failed");
    }
}

pub(crate) async fn acknowledge(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: ShareAcknowledgeRequest = decode(ApiKey::ShareAcknowledge, version, body)?;
    let group = request
        .group_id
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = request.member_id.map(|m| m.to_string()).unwrap_or_default();
    let failed = |r: Refused| {
        encode(
            ApiKey::ShareAcknowledge,
            version,
            &ShareAcknowledgeResponse::default()
                .with_error_code(r.code.code())
                .with_error_message(Some(str_bytes(&r.message))),
        )
    };
    if group.is_empty() || member.is_empty() {
        return failed(Refused {
            code: Code::InvalidRequest,
            message: "GroupId and MemberId must be set".to_owned(),
        });
    }
    if !caller.may_group(Read, &group) {
        return failed(Refused {
            code: Code::GroupAuthorizationFailed,
            message: format!("not authorized to read group {group:?}"),
        });
    }
    let epoch = request.share_session_epoch;
    let sessions = &shared.share_sessions;
    let checked = match epoch {
        0 => Err(Refused {
            code: Code::InvalidShareSessionEpoch,
            message: "ShareAcknowledge cannot open a share session (epoch 0)".to_owned(),
        }),
        -1 => sessions.close(&group, &member),
        e => sessions.advance(&group, &member, e, &[], &[]).map(drop),
    };
    if let Err(r) = checked {
        return failed(r);
    }
    let acks: Vec<PartitionAcks> = request
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| PartitionAcks {
                topic_id: t.topic_id,
                partition: p.partition_index,
                batches: p
                    .acknowledgement_batches
                    .into_iter()
                    .map(|b| AckBatch {
                        first: b.first_offset,
                        last: b.last_offset,
                        types: b.acknowledge_types,
                    })
                    .collect(),
            })
        })
        .collect();
    let (s, c) = (shared.clone(), caller.clone());
    let results = blocking(move || {
        let results = apply(&s, &c, &group, &member, &acks);
        // A closed session gives back whatever it still holds.
        if epoch == -1 {
            release_member(&s, &group, &member);
        }
        results
    })
    .await;
    let response = ShareAcknowledgeResponse::default().with_responses(group_results(results));
    encode(ApiKey::ShareAcknowledge, version, &response)
}

fn group_results(results: Vec<AckResult>) -> Vec<ShareAcknowledgeTopicResponse> {
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for (topic_id, partition, code, message) in results {
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(code.code())
            .with_error_message(message.map(|m| str_bytes(&m)));
        match topics.iter_mut().find(|t| t.topic_id == topic_id) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    topics
}

/// How long a departed member's open share session is kept for its
/// closing request: librdkafka sends its leave heartbeat first and then
/// the final acknowledgements (epoch -1), which must still find the
/// session and the records held.
const DEPARTED_GRACE: Duration = Duration::from_secs(10);
/// Departed members waiting for their grace to end, at most.
const DEPARTED_MAX: usize = 10_000;

/// Every 200 ms: members that left or whose session ended get their share
/// session dropped and their records released (at once if they had no
/// session, else after [`DEPARTED_GRACE`] unless they closed it
/// themselves), then the queue manager's upkeep (locks run out,
/// snapshots) runs unless the HTTP API's timer just ran it.
pub(crate) async fn share_upkeep(shared: Arc<Shared>) {
    let every = Duration::from_millis(weir_deadletter::queue_slot::UPKEEP_MS as u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut departed: std::collections::VecDeque<(std::time::Instant, String, String)> =
        std::collections::VecDeque::new();
    loop {
        tick.tick().await;
        let s = shared.clone();
        departed = blocking(move || {
            let now = std::time::Instant::now();
            for d in s.groups.take_share_departures() {
                if s.share_sessions.is_open(&d.group, &d.member_id) {
                    departed.push_back((now + DEPARTED_GRACE, d.group, d.member_id));
                } else {
                    release_member(&s, &d.group, &d.member_id);
                }
            }
            while let Some((due, ..)) = departed.front() {
                if *due > now && departed.len() <= DEPARTED_MAX {
                    break;
                }
                let (_, group, member) = departed.pop_front().expect("a front");
                if s.share_sessions.is_open(&group, &member) {
                    s.share_sessions.forget_member(&group, &member);
                    release_member(&s, &group, &member);
                }
            }
            s.queues.upkeep(weir_log::SystemClock.now_ms());
            departed
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i64, last: i64, types: &[i8]) -> AckBatch {
        AckBatch {
            first,
            last,
            types: types.to_vec(),
        }
    }

    #[test]
    fn batches_become_runs_of_one_kind() {
        assert_eq!(
            runs(&batch(5, 7, &[1])).unwrap(),
            vec![(5, 7, AckKind::Accept)]
        );
        assert_eq!(
            runs(&batch(5, 9, &[1, 1, 0, 3, 3])).unwrap(),
            vec![
                (5, 6, AckKind::Accept),
                (7, 7, AckKind::Gap),
                (8, 9, AckKind::Reject)
            ]
        );
        assert!(runs(&batch(5, 7, &[1, 2])).is_err());
        assert!(runs(&batch(5, 5, &[4])).is_err());
        assert!(runs(&batch(7, 5, &[1])).is_err());
        assert!(runs(&batch(0, BATCH_OFFSETS_MAX, &[1])).is_err());
    }
}
