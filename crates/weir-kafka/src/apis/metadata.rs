//! Metadata: the one broker (this node, also the controller), and topics
//! with their partitions, creating requested topics when both the request
//! and the broker allow it.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse};
use weir_broker::{Broker, BrokerError, Topic};

use super::{Caller, blocking, operations, str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Create, Describe};
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

fn describe(topic: &Topic, node: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(super::leader_epoch::LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(uuid::Uuid::from_u128(topic.id))
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
}

fn failed(name: &str, error: Code) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_error_code(error.code())
}

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: MetadataRequest = decode(ApiKey::Metadata, version, body)?;
    // Before v4 every Metadata request may create topics.
    let may_create = shared.broker.config().auto_create_topics
        && (version < 4 || request.allow_auto_topic_creation);
    // Each asked topic by name, or (v10+, as KIP-848 consumers ask for
    // the topics of an assignment) by id alone.
    let names: Option<Vec<Wanted>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| match t.name {
                Some(n) if !n.0.is_empty() || t.topic_id.is_nil() => Wanted::Name(n.0.to_string()),
                _ => Wanted::Id(t.topic_id),
            })
            .collect()
    });
    let node = shared.config.node_id;
    let broker = shared.broker.clone();
    let caller2 = caller.clone();
    let topics: Vec<MetadataResponseTopic> = blocking(move || {
        let caller = caller2;
        // Every topic is only those the caller may describe; the others
        // are not mentioned, as Kafka hides them.
        let every = || {
            broker
                .topics()
                .iter()
                .filter(|t| caller.sees(Describe, ResourceType::Topic, &t.name))
                .map(|t| describe(t, node))
                .collect()
        };
        match names {
            // Null (or, before v1, empty) asks for every topic.
            None => every(),
            Some(names) if names.is_empty() && version == 0 => every(),
            Some(names) => names
                .iter()
                .map(|wanted| match wanted {
                    Wanted::Id(id) => by_id(&broker, &caller, *id, node, version),
                    Wanted::Name(name) => by_name(&broker, &caller, name, may_create, node),
                })
                .collect(),
        }
    })
    .await;
    // The operations each described topic allows the caller (all of them
    // with authorization off, as a Kafka broker without an authorizer).
    let topics = topics
        .into_iter()
        .map(|t| {
            let bits = match &t.name {
                _ if !request.include_topic_authorized_operations => operations::NOT_ASKED,
                _ if t.error_code != Code::None.code() => operations::NOT_ASKED,
                Some(name) => {
                    caller.authorized_operations(operations::TOPIC, ResourceType::Topic, &name.0)
                }
                None => operations::NOT_ASKED,
            };
            t.with_topic_authorized_operations(bits)
        })
        .collect();
    let cluster_operations = if request.include_cluster_authorized_operations {
        super::cluster::cluster_operations(caller)
    } else {
        operations::NOT_ASKED
    };
    let config = &shared.config;
    let response = MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(&caller.listener.advertised_host))
                .with_port(i32::from(caller.listener.advertised_port)),
        ])
        .with_cluster_id(Some(str_bytes(&config.cluster_id)))
        .with_controller_id(BrokerId(node))
        .with_topics(topics);
    encode(ApiKey::Metadata, version, &response)
}

/// A topic a Metadata request asks about.
enum Wanted {
    Name(String),
    Id(uuid::Uuid),
}

fn by_id(
    broker: &Broker,
    caller: &Caller,
    id: uuid::Uuid,
    node: i32,
    version: i16,
) -> MetadataResponseTopic {
    match broker.topic_by_id(id.as_u128()) {
        Some(topic) if !caller.may_topic(Describe, &topic.name) => MetadataResponseTopic::default()
            .with_name((version < 12).then(|| topic_name("")))
            .with_topic_id(id)
            .with_error_code(Code::TopicAuthorizationFailed.code()),
        Some(topic) => describe(&topic, node),
        // An unknown id has no name: null from v12, where the field may be.
        None => MetadataResponseTopic::default()
            .with_name((version < 12).then(|| topic_name("")))
            .with_topic_id(id)
            .with_error_code(Code::UnknownTopicId.code()),
    }
}

fn by_name(
    broker: &Broker,
    caller: &Caller,
    name: &str,
    may_create: bool,
    node: i32,
) -> MetadataResponseTopic {
    // Kafka: a topic the caller may not describe is refused whether or
    // not it exists; a missing one is created only for whoever may create
    // it (on the cluster or by name).
    if !caller.may_topic(Describe, name) {
        return failed(name, Code::TopicAuthorizationFailed);
    }
    match broker.topic(name) {
        Ok(topic) => describe(&topic, node),
        Err(_) if may_create && !caller.may_cluster(Create) && !caller.may_topic(Create, name) => {
            failed(name, Code::TopicAuthorizationFailed)
        }
        Err(_) if may_create => {
            let partitions = i64::from(broker.config().default_partitions);
            match broker.create_topic(name, partitions, -1, &[], false) {
                Ok(topic) => describe(&topic, node),
                // Created meanwhile by someone else.
                Err(BrokerError::TopicAlreadyExists { .. }) => match broker.topic(name) {
                    Ok(topic) => describe(&topic, node),
                    Err(e) => failed(name, for_broker_error(&e)),
                },
                Err(e) => failed(name, for_broker_error(&e)),
            }
        }
        Err(e) => failed(name, for_broker_error(&e)),
    }
}
