//! DescribeConfigs, AlterConfigs (which replaces a resource's whole set)
//! and IncrementalAlterConfigs (SET, DELETE, and APPEND / SUBTRACT on list
//! configs), for TOPIC and BROKER resources. Topic configs come from the
//! broker's table with sources, synonyms, types and docs as Kafka fills
//! them; broker configs from `broker_configs`. BROKER_LOGGER resources are
//! refused: Weir's log levels are set by its `RUST_LOG` filter.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use weir_broker::config_defs::TOPIC_CONFIGS;
use weir_broker::{Broker, BrokerError, ConfigOp, list_items};

use super::broker_configs::{self as bc, BrokerTarget};
use super::group_configs as gc;
use super::{Caller, str_bytes};
use crate::Shared;
use crate::authz::{AlterConfigs, DescribeConfigs};
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::Operation;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// What a DescribeConfigs resource asks for beyond names and values.
#[derive(Debug, Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

fn wanted(keys: Option<&[String]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k == name))
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: Option<&[String]>,
    detail: Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, BrokerError> {
    let topic = broker.topic(name)?;
    Ok(topic
        .config()
        .entries()
        .into_iter()
        .filter(|e| wanted(keys, e.name))
        .map(|e| {
            let synonyms = synonyms(
                detail,
                e.synonyms
                    .iter()
                    .map(|s| (s.name, s.value.as_str(), bc::source_code(s.source))),
            );
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(e.name))
                .with_value(Some(str_bytes(&e.value)))
                .with_config_source(bc::source_code(e.source))
                .with_config_type(bc::type_code(e.def.kind))
                .with_read_only(topic.internal)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_documentation(detail.documentation.then(|| str_bytes(e.def.doc)))
        })
        .collect())
}

/// A described entry's synonyms (name, value, source code), when asked.
fn synonyms<'a>(
    detail: Detail,
    list: impl Iterator<Item = (&'a str, &'a str, i8)>,
) -> Vec<DescribeConfigsSynonym> {
    if !detail.synonyms {
        return Vec::new();
    }
    list.map(|(name, value, source)| {
        DescribeConfigsSynonym::default()
            .with_name(str_bytes(name))
            .with_value(Some(str_bytes(value)))
            .with_source(source)
    })
    .collect()
}

fn describe_broker(
    shared: &Shared,
    target: BrokerTarget,
    keys: Option<&[String]>,
    detail: Detail,
) -> Vec<DescribeConfigsResourceResult> {
    bc::entries(shared, target)
        .into_iter()
        .filter(|e| wanted(keys, e.name))
        .map(|e| {
            let synonyms = synonyms(
                detail,
                e.synonyms
                    .iter()
                    .map(|(name, value, source)| (&name[..], &value[..], *source)),
            );
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(e.name))
                .with_value(Some(str_bytes(&e.value)))
                .with_config_source(e.source)
                .with_config_type(e.config_type)
                .with_read_only(e.read_only)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_documentation(detail.documentation.then(|| str_bytes(e.doc)))
        })
        .collect()
}

/// The refusal of a resource whose configs the caller may not describe
/// or alter (`operation`): the error Kafka gives for its type.
fn denied(caller: &Caller, operation: Operation, resource_type: i8, name: &str) -> Option<i16> {
    let (allowed, code) = match resource_type {
        RESOURCE_TOPIC => (
            caller.may_topic(operation, name),
            Code::TopicAuthorizationFailed,
        ),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => (
            caller.may_cluster(operation),
            Code::ClusterAuthorizationFailed,
        ),
        gc::RESOURCE_GROUP => (
            caller.may_group(operation, name),
            Code::GroupAuthorizationFailed,
        ),
        _ => (true, Code::None),
    };
    (!allowed).then_some(code.code())
}

fn logger_refusal() -> (i16, Option<String>) {
    (
        Code::InvalidRequest.code(),
        Some("broker loggers are not configurable over Kafka: Weir's log levels come from its RUST_LOG filter".into()),
    )
}

pub(crate) async fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DescribeConfigsRequest = decode(ApiKey::DescribeConfigs, version, body)?;
    let shared = shared.clone();
    let caller = caller.clone();
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = super::blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let keys: Option<Vec<String>> = r
                    .configuration_keys
                    .map(|k| k.iter().map(ToString::to_string).collect());
                let keys = keys.as_deref();
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                let fail = |result: DescribeConfigsResult, code: i16, message: String| {
                    result
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(&message)))
                };
                if let Some(code) = denied(&caller, DescribeConfigs, r.resource_type, &name) {
                    return fail(
                        result,
                        code,
                        format!("not authorized to describe the configs of {name:?}"),
                    );
                }
                match r.resource_type {
                    RESOURCE_TOPIC => match describe_topic(&shared.broker, &name, keys, detail) {
                        Ok(configs) => result.with_configs(configs),
                        Err(e) => fail(result, for_broker_error(&e).code(), e.to_string()),
                    },
                    RESOURCE_BROKER => match bc::target(&shared, &name) {
                        Ok(target) => {
                            result.with_configs(describe_broker(&shared, target, keys, detail))
                        }
                        Err(message) => fail(result, Code::InvalidRequest.code(), message),
                    },
                    RESOURCE_BROKER_LOGGER => {
                        let (code, message) = logger_refusal();
                        fail(result, code, message.unwrap_or_default())
                    }
                    gc::RESOURCE_GROUP => result.with_configs(shared.group_configs.describe(
                        &name,
                        shared.config.share_start_earliest,
                        |k| wanted(keys, k),
                    )),
                    other => fail(
                        result,
                        Code::InvalidRequest.code(),
                        format!("resource type {other} has no configs here"),
                    ),
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

/// One change as decoded from either alter API.
#[derive(Debug, Clone)]
struct Change {
    name: String,
    op: i8,
    value: Option<String>,
}

/// Applies one resource's changes; returns its error code and message.
fn alter_resource(
    shared: &Shared,
    resource_type: i8,
    name: &str,
    changes: Vec<Change>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = changes.iter().find(|c| !seen.insert(c.name.as_str())) {
        return (
            Code::InvalidRequest.code(),
            Some(format!("config {:?} is named twice", dup.name)),
        );
    }
    match resource_type {
        RESOURCE_TOPIC => {
            let ops: Result<Vec<(&str, ConfigOp<'_>)>, BrokerError> = changes
                .iter()
                .map(|c| {
                    let v = c.value.as_deref().unwrap_or_default();
                    let op = match c.op {
                        OP_SET => ConfigOp::Set(v),
                        OP_DELETE => ConfigOp::Delete,
                        OP_APPEND => ConfigOp::Append(v),
                        OP_SUBTRACT => ConfigOp::Subtract(v),
                        op => {
                            return Err(BrokerError::InvalidConfig {
                                key: c.name.clone(),
                                value: v.to_owned(),
                                reason: format!("unknown operation {op}"),
                            });
                        }
                    };
                    Ok((c.name.as_str(), op))
                })
                .collect();
            match ops.and_then(|ops| {
                shared
                    .broker
                    .alter_topic_config_ops(name, &ops, validate_only)
            }) {
                Ok(()) => (0, None),
                Err(e) => (for_broker_error(&e).code(), Some(e.to_string())),
            }
        }
        RESOURCE_BROKER => {
            let target = match bc::target(shared, name) {
                Ok(t) => t,
                Err(message) => return (Code::InvalidRequest.code(), Some(message)),
            };
            let resolved = match broker_values(shared, target, changes) {
                Ok(r) => r,
                Err(message) => return (Code::InvalidConfig.code(), Some(message)),
            };
            match bc::alter(shared, target, &resolved, validate_only) {
                Ok(()) => (0, None),
                Err((code, message)) => (code.code(), Some(message)),
            }
        }
        RESOURCE_BROKER_LOGGER => logger_refusal(),
        gc::RESOURCE_GROUP => {
            let changes: Vec<(String, i8, Option<String>)> = changes
                .into_iter()
                .map(|c| (c.name, c.op, c.value))
                .collect();
            match shared.group_configs.alter(name, &changes, validate_only) {
                Ok(()) => (0, None),
                Err((code, message)) => (code.code(), Some(message)),
            }
        }
        other => (
            Code::InvalidRequest.code(),
            Some(format!(
                "resource type {other} has no configs to alter here"
            )),
        ),
    }
}

/// Turns broker changes into new values (`None` deletes): APPEND and
/// SUBTRACT work from the current value at the resource's level, on list
/// configs only.
fn broker_values(
    shared: &Shared,
    target: BrokerTarget,
    changes: Vec<Change>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let current = bc::entries(shared, target);
    changes
        .into_iter()
        .map(|c| {
            let value = match c.op {
                OP_SET => Some(c.value.unwrap_or_default()),
                OP_DELETE => None,
                OP_APPEND | OP_SUBTRACT => {
                    let entry = current.iter().find(|e| e.name == c.name);
                    if entry.is_some_and(|e| e.config_type != bc::TYPE_LIST) {
                        return Err(format!(
                            "APPEND and SUBTRACT apply only to list configs, not {:?}",
                            c.name
                        ));
                    }
                    let now = entry.map(|e| e.value.clone()).unwrap_or_default();
                    let given = c.value.unwrap_or_default();
                    let mut items: Vec<&str> = list_items(&now);
                    let change = list_items(&given);
                    if c.op == OP_APPEND {
                        for i in change {
                            if !items.contains(&i) {
                                items.push(i);
                            }
                        }
                    } else {
                        items.retain(|i| !change.contains(i));
                    }
                    Some(items.join(","))
                }
                op => return Err(format!("unknown operation {op}")),
            };
            Ok((c.name, value))
        })
        .collect()
}

pub(crate) async fn alter(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: AlterConfigsRequest = decode(ApiKey::AlterConfigs, version, body)?;
    let shared = shared.clone();
    let caller = caller.clone();
    let validate_only = request.validate_only;
    let responses = super::blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                // The legacy API replaces the whole set: what is not named
                // goes back to its default.
                let mut changes: Vec<Change> = r
                    .configs
                    .iter()
                    .map(|c| Change {
                        name: c.name.to_string(),
                        op: if c.value.is_some() { OP_SET } else { OP_DELETE },
                        value: c.value.as_ref().map(ToString::to_string),
                    })
                    .collect();
                let unnamed: Vec<&str> = match r.resource_type {
                    RESOURCE_TOPIC => TOPIC_CONFIGS.iter().map(|d| d.name).collect(),
                    RESOURCE_BROKER => TOPIC_CONFIGS.iter().filter_map(|d| d.broker_name).collect(),
                    _ => Vec::new(),
                };
                for name in unnamed {
                    if !changes.iter().any(|c| c.name == name) {
                        changes.push(Change {
                            name: name.to_owned(),
                            op: OP_DELETE,
                            value: None,
                        });
                    }
                }
                let (code, message) = match denied(&caller, AlterConfigs, r.resource_type, &r.resource_name) {
                    Some(code) => (code, None),
                    None => alter_resource(&shared, r.resource_type, &r.resource_name, changes, validate_only),
                };
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
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: IncrementalAlterConfigsRequest =
        decode(ApiKey::IncrementalAlterConfigs, version, body)?;
    let shared = shared.clone();
    let caller = caller.clone();
    let validate_only = request.validate_only;
    let responses = super::blocking(move || {
        request
            .resources
            .into_iter()
            .map(|r| {
                let changes = r
                    .configs
                    .iter()
                    .map(|c| Change {
                        name: c.name.to_string(),
                        op: c.config_operation,
                        value: c.value.as_ref().map(ToString::to_string),
                    })
                    .collect();
                let (code, message) = match denied(&caller, AlterConfigs, r.resource_type, &r.resource_name) {
                    Some(code) => (code, None),
                    None => alter_resource(&shared, r.resource_type, &r.resource_name, changes, validate_only),
                };
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
