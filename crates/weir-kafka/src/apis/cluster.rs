//! The cluster as a one-node KRaft cluster shows it: DescribeCluster (this
//! broker, also the controller), DescribeQuorum (this node the only voter
//! and the leader of the metadata quorum) and ListConfigResources (the
//! topics, the broker and the groups that configs can be described for).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{
    self, Listener, Node, PartitionData, ReplicaState,
};
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, ListConfigResourcesRequest, ListConfigResourcesResponse,
};

use super::{Caller, operations, str_bytes, topic_name};
use crate::Shared;
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

/// KIP-919 endpoint types: what a DescribeCluster asks to be told about.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

pub(crate) fn describe_cluster(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: DescribeClusterRequest = decode(ApiKey::DescribeCluster, version, body)?;
    let config = &shared.config;
    // Clients reach this node through its broker listener; one that wants
    // the controllers' endpoints is told it came to the wrong kind, as a
    // Kafka broker tells it (v0 has no codes for either case).
    let refused = match request.endpoint_type {
        ENDPOINT_BROKER => None,
        ENDPOINT_CONTROLLER => Some((
            Code::MismatchedEndpointType,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_owned(),
        )),
        other => Some((
            Code::UnsupportedEndpointType,
            format!("Unsupported endpoint type {other}"),
        )),
    };
    let response = match refused {
        Some((code, message)) => {
            let code = if version == 0 {
                Code::InvalidRequest
            } else {
                code
            };
            DescribeClusterResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message)))
        }
        None => DescribeClusterResponse::default()
            .with_endpoint_type(ENDPOINT_BROKER)
            .with_cluster_id(str_bytes(&config.cluster_id))
            // Kafka brokers name a live broker here, as clients cannot
            // reach KRaft controllers: this one.
            .with_controller_id(BrokerId(config.node_id))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(config.node_id))
                    .with_host(str_bytes(&caller.listener.advertised_host))
                    .with_port(i32::from(caller.listener.advertised_port)),
            ])
            // As Kafka: anyone may describe the cluster's brokers; what it
            // may do is told only to whoever may describe the cluster.
            .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
                cluster_operations(caller)
            } else {
                operations::NOT_ASKED
            }),
    };
    encode(ApiKey::DescribeCluster, version, &response)
}

/// The metadata log's topic, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// The leader epoch of the quorum: elected once, at the first epoch.
const QUORUM_EPOCH: i32 = 1;

/// The name of the listener voters are reached on: Weir has one listener,
/// plain text, for clients and the controller alike.
const LISTENER_NAME: &str = "PLAINTEXT";

/// The cluster's operations the caller may do, or none if it may not
/// describe the cluster (Kafka's answer to `include_*_authorized_operations`).
pub(crate) fn cluster_operations(caller: &Caller) -> i32 {
    if caller.sees(
        crate::authz::Describe,
        ResourceType::Cluster,
        weir_auth::acl::CLUSTER_NAME,
    ) {
        caller.authorized_operations(
            operations::CLUSTER,
            ResourceType::Cluster,
            weir_auth::acl::CLUSTER_NAME,
        )
    } else {
        0
    }
}

pub(crate) fn describe_quorum(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: DescribeQuorumRequest = decode(ApiKey::DescribeQuorum, version, body)?;
    if !caller.may_cluster(crate::authz::Describe) {
        let response = DescribeQuorumResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(None);
        return encode(ApiKey::DescribeQuorum, version, &response);
    }
    let asks_metadata_partition = request.topics.len() == 1
        && request.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    let response = if asks_metadata_partition {
        quorum(version, shared)
    } else {
        // As the Raft leader answers a request for any other partition.
        let code = Code::UnknownTopicOrPartition;
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                describe_quorum_response::TopicData::default()
                    .with_topic_name(t.topic_name)
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                                    .with_error_message(Some(str_bytes(
                                        "This server does not host this topic-partition.",
                                    )))
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeQuorumResponse::default()
            .with_error_message(None)
            .with_topics(topics)
    };
    encode(ApiKey::DescribeQuorum, version, &response)
}

/// This node as the only voter and the leader. Weir keeps no metadata log,
/// so its high watermark and end offset are 0, the leader always caught up
/// (fetch times from v1, the voters' listeners from v2).
fn quorum(version: i16, shared: &Shared) -> DescribeQuorumResponse {
    let config = &shared.config;
    let mut this_node = ReplicaState::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_log_end_offset(0);
    if version >= 1 {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        this_node = this_node
            .with_last_fetch_timestamp(now_ms)
            .with_last_caught_up_timestamp(now_ms);
    }
    let partition = PartitionData::default()
        .with_error_message(None)
        .with_partition_index(0)
        .with_leader_id(BrokerId(config.node_id))
        .with_leader_epoch(QUORUM_EPOCH)
        .with_high_watermark(0)
        .with_current_voters(vec![this_node])
        .with_observers(Vec::new());
    let response = DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition]),
        ]);
    if version < 2 {
        return response;
    }
    response.with_nodes(vec![
        Node::default()
            .with_node_id(BrokerId(config.node_id))
            .with_listeners(vec![
                Listener::default()
                    .with_name(str_bytes(LISTENER_NAME))
                    .with_host(str_bytes(&config.advertised_host))
                    .with_port(config.advertised_port),
            ]),
    ])
}

/// Config resource types (Kafka's `ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

/// The types v1 lists (KIP-1142); an empty request asks for all of them.
const LISTED_TYPES: [i8; 5] = [
    RESOURCE_TOPIC,
    RESOURCE_BROKER,
    RESOURCE_BROKER_LOGGER,
    RESOURCE_CLIENT_METRICS,
    RESOURCE_GROUP,
];

pub(crate) fn list_config_resources(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: ListConfigResourcesRequest = decode(ApiKey::ListConfigResources, version, body)?;
    // v0 was ListClientMetricsResources: client-metrics subscriptions only,
    // and Weir has none.
    let types: Vec<i8> = if version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if request.resource_types.is_empty() {
        LISTED_TYPES.to_vec()
    } else {
        request.resource_types
    };
    let response = if !caller.may_cluster(crate::authz::DescribeConfigs) {
        ListConfigResourcesResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
    } else if types.iter().any(|t| !LISTED_TYPES.contains(t)) {
        // As Kafka: a type outside the set this version defines.
        ListConfigResourcesResponse::default().with_error_code(Code::UnsupportedVersion.code())
    } else {
        let node = shared.config.node_id.to_string();
        let mut resources = Vec::new();
        let mut add = |resource_type: i8, name: &str| {
            resources.push(
                ConfigResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name)),
            );
        };
        if types.contains(&RESOURCE_TOPIC) {
            for topic in shared.broker.topics() {
                add(RESOURCE_TOPIC, &topic.name);
            }
        }
        if types.contains(&RESOURCE_BROKER) {
            add(RESOURCE_BROKER, &node);
        }
        if types.contains(&RESOURCE_BROKER_LOGGER) {
            add(RESOURCE_BROKER_LOGGER, &node);
        }
        if types.contains(&RESOURCE_GROUP) {
            for group in shared.groups.list_groups() {
                add(RESOURCE_GROUP, &group.group);
            }
        }
        ListConfigResourcesResponse::default().with_config_resources(resources)
    };
    encode(ApiKey::ListConfigResources, version, &response)
}
