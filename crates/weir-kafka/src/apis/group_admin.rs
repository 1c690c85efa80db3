//! Group administration: ListGroups (with the state filter of v4),
//! DescribeGroups and DeleteGroups (only groups without members; their
//! committed offsets go with them).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use weir_groups::GroupError;

use super::{blocking, str_bytes};
use crate::Shared;
use crate::codes::{Code, for_group_error};
use crate::conn::{ConnError, decode, encode};

/// What a client may do with a group when it asks (no ACLs: everything):
/// READ, DELETE and DESCRIBE in Kafka's operation bits.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub(crate) fn list(version: i16, body: Bytes, shared: &Shared) -> Result<Bytes, ConnError> {
    let request: ListGroupsRequest = decode(ApiKey::ListGroups, version, body)?;
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let groups = shared
        .groups
        .list()
        .into_iter()
        .filter(|(_, state, _)| {
            states.is_empty() || states.contains(&state.as_str().to_ascii_lowercase())
        })
        .map(|(id, state, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type))
                .with_group_state(str_bytes(state.as_str()))
        })
        .collect();
    encode(
        ApiKey::ListGroups,
        version,
        &ListGroupsResponse::default().with_groups(groups),
    )
}

pub(crate) fn describe(version: i16, body: Bytes, shared: &Shared) -> Result<Bytes, ConnError> {
    let request: DescribeGroupsRequest = decode(ApiKey::DescribeGroups, version, body)?;
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let (code, d) = if id.0.is_empty() {
                (Code::InvalidGroupId, shared.groups.describe(""))
            } else {
                (Code::None, shared.groups.describe(&id.0))
            };
            DescribedGroup::default()
                .with_error_code(code.code())
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
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DeleteGroupsRequest = decode(ApiKey::DeleteGroups, version, body)?;
    let groups = shared.groups.clone();
    let names: Vec<String> = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    let outcomes = blocking(move || {
        // Write every deletion, then wait once: they share a sync round.
        let pending: Vec<_> = names.iter().map(|g| groups.delete_group(g)).collect();
        pending
            .into_iter()
            .map(|p| p.and_then(|p| p.wait()))
            .collect::<Vec<Result<(), GroupError>>>()
    })
    .await;
    let results = request
        .groups_names
        .into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| {
            let code = match &outcome {
                Ok(()) => Code::None,
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
