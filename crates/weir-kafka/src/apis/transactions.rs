//! The transactional producer's calls to its coordinator: AddPartitionsToTxn
//! (versions 0-3, the client's form) and EndTxn, answered by the server's
//! [`crate::txn::Transactions`]. InitProducerId with a transactional id is
//! in `init_producer_id.rs`; FindCoordinator names this broker.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
};
use weir_txn::{TopicPartition, TxnError};

use super::blocking;
use crate::Shared;
use crate::codes::{Code, for_txn_error};
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

fn unavailable() -> TxnError {
    TxnError::Storage("the transaction coordinator did not start".into())
}

pub(crate) async fn add_partitions(
    version: i16,
    body: Bytes,
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
    // Every partition must exist; otherwise none is added, and the others
    // are answered OPERATION_NOT_ATTEMPTED, as Kafka does.
    let result = blocking(move || {
        let mut unknown = Vec::new();
        let mut parts = Vec::new();
        for (topic, partitions) in &wanted {
            for &p in partitions {
                if shared2.broker.partition(topic, p).is_ok() {
                    parts.push(TopicPartition::new(topic.clone(), p));
                } else {
                    unknown.push((topic.clone(), p));
                }
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(shared2.txns.as_ref().ok_or_else(unavailable).and_then(|t| {
            t.with_io(|io| {
                t.coordinator
                    .add_partitions(io, &id, pid, epoch, &parts, t.now_ms())
            })
        }))
    })
    .await;
    let code_of = |topic: &str, p: i32| -> i16 {
        match &result {
            Ok(Ok(())) => Code::None.code(),
            Ok(Err(e)) => for_txn_error(e, fenced(version)).code(),
            Err(unknown) if unknown.iter().any(|(t, q)| t == topic && *q == p) => {
                Code::UnknownTopicOrPartition.code()
            }
            Err(_) => Code::OperationNotAttempted.code(),
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
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: EndTxnRequest = decode(ApiKey::EndTxn, version, body)?;
    let shared2 = shared.clone();
    let id = request.transactional_id.0.to_string();
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let result = blocking(move || {
        shared2.txns.as_ref().ok_or_else(unavailable).and_then(|t| {
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
