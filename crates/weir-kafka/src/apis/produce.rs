//! Produce: each partition's batches are appended (validated, and
//! rewritten only as the topic's configs ask: recompression, log-append
//! time) and acknowledged once durable. The writes happen in the order the
//! connection's requests arrive; the wait for durability is left to a
//! second phase, so the next request can be written while this one waits
//! and in-flight requests share sync rounds.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use weir_broker::{BrokerError, Produced};

use super::{Caller, str_bytes};
use crate::Shared;
use crate::authz::Write;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

/// The rest of a Produce once its batches are written: wait, then answer.
pub(crate) type Acknowledge = super::Later;

/// One partition of the request after the write phase.
struct Written {
    topic: usize,
    name: String,
    id: uuid::Uuid,
    index: i32,
    outcome: Result<Produced, PartitionProduceResponse>,
}

fn refused(index: i32, code: Code, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_error_message(message.map(|m| str_bytes(&m)))
}

/// A broker refusal; one naming a record also names it in
/// `record_errors` (KIP-467), which clients log per record.
fn refused_by(index: i32, err: &BrokerError) -> PartitionProduceResponse {
    let response = refused(index, for_broker_error(err), Some(err.to_string()));
    match err {
        BrokerError::RecordRefused {
            index: record,
            reason,
            ..
        } => response.with_record_errors(vec![
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*record)
                .with_batch_index_error_message(Some(str_bytes(reason))),
        ]),
        _ => response,
    }
}

/// INVALID_RECORD (87) came with Produce v8 (KIP-467); Kafka answers older
/// versions CORRUPT_MESSAGE for the same refusals (a keyless record to a
/// compacted topic, a client's control batch).
fn for_version(version: i16, response: PartitionProduceResponse) -> PartitionProduceResponse {
    if version < 8 && response.error_code == Code::InvalidRecord.code() {
        response
            .with_error_code(Code::CorruptMessage.code())
            .with_record_errors(Vec::new())
    } else {
        response
    }
}

/// A transactional batch is taken only from the producer of an open
/// transaction that its partition was added to (KIP-890's verification):
/// otherwise its partition's stable offset would wait for a marker that
/// never comes. Refused with the coordinator's reason.
fn check_transaction(
    records: &[u8],
    transactional_id: Option<&str>,
    shared: &Shared,
    topic: &str,
    index: i32,
) -> Result<(), (Code, String)> {
    let Ok(header) = weir_log::batch::BatchHeader::parse(records) else {
        return Ok(());
    };
    if !header.is_transactional() || header.is_control() {
        return Ok(());
    }
    // A stale epoch in a Produce is INVALID_PRODUCER_EPOCH at every
    // version, as for idempotent producers; clients read it as fenced.
    let fenced = Code::InvalidProducerEpoch;
    let Some(id) = transactional_id else {
        return Err((
            Code::InvalidTxnState,
            "a transactional batch needs the request's transactional id".into(),
        ));
    };
    let result = shared.transactions().and_then(|t| {
        t.coordinator
            .check_open_in(id, header.producer_id, header.producer_epoch, topic, index)
    });
    result.map_err(|e| (crate::codes::for_txn_error(&e, fenced), e.to_string()))
}

/// Writes every partition's batches (all at once: their syncs share
/// rounds) and returns the acknowledgement phase.
pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Acknowledge, ConnError> {
    let request: ProduceRequest = decode(ApiKey::Produce, version, body)?;
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let transactional_id = request.transactional_id.map(|t| t.0.to_string());
    // Kafka refuses a transactional producer its whole request unless it
    // may write its transactional id, then each topic it may not write.
    let txn_denied = transactional_id
        .as_deref()
        .is_some_and(|id| !caller.may_transaction(Write, id));
    let mut writes = tokio::task::JoinSet::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let id = topic.topic_id;
        // From v13 topics are named by id (KIP-516).
        let name = if version >= 13 {
            shared
                .broker
                .topic_by_id(id.as_u128())
                .map(|t| t.name.clone())
        } else {
            Some(topic.name.0.to_string())
        };
        let denied = if txn_denied {
            Some(Code::TransactionalIdAuthorizationFailed)
        } else {
            let denied = name.as_deref().is_some_and(|n| !caller.may_topic(Write, n));
            denied.then_some(Code::TopicAuthorizationFailed)
        };
        for (p, partition) in topic.partition_data.into_iter().enumerate() {
            let (shared, name) = (shared.clone(), name.clone());
            let transactional_id = transactional_id.clone();
            writes.spawn_blocking(move || {
                let index = partition.index;
                let Some(name) = name else {
                    let outcome = Err(refused(index, Code::UnknownTopicId, None));
                    let name = String::new();
                    return ((t, p), Written { topic: t, name, id, index, outcome });
                };
                let outcome = match (denied, partition.records) {
                    (Some(code), _) => Err(refused(index, code, None)),
                    _ if !valid_acks => Err(refused(index, Code::InvalidRequiredAcks, None)),
                    (None, None) => {
                        Err(refused(index, Code::CorruptMessage, Some("no records".into())))
                    }
                    (None, Some(records)) => match check_transaction(
                        &records,
                        transactional_id.as_deref(),
                        &shared,
                        &name,
                        index,
                    ) {
                        Err((code, reason)) => Err(refused(index, code, Some(reason))),
                        Ok(()) => {
                            let mut bytes = records.to_vec();
                            shared.broker.produce_nowait(&name, index, &mut bytes).map_err(|e| {
                                tracing::debug!(topic = %name, partition = index, %e, "produce refused");
                                for_version(version, refused_by(index, &e))
                            })
                        }
                    },
                };
                ((t, p), Written { topic: t, name, id, index, outcome })
            });
        }
    }
    let mut written = Vec::new();
    while let Some(done) = writes.join_next().await {
        written.push(done.expect("produce writes do not panic"));
    }
    written.sort_by_key(|(order, _)| *order);
    Ok(Box::pin(acknowledge(
        version,
        acks,
        written.into_iter().map(|(_, w)| w).collect(),
    )))
}

/// Waits for every written partition to be durable, then builds the
/// response (none for acks=0).
async fn acknowledge(
    version: i16,
    acks: i16,
    written: Vec<Written>,
) -> Result<Option<Bytes>, ConnError> {
    let mut waits = Vec::with_capacity(written.len());
    for w in written {
        let Written {
            topic,
            name,
            id,
            index,
            outcome,
        } = w;
        waits.push(tokio::spawn(async move {
            let response = match outcome {
                Err(response) => response,
                Ok(produced) => {
                    let start = produced.log_start_offset();
                    // The fsync round holds no thread while it runs.
                    match produced.durable().await {
                        Ok(info) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time_ms)
                            .with_log_start_offset(start),
                        Err(e) => refused_by(index, &e),
                    }
                }
            };
            (topic, name, id, response)
        }));
    }
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    let mut last_topic = usize::MAX;
    for wait in waits {
        let (topic, name, id, response) = wait.await.expect("produce waits do not panic");
        if topic != last_topic {
            topics.push(
                TopicProduceResponse::default()
                    .with_name(super::topic_name(&name))
                    .with_topic_id(id),
            );
            last_topic = topic;
        }
        topics
            .last_mut()
            .expect("just pushed")
            .partition_responses
            .push(response);
    }
    if acks == 0 {
        return Ok(None);
    }
    encode(
        ApiKey::Produce,
        version,
        &ProduceResponse::default().with_responses(topics),
    )
    .map(Some)
}
