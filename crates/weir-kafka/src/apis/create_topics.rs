//! CreateTopics: each topic created (or, with `validate_only`, checked)
//! on its own, with an error code and message per topic. A manual replica
//! assignment is accepted when it names only this broker.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};

use super::{Caller, blocking, replica_assignment, str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Create, DescribeConfigs};
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: CreateTopicsRequest = decode(ApiKey::CreateTopics, version, body)?;
    let broker = shared.broker.clone();
    let validate_only = request.validate_only;
    let node_id = shared.config.node_id;
    // Kafka: CREATE on the cluster allows every topic, else CREATE on each.
    let caller = caller.clone();
    let cluster_create = caller.may_cluster(Create);
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let configs: Vec<(String, String)> = t
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                let pairs: Vec<(&str, &str)> = configs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let result = CreatableTopicResult::default().with_name(topic_name(&name));
                if !cluster_create && !caller.may_topic(Create, &name) {
                    return result
                        .with_error_code(Code::TopicAuthorizationFailed.code())
                        .with_error_message(Some(str_bytes("Authorization failed.")))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1);
                }
                // Its configs are answered only to whoever may describe them.
                let show_configs = caller.may_topic(DescribeConfigs, &name);
                let partitions = if t.assignments.is_empty() {
                    Ok(i64::from(t.num_partitions))
                } else {
                    let assignments: Vec<_> = t
                        .assignments
                        .iter()
                        .map(|a| (a.partition_index, &a.broker_ids[..]))
                        .collect();
                    replica_assignment::for_new_topic(
                        &assignments,
                        t.num_partitions,
                        t.replication_factor,
                        node_id,
                    )
                };
                let created = partitions.and_then(|partitions| {
                    broker
                        .create_topic(
                            &name,
                            partitions,
                            t.replication_factor,
                            &pairs,
                            validate_only,
                        )
                        .map_err(|e| (for_broker_error(&e), e.to_string()))
                });
                match created {
                    Ok(topic) if !show_configs => result
                        .with_topic_id(uuid::Uuid::from_u128(topic.id))
                        .with_num_partitions(topic.partition_count() as i32)
                        .with_replication_factor(1)
                        .with_configs(None)
                        .with_topic_config_error_code(Code::TopicAuthorizationFailed.code())
                        .with_error_message(None),
                    Ok(topic) => {
                        let configs = topic
                            .config()
                            .entries()
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(e.name))
                                    .with_value(Some(str_bytes(&e.value)))
                                    .with_config_source(super::broker_configs::source_code(
                                        e.source,
                                    ))
                                    .with_read_only(false)
                                    .with_is_sensitive(false)
                            })
                            .collect();
                        result
                            .with_topic_id(uuid::Uuid::from_u128(topic.id))
                            .with_num_partitions(topic.partition_count() as i32)
                            .with_replication_factor(1)
                            .with_configs(Some(configs))
                            .with_error_message(None)
                    }
                    Err((code, message)) => result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(&message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::CreateTopics,
        version,
        &CreateTopicsResponse::default().with_topics(topics),
    )
}
