//! DescribeProducers: the idempotent producers each asked partition holds
//! state for (rebuilt from batch headers on open, so a producer silent
//! longer than that window is not listed). Transactions are not served yet,
//! so no producer has a coordinator epoch or an open transaction.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use weir_broker::{BrokerError, validate_topic_name};

use super::{Caller, str_bytes};
use crate::Shared;
use crate::authz::Read;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

pub(crate) fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DescribeProducersRequest = decode(ApiKey::DescribeProducers, version, body)?;
    let broker = &shared.broker;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            // A bad name or an unknown topic fails each of its partitions,
            // with Kafka's message for the code.
            let topic_error = match validate_topic_name(&name) {
                _ if !caller.may_topic(Read, &name) => Some((
                    Code::TopicAuthorizationFailed,
                    "Authorization failed.".to_owned(),
                )),
                Err(e) => Some((for_broker_error(&e), e.to_string())),
                Ok(()) => broker.topic(&name).err().map(|_| {
                    (
                        Code::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.".to_owned(),
                    )
                }),
            };
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|p| {
                    let response = PartitionResponse::default().with_partition_index(p);
                    if let Some((code, message)) = &topic_error {
                        return response
                            .with_error_code(code.code())
                            .with_error_message(Some(str_bytes(message)));
                    }
                    match broker.producers(&name, p) {
                        Ok(states) => response.with_active_producers(
                            states
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(i32::from(s.producer_epoch))
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp_ms)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect(),
                        ),
                        // A partition the topic does not have: the code
                        // alone, as Kafka's replica manager answers.
                        Err(e @ BrokerError::UnknownPartition { .. }) => {
                            response.with_error_code(for_broker_error(&e).code())
                        }
                        Err(e) => response
                            .with_error_code(for_broker_error(&e).code())
                            .with_error_message(Some(str_bytes(&e.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::DescribeProducers,
        version,
        &DescribeProducersResponse::default().with_topics(topics),
    )
}
