//! DescribeTopicPartitions (KIP-966): topics by name or all of them, in
//! name order, with each partition's leader, replicas, ISR and (empty, on
//! one node) eligible leader replicas, a page at a time. A response holds
//! at most `response_partition_limit` partitions (and never more than
//! [`RESPONSE_PARTITIONS_MAX`]); `next_cursor` names the first topic and
//! partition that did not fit, and the client asks again from there.

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use weir_broker::{Topic, validate_topic_name};

use super::{Caller, operations, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

/// Most partitions one response describes, whatever the request asks
/// (Kafka's `max.request.partition.size.limit` default).
pub(crate) const RESPONSE_PARTITIONS_MAX: i32 = 2000;

pub(crate) fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: DescribeTopicPartitionsRequest =
        decode(ApiKey::DescribeTopicPartitions, version, body)?;
    let response = match page(&request, caller, shared) {
        Ok(response) => response,
        // A cursor that cannot be followed fails every named topic.
        Err(code) => DescribeTopicPartitionsResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(t.name.clone()))
                        .with_error_code(code.code())
                })
                .collect(),
        ),
    };
    encode(ApiKey::DescribeTopicPartitions, version, &response)
}

fn page(
    request: &DescribeTopicPartitionsRequest,
    caller: &Caller,
    shared: &Shared,
) -> Result<DescribeTopicPartitionsResponse, Code> {
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    let all = request.topics.is_empty();
    // Sorted, without duplicates, from the cursor's topic on.
    let names: BTreeSet<String> = if all {
        shared
            .broker
            .topics()
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| n.as_str() >= cursor_topic)
            // Listing every topic shows only those the caller may describe.
            .filter(|n| caller.sees(Describe, ResourceType::Topic, n))
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| n.as_str() >= cursor_topic)
            .collect()
    };
    if let Some((topic, partition)) = &cursor {
        // The cursor's topic must be among those asked, and its partition
        // a partition index.
        if (!all && !names.contains(topic)) || *partition < 0 {
            return Err(Code::InvalidRequest);
        }
    }
    let node = shared.config.node_id;
    let mut remaining = i64::from(
        request
            .response_partition_limit
            .clamp(1, RESPONSE_PARTITIONS_MAX),
    );
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in &names {
        if remaining == 0 {
            // The page is full at a topic boundary: go on from its start.
            next_cursor = Some((name.clone(), 0));
            break;
        }
        if !all && !caller.may_topic(Describe, name) {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(Code::TopicAuthorizationFailed.code()),
            );
            continue;
        }
        let topic = match shared.broker.topic(name) {
            Ok(topic) => topic,
            Err(_) if all => continue,
            Err(_) => {
                let code = if validate_topic_name(name).is_ok() {
                    Code::UnknownTopicOrPartition
                } else {
                    Code::InvalidTopicException
                };
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(topic_name(name)))
                        .with_error_code(code.code()),
                );
                continue;
            }
        };
        let start = match &cursor {
            Some((t, p)) if t == name => i64::from(*p),
            _ => 0,
        };
        let count = topic.partition_count() as i64;
        let end = count.min(start + remaining);
        topics.push(describe(&topic, start..end, node));
        if end < count {
            next_cursor = Some((name.clone(), end));
            break;
        }
        remaining -= (end - start).max(0);
    }
    let topics = topics
        .into_iter()
        .map(|t| {
            if t.error_code != Code::None.code() {
                return t;
            }
            let name = t.name.as_ref().map_or("", |n| n.0.as_str());
            let bits = caller.authorized_operations(operations::TOPIC, ResourceType::Topic, name);
            t.with_topic_authorized_operations(bits)
        })
        .collect();
    Ok(DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(topic_name(&topic))
                .with_partition_index(partition as i32)
        })))
}

/// One topic with the partitions of `range` (which may be empty).
fn describe(
    topic: &Topic,
    range: std::ops::Range<i64>,
    node: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = range
        .map(|p| {
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(super::leader_epoch::LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(Vec::new())
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(uuid::Uuid::from_u128(topic.id))
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
}
