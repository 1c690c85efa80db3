//! CreatePartitions: grow a topic's partition count (never shrink it),
//! with a manual replica assignment accepted when it names only this
//! broker.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

use super::{Caller, blocking, replica_assignment, str_bytes};
use crate::Shared;
use crate::authz::Alter;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: CreatePartitionsRequest = decode(ApiKey::CreatePartitions, version, body)?;
    let broker = shared.broker.clone();
    let validate_only = request.validate_only;
    let node_id = shared.config.node_id;
    let caller = caller.clone();
    let results = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                if !caller.may_topic(Alter, &t.name.0) {
                    return result
                        .with_error_code(Code::TopicAuthorizationFailed.code())
                        .with_error_message(None);
                }
                let count = i64::from(t.count);
                let refused = |e: weir_broker::BrokerError| (for_broker_error(&e), e.to_string());
                let assigned = match &t.assignments {
                    Some(assignments) => {
                        broker.topic(&t.name.0).map_err(refused).and_then(|topic| {
                            let lists: Vec<_> =
                                assignments.iter().map(|a| &a.broker_ids[..]).collect();
                            let current = topic.partition_count() as i64;
                            replica_assignment::for_new_partitions(&lists, current, count, node_id)
                        })
                    }
                    None => Ok(()),
                };
                let outcome = assigned.and_then(|()| {
                    broker
                        .create_partitions(&t.name.0, count, validate_only)
                        .map_err(refused)
                });
                match outcome {
                    Ok(()) => result,
                    Err((code, message)) => result
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::CreatePartitions,
        version,
        &CreatePartitionsResponse::default().with_results(results),
    )
}
