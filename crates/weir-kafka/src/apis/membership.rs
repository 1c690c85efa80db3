//! Group membership: FindCoordinator (this broker coordinates every
//! group, share groups included), JoinGroup, SyncGroup, Heartbeat and LeaveGroup over the
//! `weir-groups` coordinator. A JoinGroup or SyncGroup that must wait for a
//! rebalance is answered later, in the connection's order.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use weir_groups::{GroupError, JoinRequest, Leaving, SyncRequest};

use super::{Caller, Reply, non_empty, str_bytes};
use crate::Shared;
use crate::authz::{Describe, Read};
use crate::codes::{Code, for_group_error};
use crate::conn::{ConnError, decode, encode};

/// Key types of FindCoordinator: groups of every type, share groups
/// included, and transactions. Key type 2 asks for a share-*state*
/// coordinator (`group:topic:partition` keys), which only brokers ask each
/// other for: Weir keeps share state itself.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The error message of a FindCoordinator that found its coordinator, as
/// Kafka sends it: before v4 the name of the NONE error, "NONE" (Kafka sets
/// the message from the error code even on success); from v4 each
/// coordinator's message is left at its empty default. Never null.
fn success_message(version: i16) -> Option<kafka_protocol::protocol::StrBytes> {
    Some(str_bytes(if version < 4 { "NONE" } else { "" }))
}

pub(crate) fn find_coordinator(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: FindCoordinatorRequest = decode(ApiKey::FindCoordinator, version, body)?;
    let config = &shared.config;
    // This broker coordinates its groups and its transactions, for
    // whoever may describe the group or the transactional id.
    let answer = |key: &str| match request.key_type {
        KEY_TYPE_GROUP if !caller.may_group(Describe, key) => {
            (Code::GroupAuthorizationFailed, None)
        }
        KEY_TYPE_TRANSACTION if !caller.may_transaction(Describe, key) => {
            (Code::TransactionalIdAuthorizationFailed, None)
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => (Code::None, success_message(version)),
        other => (
            Code::InvalidRequest,
            Some(str_bytes(&format!(
                "coordinator key type {other} is not served (share-state coordinators are internal to the broker)"
            ))),
        ),
    };
    let at = |code: Code| {
        if code == Code::None {
            (
                config.node_id,
                str_bytes(&caller.listener.advertised_host),
                i32::from(caller.listener.advertised_port),
            )
        } else {
            (-1, str_bytes(""), -1)
        }
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, message) = answer(key);
                let (node, host, port) = at(code);
                CoordinatorEntry::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code.code())
                    .with_error_message(message)
            })
            .collect();
    } else {
        let (code, message) = answer(&request.key);
        let (node, host, port) = at(code);
        response = response
            .with_error_code(code.code())
            .with_error_message(message)
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port);
    }
    encode(ApiKey::FindCoordinator, version, &response)
}

pub(crate) fn join(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let request: JoinGroupRequest = decode(ApiKey::JoinGroup, version, body)?;
    if !caller.may_group(Read, &request.group_id.0) {
        let response = JoinGroupResponse::default()
            .with_error_code(Code::GroupAuthorizationFailed.code())
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| str_bytes("")));
        return encode(ApiKey::JoinGroup, version, &response).map(|b| Reply::Now(Some(b)));
    }
    let session_timeout_ms = request.session_timeout_ms;
    let member_id = request.member_id.to_string();
    let answer = shared.groups.join(JoinRequest {
        group: request.group_id.0.to_string(),
        member_id: member_id.clone(),
        instance_id: non_empty(request.group_instance_id),
        client_id: caller.client_id.clone(),
        client_host: format!("/{}", caller.peer.ip()),
        session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata.to_vec()))
            .collect(),
        require_known_member_id: version >= 4,
    });
    Ok(Reply::Later(Box::pin(async move {
        let response = match answer.await {
            Ok(joined) => JoinGroupResponse::default()
                .with_generation_id(joined.generation)
                .with_protocol_type(Some(str_bytes(&joined.protocol_type)))
                .with_protocol_name(Some(str_bytes(&joined.protocol_name)))
                .with_leader(str_bytes(&joined.leader))
                .with_member_id(str_bytes(&joined.member_id))
                .with_members(
                    joined
                        .members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_metadata(Bytes::from(m.metadata))
                        })
                        .collect(),
                ),
            Err(e) => {
                tracing::debug!(%e, "JoinGroup refused");
                // MEMBER_ID_REQUIRED carries the id to join again with.
                let member = match &e {
                    GroupError::MemberIdRequired { member, .. } => member.clone(),
                    _ => member_id,
                };
                JoinGroupResponse::default()
                    .with_error_code(for_group_error(&e).code())
                    .with_generation_id(-1)
                    // Null where the field may be (v7+), else empty, as
                    // Kafka's JoinGroupResponse normalises it.
                    .with_protocol_name((version < 7).then(|| str_bytes("")))
                    .with_member_id(str_bytes(&member))
            }
        };
        encode(ApiKey::JoinGroup, version, &response).map(Some)
    })))
}

pub(crate) fn sync(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let request: SyncGroupRequest = decode(ApiKey::SyncGroup, version, body)?;
    if !caller.may_group(Read, &request.group_id.0) {
        let response =
            SyncGroupResponse::default().with_error_code(Code::GroupAuthorizationFailed.code());
        return encode(ApiKey::SyncGroup, version, &response).map(|b| Reply::Now(Some(b)));
    }
    let answer = shared.groups.sync(SyncRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: non_empty(request.group_instance_id),
        generation: request.generation_id,
        protocol_type: non_empty(request.protocol_type),
        protocol_name: non_empty(request.protocol_name),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    });
    Ok(Reply::Later(Box::pin(async move {
        let response = match answer.await {
            Ok(synced) => SyncGroupResponse::default()
                .with_protocol_type(Some(str_bytes(&synced.protocol_type)))
                .with_protocol_name(Some(str_bytes(&synced.protocol_name)))
                .with_assignment(Bytes::from(synced.assignment)),
            Err(e) => {
                tracing::debug!(%e, "SyncGroup refused");
                SyncGroupResponse::default().with_error_code(for_group_error(&e).code())
            }
        };
        encode(ApiKey::SyncGroup, version, &response).map(Some)
    })))
}

pub(crate) fn heartbeat(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: HeartbeatRequest = decode(ApiKey::Heartbeat, version, body)?;
    let instance = non_empty(request.group_instance_id);
    let code = if !caller.may_group(Read, &request.group_id.0) {
        Code::GroupAuthorizationFailed
    } else {
        match shared.groups.heartbeat(
            &request.group_id.0,
            &request.member_id,
            instance.as_deref(),
            request.generation_id,
        ) {
            Ok(()) => Code::None,
            Err(e) => for_group_error(&e),
        }
    };
    encode(
        ApiKey::Heartbeat,
        version,
        &HeartbeatResponse::default().with_error_code(code.code()),
    )
}

pub(crate) fn leave(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: LeaveGroupRequest = decode(ApiKey::LeaveGroup, version, body)?;
    if !caller.may_group(Read, &request.group_id.0) {
        let response =
            LeaveGroupResponse::default().with_error_code(Code::GroupAuthorizationFailed.code());
        return encode(ApiKey::LeaveGroup, version, &response);
    }
    let leaving: Vec<Leaving> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| Leaving {
                member_id: m.member_id.to_string(),
                instance_id: non_empty(m.group_instance_id.clone()),
            })
            .collect()
    } else {
        vec![Leaving {
            member_id: request.member_id.to_string(),
            instance_id: None,
        }]
    };
    let results = shared.groups.leave(&request.group_id.0, &leaving);
    let code = |r: &Result<(), GroupError>| match r {
        Ok(()) => Code::None,
        Err(e) => for_group_error(e),
    };
    let response = if version >= 3 {
        LeaveGroupResponse::default().with_members(
            leaving
                .iter()
                .zip(&results)
                .map(|(l, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&l.member_id))
                        .with_group_instance_id(l.instance_id.as_deref().map(str_bytes))
                        .with_error_code(code(r).code())
                })
                .collect(),
        )
    } else {
        LeaveGroupResponse::default()
            .with_error_code(results.first().map_or(Code::None, code).code())
    };
    encode(ApiKey::LeaveGroup, version, &response)
}
