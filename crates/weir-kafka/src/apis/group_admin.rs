//! Group administration: ListGroups (with the state filter of v4 and the
//! type filter of v5), DescribeGroups (consumer-protocol groups too, their
//! subscriptions and assignments in the classic consumer encoding) and
//! DeleteGroups (only groups without members; their committed offsets go
//! with them).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::Encodable;
use weir_groups::{ConsumerGroupDescription, GroupError, GroupState, GroupType};

use super::{Caller, blocking, str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Delete, Describe};
use crate::codes::{Code, for_group_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

/// What a client may do with a group when it asks (no ACLs: everything).
pub(crate) const GROUP_OPERATIONS: i32 = super::operations::GROUP;

pub(crate) fn list(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ListGroupsRequest = decode(ApiKey::ListGroups, version, body)?;
    // Kafka lists every group to whoever may describe the cluster, and
    // the groups it may describe to anyone else.
    let all = caller.sees(
        Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    );
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let groups = shared
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type.as_str()))
        .filter(|g| all || caller.sees(Describe, ResourceType::Group, &g.group))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type.as_str()))
        })
        .collect();
    encode(
        ApiKey::ListGroups,
        version,
        &ListGroupsResponse::default().with_groups(groups),
    )
}

pub(crate) fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: DescribeGroupsRequest = decode(ApiKey::DescribeGroups, version, body)?;
    let asked = request.include_authorized_operations;
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if !caller.may_group(Describe, &id.0) {
                return DescribedGroup::default()
                    .with_error_code(Code::GroupAuthorizationFailed.code())
                    .with_error_message((version >= 6).then(|| str_bytes("Authorization failed.")))
                    .with_group_id(id);
            }
            let operations = if asked {
                caller.authorized_operations(GROUP_OPERATIONS, ResourceType::Group, &id.0)
            } else {
                i32::MIN
            };
            if !id.0.is_empty()
                && let Ok(d) = shared.groups.consumer_describe(&id.0)
            {
                return described_consumer_group(id, d, operations);
            }
            let d = shared.groups.describe(&id.0);
            // From v6 (KIP-1043) a group that does not exist is an error
            // (before, it is described as Dead), and an error carries a
            // message (null without one).
            let (code, message) = if id.0.is_empty() {
                (
                    Code::InvalidGroupId,
                    "the group id must not be empty".to_owned(),
                )
            } else if version >= 6 && shared.groups.group_type(&id.0) == GroupType::Share {
                // A share group is no classic group: Dead before v6, an
                // error from v6, as Kafka answers.
                (
                    Code::GroupIdNotFound,
                    format!("group {} is not a classic group", id.0),
                )
            } else if version >= 6 && d.state == GroupState::Dead {
                (Code::GroupIdNotFound, format!("group {} not found", id.0))
            } else {
                (Code::None, String::new())
            };
            let message = (version >= 6 && code != Code::None).then(|| str_bytes(&message));
            DescribedGroup::default()
                .with_error_code(code.code())
                .with_error_message(message)
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.as_str()))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol_name))
                .with_authorized_operations(operations)
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(Bytes::from(m.metadata))
                                .with_member_assignment(Bytes::from(m.assignment))
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        ApiKey::DescribeGroups,
        version,
        &DescribeGroupsResponse::default().with_groups(groups),
    )
}

pub(crate) async fn delete(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DeleteGroupsRequest = decode(ApiKey::DeleteGroups, version, body)?;
    let groups = shared.groups.clone();
    let names: Vec<(String, bool)> = request
        .groups_names
        .iter()
        .map(|g| (g.0.to_string(), caller.may_group(Delete, &g.0)))
        .collect();
    let outcomes = blocking(move || {
        // Write every deletion, then wait once: they share a sync round.
        let pending: Vec<_> = names
            .iter()
            .map(|(g, allowed)| {
                if *allowed {
                    groups.delete_group(g).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect();
        pending
            .into_iter()
            .map(|p| match p {
                Ok(Some(p)) => p.wait().map(|()| Code::None),
                Ok(None) => Ok(Code::GroupAuthorizationFailed),
                Err(e) => Err(e),
            })
            .collect::<Vec<Result<Code, GroupError>>>()
    })
    .await;
    let results = request
        .groups_names
        .into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| {
            let code = match &outcome {
                Ok(code) => *code,
                Err(e) => for_group_error(e),
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code.code())
        })
        .collect();
    encode(
        ApiKey::DeleteGroups,
        version,
        &DeleteGroupsResponse::default().with_results(results),
    )
}

/// A consumer-protocol group as DescribeGroups shows it: protocol type
/// `consumer`, the assignor as protocol, and each member's subscription and
/// current assignment encoded as a classic consumer would
/// (ConsumerProtocolSubscription and ConsumerProtocolAssignment v0), so
/// tools that only know DescribeGroups still see who reads what.
fn described_consumer_group(
    id: GroupId,
    d: ConsumerGroupDescription,
    operations: i32,
) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(id)
        .with_group_state(str_bytes(d.state.as_str()))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocol_data(str_bytes(&d.assignor))
        .with_authorized_operations(operations)
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_metadata(classic_bytes(
                            &ConsumerProtocolSubscription::default().with_topics(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|t| str_bytes(t))
                                    .collect(),
                            ),
                        ))
                        .with_member_assignment(classic_bytes(
                            &ConsumerProtocolAssignment::default().with_assigned_partitions(
                                m.assignment
                                    .into_iter()
                                    .map(|p| {
                                        TopicPartition::default()
                                            .with_topic(topic_name(&p.topic))
                                            .with_partitions(p.partitions)
                                    })
                                    .collect(),
                            ),
                        ))
                })
                .collect(),
        )
}

/// A classic consumer-protocol structure, version 0, with its version
/// prefix.
fn classic_bytes(body: &impl Encodable) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    body.encode(&mut out, 0)
        .expect("v0 consumer protocol structures always encode");
    out.freeze()
}
