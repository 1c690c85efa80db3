//! DescribeShareGroupOffsets (KIP-932): each share partition's start
//! offset (the first record not settled) from the queue manager, for the
//! topics named or every partition the group has state for. A partition
//! the group never fetched from has no start yet (-1, as Kafka answers).
//! Alter and Delete are not served: the manager cannot move or drop a
//! partition's state yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse,
};
use weir_queue::QueueKey;

use super::{Caller, blocking, leader_epoch, str_bytes, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DescribeShareGroupOffsetsRequest =
        decode(ApiKey::DescribeShareGroupOffsets, version, body)?;
    let s = shared.clone();
    let caller = caller.clone();
    let groups = blocking(move || {
        request
            .groups
            .into_iter()
            .map(|g| {
                if !caller.may_group(Describe, &g.group_id.0) {
                    return DescribeShareGroupOffsetsResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(Code::GroupAuthorizationFailed.code());
                }
                describe_group(&s, g)
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::DescribeShareGroupOffsets,
        version,
        &DescribeShareGroupOffsetsResponse::default().with_groups(groups),
    )
}

fn describe_group(
    shared: &Shared,
    g: kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
) -> DescribeShareGroupOffsetsResponseGroup {
    let group = g.group_id.0.to_string();
    let out = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id);
    let q = match shared.queues.get() {
        Ok(q) => q,
        Err(e) => {
            return out
                .with_error_code(Code::KafkaStorageError.code())
                .with_error_message(Some(str_bytes(&e.to_string())));
        }
    };
    let held = q.partitions(&group);
    if held.is_empty() && !shared.groups.is_share_group(&group) {
        return out
            .with_error_code(Code::GroupIdNotFound.code())
            .with_error_message(Some(str_bytes(&format!(
                "group {group} is not a share group"
            ))));
    }
    // The partitions asked about: those named, or all with state.
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    match g.topics {
        Some(topics) => {
            for t in topics {
                wanted
                    .entry(t.topic_name.0.to_string())
                    .or_default()
                    .extend(t.partitions);
            }
        }
        None => {
            for k in &held {
                wanted.entry(k.topic.clone()).or_default().push(k.partition);
            }
        }
    }
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let id = shared.broker.topic(&topic).ok().map(|t| t.id);
            let partitions = partitions
                .into_iter()
                .map(|partition| {
                    let p = DescribeShareGroupOffsetsResponsePartition::default()
                        .with_partition_index(partition)
                        .with_leader_epoch(leader_epoch::LEADER_EPOCH);
                    if id.is_none() {
                        return p
                            .with_start_offset(-1)
                            .with_error_code(Code::UnknownTopicOrPartition.code());
                    }
                    let key = QueueKey {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition,
                    };
                    p.with_start_offset(q.start_offset(&key).unwrap_or(-1))
                })
                .collect();
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic_name(&topic))
                .with_topic_id(uuid::Uuid::from_u128(id.unwrap_or(0)))
                .with_partitions(partitions)
        })
        .collect();
    out.with_topics(topics)
}
