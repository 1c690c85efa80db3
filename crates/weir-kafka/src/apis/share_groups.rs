//! Share groups' membership (KIP-932): ShareGroupHeartbeat (join with the
//! member's own id, heartbeat, leave; assignments by topic id) and
//! ShareGroupDescribe over the `weir-groups` coordinator, which answers
//! both at once. ShareFetch and ShareAcknowledge are not served here.

use bytes::Bytes;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
};
use weir_groups::{GroupState, GroupType, NamedPartitions, ShareHeartbeat};

use super::group_admin::GROUP_OPERATIONS;
use super::{Caller, str_bytes, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::{Code, for_group_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

pub(crate) fn heartbeat(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ShareGroupHeartbeatRequest = decode(ApiKey::ShareGroupHeartbeat, version, body)?;
    let denied = caller.heartbeat_refusal(
        &request.group_id.0,
        request
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|n| n.0.as_str()),
    );
    if let Some((code, message)) = denied {
        let response = ShareGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(message.map(|m| str_bytes(&m)));
        return encode(ApiKey::ShareGroupHeartbeat, version, &response);
    }
    let answer = shared.groups.share_heartbeat(ShareHeartbeat {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack_id: request.rack_id.map(|r| r.to_string()),
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        client_id: caller.client_id.clone(),
        client_host: format!("/{}", caller.peer.ip()),
    });
    let response = match answer {
        Ok(answer) => ShareGroupHeartbeatResponse::default()
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
            tracing::debug!(%e, "ShareGroupHeartbeat refused");
            ShareGroupHeartbeatResponse::default()
                .with_error_code(for_group_error(&e).code())
                .with_error_message(Some(str_bytes(&e.to_string())))
        }
    };
    encode(ApiKey::ShareGroupHeartbeat, version, &response)
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

pub(crate) fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ShareGroupDescribeRequest = decode(ApiKey::ShareGroupDescribe, version, body)?;
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
            // Groups of other types are GROUP_ID_NOT_FOUND, as Kafka
            // answers ("Group g is not a share group.").
            let d = match shared.groups.share_describe(&id.0) {
                Ok(d) => d,
                Err(e) => {
                    let other_type = match shared.groups.group_type(&id.0) {
                        GroupType::Consumer => true,
                        GroupType::Classic => {
                            shared.groups.describe(&id.0).state != GroupState::Dead
                        }
                        GroupType::Share => false,
                    };
                    let message = if other_type {
                        format!("group {} is not a share group", id.0)
                    } else {
                        e.to_string()
                    };
                    return failed(for_group_error(&e), message);
                }
            };
            let topics = d.members.iter().flat_map(|m| {
                m.subscribed_topic_names
                    .iter()
                    .map(String::as_str)
                    .chain(m.assignment.iter().map(|p| p.topic.as_str()))
            });
            if let Some(message) = caller.described_topics_refusal(topics) {
                return failed(Code::TopicAuthorizationFailed, message);
            }
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.as_str()))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(str_bytes(d.assignor))
                .with_authorized_operations(operations)
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(&m.member_id))
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
                                .with_assignment(described_assignment(m.assignment))
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        ApiKey::ShareGroupDescribe,
        version,
        &ShareGroupDescribeResponse::default().with_groups(groups),
    )
}
