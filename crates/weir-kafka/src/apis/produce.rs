//! Produce: each partition's batches are appended (validated, stored as
//! sent) and acknowledged once durable; partitions of one request share
//! sync rounds.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::{blocking, str_bytes};
use crate::Shared;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Option<Bytes>, ConnError> {
    let request: ProduceRequest = decode(ApiKey::Produce, version, body)?;
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    // Append every partition at once: their syncs share rounds.
    let mut appends = tokio::task::JoinSet::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        for (p, partition) in topic.partition_data.into_iter().enumerate() {
            let (broker, name) = (shared.broker.clone(), name.clone());
            appends.spawn(async move {
                let index = partition.index;
                let response = PartitionProduceResponse::default().with_index(index);
                let response = if !valid_acks {
                    response.with_error_code(Code::InvalidRequiredAcks.code())
                } else {
                    let Some(records) = partition.records else {
                        return (t, p, name, response.with_error_code(Code::CorruptMessage.code()));
                    };
                    let mut bytes = records.to_vec();
                    let broker2 = broker.clone();
                    let name2 = name.clone();
                    match blocking(move || broker2.produce(&name2, index, &mut bytes)).await {
                        Ok(info) => response
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(
                                broker.partition(&name, index).map_or(-1, |log| log.start_offset()),
                            ),
                        Err(e) => {
                            tracing::debug!(topic = %name, partition = index, %e, "produce refused");
                            response
                                .with_error_code(for_broker_error(&e).code())
                                .with_error_message(Some(str_bytes(&e.to_string())))
                        }
                    }
                };
                (t, p, name, response)
            });
        }
    }
    let mut results = Vec::new();
    while let Some(done) = appends.join_next().await {
        results.push(done.expect("produce tasks do not panic"));
    }
    if acks == 0 {
        return Ok(None);
    }
    results.sort_by_key(|(t, p, _, _)| (*t, *p));
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    let mut last_t = usize::MAX;
    for (t, _, name, partition) in results {
        if t != last_t {
            topics.push(TopicProduceResponse::default().with_name(super::topic_name(&name)));
            last_t = t;
        }
        topics
            .last_mut()
            .expect("just pushed")
            .partition_responses
            .push(partition);
    }
    encode(
        ApiKey::Produce,
        version,
        &ProduceResponse::default().with_responses(topics),
    )
    .map(Some)
}
