//! ListOffsets: a partition's earliest offset (-2), latest (-1: the high
//! watermark) or the first offset at or after a timestamp.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

use super::{blocking, topic_name};
use crate::Shared;
use crate::codes::{for_broker_error, for_log_error};
use crate::conn::{ConnError, decode, encode};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: ListOffsetsRequest = decode(ApiKey::ListOffsets, version, body)?;
    let broker = shared.broker.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let log = match broker.partition(&name, p.partition_index) {
                            Ok(log) => log,
                            Err(e) => return response.with_error_code(for_broker_error(&e).code()),
                        };
                        match p.timestamp {
                            LATEST => response.with_offset(log.high_watermark()),
                            EARLIEST => response.with_offset(log.start_offset()),
                            ts if ts >= 0 => match log.record_for_time(ts) {
                                Ok(Some(found)) => response
                                    .with_offset(found.offset)
                                    .with_timestamp(found.timestamp),
                                Ok(None) => response,
                                Err(e) => response.with_error_code(for_log_error(&e).code()),
                            },
                            // -3 (max timestamp) and other specials.
                            _ => response.with_error_code(crate::Code::UnsupportedVersion.code()),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::ListOffsets,
        version,
        &ListOffsetsResponse::default().with_topics(topics),
    )
}
