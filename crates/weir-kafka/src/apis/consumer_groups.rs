//! KIP-848's consumer rebalance protocol: ConsumerGroupHeartbeat (join,
//! reconcile, leave; assignments by topic id) and ConsumerGroupDescribe
//! over the `weir-groups` coordinator, which answers both at once.

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_groups::{Assignment, ConsumerHeartbeat, NamedPartitions, TopicId};

use super::group_admin::GROUP_OPERATIONS;
use super::{Caller, str_bytes, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::{Code, for_group_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

fn opt_string(s: Option<StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

pub(crate) fn heartbeat(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ConsumerGroupHeartbeatRequest =
        decode(ApiKey::ConsumerGroupHeartbeat, version, body)?;
    let denied = caller.heartbeat_refusal(
        &request.group_id.0,
        request
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|n| n.0.as_str()),
    );
    if let Some((code, message)) = denied {
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(message.map(|m| str_bytes(&m)));
        return encode(ApiKey::ConsumerGroupHeartbeat, version, &response);
    }
    let owned = request.topic_partitions.map(|topics| {
        let mut owned = Assignment::new();
        for t in topics {
            owned
                .entry(TopicId(t.topic_id.as_u128()))
                .or_default()
                .extend(t.partitions);
        }
        owned
    });
    let answer = shared.groups.consumer_heartbeat(ConsumerHeartbeat {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: opt_string(request.instance_id),
        rack_id: opt_string(request.rack_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: opt_string(request.subscribed_topic_regex),
        // A regex matches only topics the caller may describe (Kafka's
        // filter), asked afresh at each resolution.
        topic_filter: caller.acls_enabled().then(|| {
            let caller = caller.clone();
            weir_groups::TopicFilter::new(move |topic| {
                caller.sees(Describe, ResourceType::Topic, topic)
            })
        }),
        server_assignor: opt_string(request.server_assignor),
        owned,
        client_id: caller.client_id.clone(),
        client_host: format!("/{}", caller.peer.ip()),
        client_member_ids: version >= 1,
    });
    let response = match answer {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(&answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|a| {
                HeartbeatAssignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_u128(topic.0))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => {
            tracing::debug!(%e, "ConsumerGroupHeartbeat refused");
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(for_group_error(&e).code())
                .with_error_message(Some(str_bytes(&e.to_string())))
        }
    };
    encode(ApiKey::ConsumerGroupHeartbeat, version, &response)
}

fn described_assignment(partitions: Vec<NamedPartitions>) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        partitions
            .into_iter()
            .map(|p| {
                DescribedTopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_u128(p.topic_id.0))
                    .with_topic_name(topic_name(&p.topic))
                    .with_partitions(p.partitions)
            })
            .collect(),
    )
}

/// ConsumerGroupDescribe's member type of a consumer-protocol member (v1).
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub(crate) fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ConsumerGroupDescribeRequest =
        decode(ApiKey::ConsumerGroupDescribe, version, body)?;
    let asked = request.include_authorized_operations;
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let operations = if asked {
                caller.authorized_operations(GROUP_OPERATIONS, ResourceType::Group, &id.0)
            } else {
                i32::MIN
            };
            let failed = |code: Code, message: String| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(&message)))
                    .with_group_state(str_bytes("Dead"))
                    .with_authorized_operations(operations)
            };
            if !caller.may_group(Describe, &id.0) {
                return DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(Code::GroupAuthorizationFailed.code())
                    .with_error_message(None)
                    .with_authorized_operations(i32::MIN);
            }
            if id.0.is_empty() {
                return failed(
                    Code::InvalidGroupId,
                    "group id must not be empty".to_owned(),
                );
            }
            // Classic groups are GROUP_ID_NOT_FOUND here, so clients fall
            // back to DescribeGroups for them.
            let d = match shared.groups.consumer_describe(&id.0) {
                Ok(d) => d,
                Err(e) => return failed(for_group_error(&e), e.to_string()),
            };
            let topics = d.members.iter().flat_map(|m| {
                let assigned = m.assignment.iter().chain(&m.target_assignment);
                m.subscribed_topic_names
                    .iter()
                    .map(String::as_str)
                    .chain(assigned.map(|p| p.topic.as_str()))
            });
            if let Some(message) = caller.described_topics_refusal(topics) {
                return failed(Code::TopicAuthorizationFailed, message);
            }
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.as_str()))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(str_bytes(&d.assignor))
                .with_authorized_operations(operations)
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .iter()
                                        .map(|t| topic_name(t))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.as_deref().map(str_bytes),
                                )
                                .with_assignment(described_assignment(m.assignment))
                                .with_target_assignment(described_assignment(m.target_assignment))
                                .with_member_type(if version >= 1 {
                                    MEMBER_TYPE_CONSUMER
                                } else {
                                    -1
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        ApiKey::ConsumerGroupDescribe,
        version,
        &ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
}
