//! CreatePartitions: grow a topic's partition count (never shrink it).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

use super::{blocking, str_bytes};
use crate::Shared;
use crate::codes::for_broker_error;
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: CreatePartitionsRequest = decode(ApiKey::CreatePartitions, version, body)?;
    let broker = shared.broker.clone();
    let validate_only = request.validate_only;
    let results = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let outcome = if t.assignments.is_some_and(|a| !a.is_empty()) {
                    Err(weir_broker::BrokerError::PolicyViolation {
                        reason: "manual replica assignment is not supported: this broker holds every partition".into(),
                    })
                } else {
                    broker.create_partitions(&t.name.0, i64::from(t.count), validate_only)
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(for_broker_error(&e).code())
                        .with_error_message(Some(str_bytes(&e.to_string()))),
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
