//! DescribeConfigs, AlterConfigs (which replaces a topic's whole set) and
//! IncrementalAlterConfigs (SET and DELETE per key), for topics. Broker
//! resources describe as empty: Weir's broker settings are its command
//! line, not Kafka configs.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use weir_broker::{Broker, BrokerError, TOPIC_CONFIG_KEYS};

use super::{blocking, str_bytes};
use crate::Shared;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config sources and types, as Kafka numbers them.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn config_type(name: &str) -> i8 {
    match name {
        "retention.ms" | "retention.bytes" => TYPE_LONG,
        "cleanup.policy" => TYPE_LIST,
        _ => TYPE_INT,
    }
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: Option<&[String]>,
) -> Result<Vec<DescribeConfigsResourceResult>, BrokerError> {
    let topic = broker.topic(name)?;
    Ok(topic
        .config()
        .entries()
        .into_iter()
        .filter(|e| keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k == e.name)))
        .map(|e| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(e.name))
                .with_value(Some(str_bytes(&e.value)))
                .with_config_source(if e.is_default {
                    SOURCE_DEFAULT
                } else {
                    SOURCE_TOPIC
                })
                .with_config_type(config_type(e.name))
                .with_read_only(topic.internal)
        })
        .collect())
}

pub(crate) async fn describe(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DescribeConfigsRequest = decode(ApiKey::DescribeConfigs, version, body)?;
    let broker = shared.broker.clone();
    let results = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let keys: Option<Vec<String>> = r
                    .configuration_keys
                    .map(|k| k.iter().map(ToString::to_string).collect());
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                match r.resource_type {
                    RESOURCE_TOPIC => match describe_topic(&broker, &name, keys.as_deref()) {
                        Ok(configs) => result.with_configs(configs),
                        Err(e) => result
                            .with_error_code(for_broker_error(&e).code())
                            .with_error_message(Some(str_bytes(&e.to_string()))),
                    },
                    RESOURCE_BROKER => result,
                    other => result
                        .with_error_code(Code::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(&format!(
                            "resource type {other} has no configs here"
                        )))),
                }
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::DescribeConfigs,
        version,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

/// One resource's outcome: the error code and message of an alter.
fn outcome(result: Result<(), BrokerError>) -> (i16, Option<String>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (for_broker_error(&e).code(), Some(e.to_string())),
    }
}

fn alter_topic(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, Option<String>)>, BrokerError>,
    validate_only: bool,
) -> (i16, Option<String>) {
    if resource_type != RESOURCE_TOPIC {
        return (
            Code::InvalidRequest.code(),
            Some(format!(
                "only topic configs (resource type {RESOURCE_TOPIC}) can be altered"
            )),
        );
    }
    outcome(changes.and_then(|changes| {
        let changes: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        broker.alter_topic_config(name, &changes, validate_only)
    }))
}

pub(crate) async fn alter(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: AlterConfigsRequest = decode(ApiKey::AlterConfigs, version, body)?;
    let broker = shared.broker.clone();
    let validate_only = request.validate_only;
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                // The legacy API replaces the whole set: keys not named go
                // back to their defaults.
                let named: Vec<(String, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(ToString::to_string)))
                    .collect();
                let mut changes: Vec<(String, Option<String>)> = TOPIC_CONFIG_KEYS
                    .iter()
                    .filter(|k| !named.iter().any(|(n, _)| n == *k))
                    .map(|k| ((*k).to_owned(), None))
                    .collect();
                changes.extend(named);
                let (code, message) = alter_topic(&broker, r.resource_type, &r.resource_name, Ok(changes), validate_only);
                kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::AlterConfigs,
        version,
        &AlterConfigsResponse::default().with_responses(responses),
    )
}

pub(crate) async fn incremental_alter(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: IncrementalAlterConfigsRequest =
        decode(ApiKey::IncrementalAlterConfigs, version, body)?;
    let broker = shared.broker.clone();
    let validate_only = request.validate_only;
    let responses = blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let changes: Result<Vec<_>, BrokerError> = r
                    .configs
                    .iter()
                    .map(|c| match c.config_operation {
                        OP_SET => Ok((c.name.to_string(), Some(c.value.as_ref().map(ToString::to_string).unwrap_or_default()))),
                        OP_DELETE => Ok((c.name.to_string(), None)),
                        op => Err(BrokerError::InvalidConfig {
                            key: c.name.to_string(),
                            value: c.value.as_ref().map(ToString::to_string).unwrap_or_default(),
                            reason: format!("operation {op} (APPEND/SUBTRACT) applies to list configs, and none here takes more than one value"),
                        }),
                    })
                    .collect();
                let (code, message) = alter_topic(&broker, r.resource_type, &r.resource_name, changes, validate_only);
                kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::IncrementalAlterConfigs,
        version,
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}
