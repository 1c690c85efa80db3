//! InitProducerId: ids for idempotent producers (new ones at epoch 0, or a
//! bumped epoch for a producer that names its id, KIP-360), and for
//! transactional ones the transaction coordinator's answer (the id's
//! producer at its next epoch, fencing older instances).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{Caller, blocking};
use crate::Shared;
use crate::authz::{IdempotentWrite, Write};
use crate::codes::{Code, for_broker_error, for_txn_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: InitProducerIdRequest = decode(ApiKey::InitProducerId, version, body)?;
    let transactional_id = request.transactional_id.map(|t| t.0.to_string());
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let refused = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // Kafka: WRITE on the transactional id; an idempotent producer needs
    // IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    let denied = match &transactional_id {
        Some(id) => {
            (!caller.may_transaction(Write, id)).then_some(Code::TransactionalIdAuthorizationFailed)
        }
        None => (!caller.may_cluster(IdempotentWrite)
            && !caller.may_any(Write, ResourceType::Topic))
        .then_some(Code::ClusterAuthorizationFailed),
    };
    let response = match transactional_id {
        _ if denied.is_some() => refused(denied.unwrap_or(Code::None).code()),
        Some(id) => {
            let shared = shared.clone();
            let timeout_ms = request.transaction_timeout_ms;
            let expected = (pid >= 0).then_some((pid, epoch));
            let result = blocking(move || {
                let t = shared.transactions()?;
                t.with_io(|io| {
                    t.coordinator
                        .init_producer_id(io, &id, timeout_ms, expected, t.now_ms())
                })
            })
            .await;
            // PRODUCER_FENCED from v4 (KIP-588), INVALID_PRODUCER_EPOCH
            // before.
            let fenced = if version >= 4 {
                Code::ProducerFenced
            } else {
                Code::InvalidProducerEpoch
            };
            match result {
                Ok(p) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(p.producer_id))
                    .with_producer_epoch(p.producer_epoch),
                Err(e) => refused(for_txn_error(&e, fenced).code()),
            }
        }
        None => {
            let broker = shared.broker.clone();
            match blocking(move || broker.init_producer_id(pid, epoch)).await {
                Ok((id, epoch)) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch),
                Err(e) => refused(for_broker_error(&e).code()),
            }
        }
    };
    encode(ApiKey::InitProducerId, version, &response)
}
