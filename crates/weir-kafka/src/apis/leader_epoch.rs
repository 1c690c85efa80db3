//! Leader epochs on one node, and OffsetForLeaderEpoch (versions 2-4, the
//! consumer's form of KIP-320): a partition has had one leader, this node,
//! at one epoch since it was created, so its epoch history is a single
//! entry, epoch [`LEADER_EPOCH`] from the log start offset on. Metadata,
//! DescribeTopicPartitions and ListOffsets report that epoch, the log
//! stamps it into every batch it stores, and every request that carries a
//! `current_leader_epoch` (Fetch v9+, ListOffsets v4+, OffsetForLeaderEpoch)
//! is checked against it as Kafka's leader checks it.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{Caller, blocking};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

/// Every partition's leader epoch (`weir_log` stamps the same 0 into the
/// batches it appends).
pub(crate) const LEADER_EPOCH: i32 = 0;

/// The "no epoch" of Kafka's requests and answers.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_OFFSET: i64 = -1;

/// KIP-320's fencing: a client that names the leader epoch it believes
/// current is answered only if it is this one. An older epoch means the
/// client's metadata is stale (FENCED_LEADER_EPOCH: refresh it); a newer
/// one means this broker is behind (UNKNOWN_LEADER_EPOCH: retry). -1 names
/// none and is not checked.
pub(crate) fn check_current(current_leader_epoch: i32) -> Result<(), Code> {
    match current_leader_epoch {
        UNDEFINED_EPOCH => Ok(()),
        e if e < LEADER_EPOCH => Err(Code::FencedLeaderEpoch),
        e if e > LEADER_EPOCH => Err(Code::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

/// The end offset of `epoch` in a partition whose log starts at
/// `log_start` and ends at `log_end`, with the epoch it belongs to, as
/// Kafka's leader-epoch cache answers it: the current epoch ends at the
/// log's end; an older one (none was ever led here) ends where the first
/// known epoch starts, the log start; an undefined or future epoch has no
/// end (-1, -1).
pub(crate) fn end_offset_for(epoch: i32, log_start: i64, log_end: i64) -> (i32, i64) {
    match epoch {
        UNDEFINED_EPOCH => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
        LEADER_EPOCH => (LEADER_EPOCH, log_end),
        e if e < LEADER_EPOCH => (e, log_start),
        _ => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
    }
}

/// OffsetForLeaderEpoch: for each partition the end offset of the asked
/// epoch. The log's end is its high watermark: what a consumer can have
/// read, so a consumer checking its position for truncation never finds
/// one that did not happen.
pub(crate) async fn offset_for_leader_epoch(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: OffsetForLeaderEpochRequest = decode(ApiKey::OffsetForLeaderEpoch, version, body)?;
    let broker = shared.broker.clone();
    let caller = caller.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.topic.0.to_string();
                let denied = !caller.may_topic(Describe, &name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let answer = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(UNDEFINED_EPOCH)
                            .with_end_offset(UNDEFINED_OFFSET);
                        if denied {
                            return answer.with_error_code(Code::TopicAuthorizationFailed.code());
                        }
                        let log = match broker.partition(&name, p.partition) {
                            Ok(log) => log,
                            Err(e) => return answer.with_error_code(for_broker_error(&e).code()),
                        };
                        if let Err(code) = check_current(p.current_leader_epoch) {
                            return answer.with_error_code(code.code());
                        }
                        let (epoch, end) = end_offset_for(
                            p.leader_epoch,
                            log.start_offset(),
                            log.high_watermark(),
                        );
                        answer.with_leader_epoch(epoch).with_end_offset(end)
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::OffsetForLeaderEpoch,
        version,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}
