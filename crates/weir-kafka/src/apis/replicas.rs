//! Replica placement on one node: ElectLeaders (every partition already
//! has its preferred leader, this node), ListPartitionReassignments (none
//! is ever in progress) and AlterPartitionReassignments (only this node can
//! hold a replica, so the one valid target is the current one, a no-op),
//! each with the codes and messages Kafka's controller gives.

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use weir_broker::Broker;

use super::Caller;
use super::{str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Alter, Describe};
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

/// Election types (Kafka's `ElectionType`).
const ELECTION_PREFERRED: i8 = 0;
const ELECTION_UNCLEAN: i8 = 1;

/// A per-partition outcome: a code and, where Kafka gives one, a message.
type Outcome = (Code, Option<String>);

pub(crate) fn elect_leaders(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ElectLeadersRequest = decode(ApiKey::ElectLeaders, version, body)?;
    let broker = &shared.broker;
    let refused = if !caller.may_cluster(Alter) {
        Some((Code::ClusterAuthorizationFailed, None))
    } else if ![ELECTION_PREFERRED, ELECTION_UNCLEAN].contains(&request.election_type) {
        let message = format!("Unknown election type {}", request.election_type);
        Some((Code::InvalidRequest, Some(message)))
    } else {
        None
    };
    let response = if let Some((code, message)) = refused {
        // The whole request fails, and so does each partition it names.
        let results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .into_iter()
                            .map(|p| result(p, (code, message.clone())))
                            .collect(),
                    )
            })
            .collect();
        ElectLeadersResponse::default()
            .with_error_code(code.code())
            .with_replica_election_results(results)
    } else {
        let results = match request.topic_partitions {
            // Every partition, but (as Kafka) only those an election would
            // change are listed: here none, under each topic.
            None => broker
                .topics()
                .iter()
                .map(|t| ReplicaElectionResult::default().with_topic(topic_name(&t.name)))
                .collect(),
            Some(topics) => topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|&p| result(p, election(broker, &t.topic.0, p)))
                        .collect();
                    ReplicaElectionResult::default()
                        .with_topic(t.topic)
                        .with_partition_result(partitions)
                })
                .collect(),
        };
        ElectLeadersResponse::default().with_replica_election_results(results)
    };
    encode(ApiKey::ElectLeaders, version, &response)
}

fn election(broker: &Broker, topic: &str, partition: i32) -> Outcome {
    match partition_exists(broker, topic, partition) {
        Err(unknown) => unknown,
        // This node leads every partition and is its only replica: neither
        // a preferred nor an unclean election has anything to do.
        Ok(()) => (
            Code::ElectionNotNeeded,
            Some("Leader election not needed for topic partition.".to_owned()),
        ),
    }
}

fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> Result<(), Outcome> {
    let t = broker.topic(topic).map_err(|_| {
        (
            Code::UnknownTopicOrPartition,
            Some(format!("No such topic as {topic}")),
        )
    })?;
    if partition < 0 || partition as usize >= t.partition_count() {
        return Err((
            Code::UnknownTopicOrPartition,
            Some(format!("No such partition as {topic}-{partition}")),
        ));
    }
    Ok(())
}

fn result(partition: i32, (code, message): Outcome) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(code.code())
        .with_error_message(message.as_deref().map(str_bytes))
}

pub(crate) fn list_reassignments(
    version: i16,
    body: Bytes,
    caller: &Caller,
) -> Result<Bytes, ConnError> {
    // Whatever is asked, known or not: nothing is moving.
    let _request: ListPartitionReassignmentsRequest =
        decode(ApiKey::ListPartitionReassignments, version, body)?;
    let mut response = ListPartitionReassignmentsResponse::default().with_error_message(None);
    if !caller.may_cluster(Describe) {
        response = response.with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    encode(ApiKey::ListPartitionReassignments, version, &response)
}

pub(crate) fn alter_reassignments(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: AlterPartitionReassignmentsRequest =
        decode(ApiKey::AlterPartitionReassignments, version, body)?;
    if !caller.may_cluster(Alter) {
        let response = AlterPartitionReassignmentsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(None);
        return encode(ApiKey::AlterPartitionReassignments, version, &response);
    }
    let node = shared.config.node_id;
    let responses = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let (code, message) = reassign(
                        &shared.broker,
                        &t.name.0,
                        p.partition_index,
                        p.replicas.as_deref(),
                        node,
                    )
                    .err()
                    .unwrap_or((Code::None, None));
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                        .with_error_message(message.as_deref().map(str_bytes))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::AlterPartitionReassignments,
        version,
        &AlterPartitionReassignmentsResponse::default()
            .with_error_message(None)
            .with_allow_replication_factor_change(request.allow_replication_factor_change)
            .with_responses(responses),
    )
}

/// Moves one partition's replicas to `target` (null: cancels a move in
/// progress). The only assignment one node can hold is the one it has.
fn reassign(
    broker: &Broker,
    topic: &str,
    partition: i32,
    target: Option<&[BrokerId]>,
    node: i32,
) -> Result<(), Outcome> {
    let t = broker.topic(topic).map_err(|_| {
        (
            Code::UnknownTopicOrPartition,
            Some(format!("Unable to find a topic named {topic}.")),
        )
    })?;
    if partition < 0 || partition as usize >= t.partition_count() {
        return Err((
            Code::UnknownTopicOrPartition,
            Some(format!("Unable to find partition {topic}:{partition}.")),
        ));
    }
    let Some(target) = target else {
        // Kafka leaves out a message that only repeats the code's.
        return Err((Code::NoReassignmentInProgress, None));
    };
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_owned(),
        ));
    }
    let mut sorted: Vec<i32> = target.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    let mut previous = None;
    for id in sorted {
        if id != node {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if previous == Some(id) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
        previous = Some(id);
    }
    Ok(())
}

fn invalid(message: String) -> Outcome {
    (Code::InvalidReplicaAssignment, Some(message))
}
