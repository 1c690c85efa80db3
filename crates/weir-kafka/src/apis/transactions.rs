//! The transactional producer's calls to its coordinator: AddPartitionsToTxn
//! (versions 0-3, the client's form), AddOffsetsToTxn and TxnOffsetCommit
//! (a consumer's offsets in the transaction, held until it ends: see
//! `txn_offsets`; from v3 checked against the consumer's group
//! generation, KIP-447) and EndTxn, answered by the server's
//! [`crate::txn::Transactions`]. InitProducerId with a transactional id is
//! in `init_producer_id.rs`; FindCoordinator names this broker.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use weir_txn::{TopicPartition, TxnError};

use super::{Caller, blocking, non_empty};
use crate::Shared;
use crate::authz::{Read, Write};
use crate::codes::{Code, for_group_error, for_txn_error};
use crate::conn::{ConnError, decode, encode};

/// The code of a fenced producer for a request version: PRODUCER_FENCED
/// from the versions after KIP-588 (AddPartitionsToTxn v2, EndTxn v2),
/// INVALID_PRODUCER_EPOCH before.
fn fenced(version: i16) -> Code {
    if version >= 2 {
        Code::ProducerFenced
    } else {
        Code::InvalidProducerEpoch
    }
}

pub(crate) async fn add_partitions(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: AddPartitionsToTxnRequest = decode(ApiKey::AddPartitionsToTxn, version, body)?;
    let shared2 = shared.clone();
    let topics = request.v3_and_below_topics;
    let wanted: Vec<(String, Vec<i32>)> = topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect();
    let id = request.v3_and_below_transactional_id.0.to_string();
    let (pid, epoch) = (
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
    );
    // Kafka: WRITE on the transactional id, then on every topic added.
    let id_denied = !caller.may_transaction(Write, &id);
    let writable: Vec<bool> = wanted
        .iter()
        .map(|(topic, _)| caller.may_topic(Write, topic))
        .collect();
    // Every partition must exist and be writable; otherwise none is
    // added, and the others are answered OPERATION_NOT_ATTEMPTED, as Kafka
    // does.
    let result = blocking(move || {
        if id_denied {
            // Answered below without a look at the partitions.
            return Err(Vec::new());
        }
        let mut unknown = Vec::new();
        let mut parts = Vec::new();
        for ((topic, partitions), writable) in wanted.iter().zip(writable) {
            for &p in partitions {
                if !writable {
                    unknown.push((topic.clone(), p, Code::TopicAuthorizationFailed));
                } else if shared2.broker.partition(topic, p).is_ok() {
                    parts.push(TopicPartition::new(topic.clone(), p));
                } else {
                    unknown.push((topic.clone(), p, Code::UnknownTopicOrPartition));
                }
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(shared2.transactions().and_then(|t| {
            t.with_io(|io| {
                t.coordinator
                    .add_partitions(io, &id, pid, epoch, &parts, t.now_ms())
            })
        }))
    })
    .await;
    let code_of = |topic: &str, p: i32| -> i16 {
        match &result {
            _ if id_denied => Code::TransactionalIdAuthorizationFailed.code(),
            Ok(Ok(())) => Code::None.code(),
            Ok(Err(e)) => for_txn_error(e, fenced(version)).code(),
            Err(unknown) => unknown
                .iter()
                .find(|(t, q, _)| t == topic && *q == p)
                .map_or(Code::OperationNotAttempted, |(_, _, code)| *code)
                .code(),
        }
    };
    let results = topics
        .iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code_of(&topic, p))
                        })
                        .collect(),
                )
        })
        .collect();
    let response =
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    encode(ApiKey::AddPartitionsToTxn, version, &response)
}

pub(crate) async fn end(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: EndTxnRequest = decode(ApiKey::EndTxn, version, body)?;
    let shared2 = shared.clone();
    let id = request.transactional_id.0.to_string();
    if !caller.may_transaction(Write, &id) {
        let response = EndTxnResponse::default()
            .with_error_code(Code::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        return encode(ApiKey::EndTxn, version, &response);
    }
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let result = blocking(move || {
        shared2.transactions().and_then(|t| {
            t.with_io(|io| {
                t.coordinator
                    .end_txn(io, &id, pid, epoch, commit, t.now_ms())
            })
        })
    })
    .await;
    let code = match result {
        Ok(()) => Code::None,
        Err(e) => for_txn_error(&e, fenced(version)),
    };
    let response = EndTxnResponse::default()
        .with_error_code(code.code())
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    encode(ApiKey::EndTxn, version, &response)
}

/// The partition of `__consumer_offsets` that stands for a group in a
/// transaction (the topic has one).
fn offsets_partition() -> TopicPartition {
    TopicPartition::new(weir_broker::txn_log::OFFSETS_TOPIC, 0)
}

pub(crate) async fn add_offsets(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: AddOffsetsToTxnRequest = decode(ApiKey::AddOffsetsToTxn, version, body)?;
    let shared2 = shared.clone();
    let id = request.transactional_id.0.to_string();
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let group = request.group_id.0.to_string();
    // Kafka: WRITE on the transactional id, READ on the group.
    let denied = if !caller.may_transaction(Write, &id) {
        Some(Code::TransactionalIdAuthorizationFailed)
    } else {
        (!caller.may_group(Read, &group)).then_some(Code::GroupAuthorizationFailed)
    };
    if let Some(code) = denied {
        let response = AddOffsetsToTxnResponse::default().with_error_code(code.code());
        return encode(ApiKey::AddOffsetsToTxn, version, &response);
    }
    let result = blocking(move || {
        if group.is_empty() {
            return Err(TxnError::InvalidTxnState {
                transactional_id: id,
                state: "any",
                reason: "AddOffsetsToTxn names no group",
            });
        }
        shared2.transactions().and_then(|t| {
            t.with_io(|io| {
                t.coordinator.add_partitions(
                    io,
                    &id,
                    pid,
                    epoch,
                    &[offsets_partition()],
                    t.now_ms(),
                )
            })
        })
    })
    .await;
    let code = match result {
        Ok(()) => Code::None,
        Err(e) => for_txn_error(&e, fenced(version)),
    };
    let response = AddOffsetsToTxnResponse::default().with_error_code(code.code());
    encode(ApiKey::AddOffsetsToTxn, version, &response)
}

pub(crate) async fn commit_offsets(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: TxnOffsetCommitRequest = decode(ApiKey::TxnOffsetCommit, version, body)?;
    let shared2 = shared.clone();
    let id = request.transactional_id.0.to_string();
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let group = request.group_id.0.to_string();
    // Kafka: WRITE on the transactional id, READ on the group, then READ
    // on each topic; the topics refused are left out of the commit.
    let denied = if !caller.may_transaction(Write, &id) {
        Some(Code::TransactionalIdAuthorizationFailed)
    } else {
        (!caller.may_group(Read, &group)).then_some(Code::GroupAuthorizationFailed)
    };
    let topic_denied: Vec<bool> = request
        .topics
        .iter()
        .map(|t| denied.is_none() && !caller.may_topic(Read, &t.name.0))
        .collect();
    let allowed = |i: usize| denied.is_none() && !topic_denied[i];
    let entries: Vec<weir_groups::TopicPartition> = request
        .topics
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .flat_map(|(_, t)| {
            t.partitions.iter().map(|p| weir_groups::TopicPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
            })
        })
        .collect();
    let offsets: Vec<_> = request
        .topics
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .flat_map(|(_, t)| t.partitions.iter())
        .map(|p| {
            (
                p.committed_offset,
                p.committed_leader_epoch,
                p.committed_metadata
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect();
    // TxnOffsetCommit v3 (KIP-447) and later know PRODUCER_FENCED.
    let fenced_code = if version >= 3 {
        Code::ProducerFenced
    } else {
        Code::InvalidProducerEpoch
    };
    // v3 (KIP-447) names the consumer the offsets are committed for;
    // earlier versions decode as the form without group metadata.
    let member = request.member_id.to_string();
    let instance = non_empty(request.group_instance_id.clone());
    let generation = request.generation_id;
    let nothing_allowed = entries.is_empty() && !request.topics.is_empty();
    let result = blocking(move || {
        if let Some(code) = denied {
            return Err(code);
        }
        if nothing_allowed {
            return Ok(());
        }
        let t = shared2
            .transactions()
            .map_err(|e| for_txn_error(&e, fenced_code))?;
        // A zombie consumer (an older generation, or replaced) may not
        // commit through its producer. Checked first, as Kafka's group
        // coordinator does before the producer's epoch is looked at: a
        // zombie gets the abortable group error, not a fatal fencing.
        shared2
            .groups
            .check_txn_commit(&group, &member, instance.as_deref(), generation)
            .map_err(|e| {
                tracing::debug!(%e, "TxnOffsetCommit refused");
                for_group_error(&e)
            })?;
        // The transaction must hold the group's offsets (AddOffsetsToTxn).
        let held = offsets_partition();
        t.coordinator
            .check_open_in(&id, pid, epoch, &held.topic, held.partition)
            .map_err(|e| for_txn_error(&e, fenced_code))?;
        let now = t.now_ms();
        let pending = entries
            .into_iter()
            .zip(offsets)
            .map(|(tp, (offset, leader_epoch, metadata))| {
                (
                    group.clone(),
                    tp,
                    weir_groups::CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms: now,
                    },
                )
            })
            .collect();
        t.pending
            .add(&t.broker, pid, pending)
            .map_err(|e| for_txn_error(&e, fenced_code))
    })
    .await;
    let code = match result {
        Ok(()) => Code::None,
        Err(code) => code,
    };
    let topics = request
        .topics
        .iter()
        .zip(topic_denied)
        .map(|(t, topic_denied)| {
            let code = if topic_denied {
                Code::TopicAuthorizationFailed
            } else {
                code
            };
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect();
    let response = TxnOffsetCommitResponse::default().with_topics(topics);
    encode(ApiKey::TxnOffsetCommit, version, &response)
}
