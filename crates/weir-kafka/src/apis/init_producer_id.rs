//! InitProducerId: ids for idempotent producers (new ones at epoch 0, or a
//! bumped epoch for a producer that names its id, KIP-360). Transactional
//! producers are refused until transactions exist.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::blocking;
use crate::Shared;
use crate::codes::for_broker_error;
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: InitProducerIdRequest = decode(ApiKey::InitProducerId, version, body)?;
    let broker = shared.broker.clone();
    let transactional_id = request.transactional_id.map(|t| t.0.to_string());
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let result =
        blocking(move || broker.init_producer_id(transactional_id.as_deref(), pid, epoch)).await;
    let response = match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(for_broker_error(&e).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    };
    encode(ApiKey::InitProducerId, version, &response)
}
