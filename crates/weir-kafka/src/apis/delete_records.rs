//! DeleteRecords: each named partition's log start offset moves to the
//! requested offset (`-1`: the high watermark), durably before the answer,
//! and whole segments below it are deleted. Each partition is answered with
//! its new start (`low_watermark`) or an error code: OFFSET_OUT_OF_RANGE
//! for an offset below 0 (other than -1) or above the high watermark,
//! UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION for an internal
//! topic; the low watermark is then -1, as Kafka answers.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use super::{Caller, blocking};
use crate::Shared;
use crate::authz::Delete;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

/// The offset a request gives to mean "the high watermark" (Kafka's
/// `DeleteRecordsRequest.HIGH_WATERMARK`).
const HIGH_WATERMARK: i64 = -1;
/// The low watermark of a partition answered with an error.
const INVALID_LOW_WATERMARK: i64 = -1;

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DeleteRecordsRequest = decode(ApiKey::DeleteRecords, version, body)?;
    let broker = shared.broker.clone();
    let caller = caller.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let denied = !caller.may_topic(Delete, &name);
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result =
                            DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                        if denied {
                            return result
                                .with_low_watermark(INVALID_LOW_WATERMARK)
                                .with_error_code(Code::TopicAuthorizationFailed.code());
                        }
                        let offset = if p.offset == HIGH_WATERMARK {
                            broker
                                .partition(&name, p.partition_index)
                                .map(|log| log.high_watermark())
                        } else {
                            Ok(p.offset)
                        };
                        match offset.and_then(|o| broker.delete_records(&name, p.partition_index, o))
                        {
                            Ok(deleted) => result.with_low_watermark(deleted.log_start_offset),
                            Err(e) => {
                                tracing::debug!(topic = %name, partition = p.partition_index, %e, "delete records refused");
                                result
                                    .with_low_watermark(INVALID_LOW_WATERMARK)
                                    .with_error_code(for_broker_error(&e).code())
                            }
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::DeleteRecords,
        version,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}
