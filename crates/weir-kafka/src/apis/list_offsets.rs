//! ListOffsets: a partition's earliest offset (-2), latest (-1: the high
//! watermark, or for `read_committed` the last stable offset),
//! the record with the largest timestamp (-3, v7), the earliest local
//! offset (-4, v8: the log start, as every segment is local), the latest
//! tiered offset (-5, v9: -1, as nothing is tiered), or the first offset
//! at or after a timestamp; from v4 with the leader epoch of the offset
//! found, and the request's `current_leader_epoch` checked (KIP-320).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

use super::leader_epoch::{self, LEADER_EPOCH};
use super::{Caller, blocking, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::{Code, for_broker_error, for_log_error};
use crate::conn::{ConnError, decode, encode};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: ListOffsetsRequest = decode(ApiKey::ListOffsets, version, body)?;
    let broker = shared.broker.clone();
    let caller = caller.clone();
    let committed = request.isolation_level == 1;
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let denied = !caller.may_topic(Describe, &name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        if denied {
                            return response.with_error_code(Code::TopicAuthorizationFailed.code());
                        }
                        let log = match broker.partition(&name, p.partition_index) {
                            Ok(log) => log,
                            Err(e) => return response.with_error_code(for_broker_error(&e).code()),
                        };
                        if let Err(code) = leader_epoch::check_current(p.current_leader_epoch) {
                            return response.with_error_code(code.code());
                        }
                        // An offset found is in this node's one epoch
                        // (OffsetForLeaderEpoch answers for it); none
                        // found keeps the unknown epoch, -1.
                        let unfound = response.clone();
                        // The field is there from v4.
                        let response = if version >= 4 {
                            response.with_leader_epoch(LEADER_EPOCH)
                        } else {
                            response
                        };
                        let target = match p.timestamp {
                            LATEST if committed => {
                                return match broker.last_stable_offset(&name, p.partition_index) {
                                    Ok(lso) => response.with_offset(lso),
                                    Err(e) => unfound.with_error_code(for_broker_error(&e).code()),
                                };
                            }
                            LATEST => return response.with_offset(log.high_watermark()),
                            EARLIEST | EARLIEST_LOCAL => {
                                return response.with_offset(log.start_offset());
                            }
                            LATEST_TIERED => return unfound,
                            // The first record with the largest timestamp
                            // (inside a compressed batch, the batch's first
                            // offset); nothing in an empty log.
                            MAX_TIMESTAMP => match log.max_timestamp() {
                                ts if ts >= 0 => ts,
                                _ => return unfound,
                            },
                            ts if ts >= 0 => ts,
                            // Other specials.
                            _ => {
                                return unfound.with_error_code(Code::UnsupportedVersion.code());
                            }
                        };
                        match log.record_for_time(target) {
                            Ok(Some(found)) => response
                                .with_offset(found.offset)
                                .with_timestamp(found.timestamp),
                            Ok(None) => unfound,
                            Err(e) => unfound.with_error_code(for_log_error(&e).code()),
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
