//! The transaction tooling APIs (KIP-664), answered from the transaction
//! coordinator's state: DescribeTransactions (v0: each id's state, producer,
//! timeout, start and partitions; an unknown id is
//! TRANSACTIONAL_ID_NOT_FOUND) and ListTransactions (v0-2: every id, by
//! state and producer id, from v1 by how long its transaction has run
//! (KIP-994), from v2 by a pattern on the id (KIP-1152)). State names are
//! Kafka's (`weir_txn::TxnState::name`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use regex_automata::meta::Regex;
use weir_txn::{TxnMetadata, TxnState};

use super::{Caller, str_bytes, topic_name};
use crate::Shared;
use crate::authz::Describe;
use crate::codes::{Code, for_txn_error};
use crate::conn::{ConnError, decode, encode};
use weir_auth::acl::ResourceType;

/// Longest transactional-id pattern taken, in bytes, and the most memory
/// its compiled automaton may take: a pattern is compiled per request.
const PATTERN_BYTES_MAX: usize = 1_024;
const PATTERN_NFA_BYTES_MAX: usize = 1 << 20;

/// Every state, so a filter's name can be looked up.
fn all_states() -> impl Iterator<Item = TxnState> {
    (0..=i8::MAX).map_while(TxnState::from_id)
}

pub(crate) fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: DescribeTransactionsRequest = decode(ApiKey::DescribeTransactions, version, body)?;
    let txns = shared.transactions();
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let answer = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(str_bytes(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !caller.may_transaction(Describe, &id.0) {
                return answer.with_error_code(Code::TransactionalIdAuthorizationFailed.code());
            }
            let t = match &txns {
                Ok(t) => t,
                Err(e) => {
                    let code = for_txn_error(e, Code::ProducerFenced);
                    return answer.with_error_code(code.code());
                }
            };
            match t.coordinator.describe(&id.0).filter(known) {
                Some(meta) => described(answer, &meta),
                None => answer.with_error_code(Code::TransactionalIdNotFound.code()),
            }
        })
        .collect();
    encode(
        ApiKey::DescribeTransactions,
        version,
        &DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}

fn described(answer: TransactionState, meta: &TxnMetadata) -> TransactionState {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &meta.partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            TopicData::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    answer
        .with_transaction_state(str_bytes(meta.state.name()))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(meta.txn_start_ms)
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_topics(topics)
}

/// ListTransactions' filters, all of which a listed id passes.
struct Filters {
    /// Empty: any state. Names Kafka does not know are answered back and
    /// otherwise ignored (so only unknown names filter nothing, as in
    /// Kafka).
    states: BTreeSet<&'static str>,
    producer_ids: BTreeSet<i64>,
    /// Negative: any; else only transactions started longer ago.
    duration_ms: i64,
    pattern: Option<Regex>,
}

/// An id the tooling sees: not one whose first record is still being
/// written (no producer id yet), nor one expiring (Dead), which Kafka
/// answers as gone already.
fn known(meta: &TxnMetadata) -> bool {
    meta.producer_id >= 0 && meta.state != TxnState::Dead
}

impl Filters {
    fn keeps(&self, meta: &TxnMetadata, now_ms: i64) -> bool {
        known(meta)
            && (self.states.is_empty() || self.states.contains(meta.state.name()))
            && (self.producer_ids.is_empty() || self.producer_ids.contains(&meta.producer_id))
            && (self.duration_ms < 0 || now_ms - meta.txn_start_ms > self.duration_ms)
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&meta.transactional_id))
    }
}

/// A pattern as Kafka matches it (RE2/J's `matches()`: the whole id).
fn compile(pattern: &str) -> Option<Regex> {
    if pattern.len() > PATTERN_BYTES_MAX {
        return None;
    }
    Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(PATTERN_NFA_BYTES_MAX)))
        .build(&format!("^(?:{pattern})$"))
        .ok()
}

pub(crate) fn list(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let request: ListTransactionsRequest = decode(ApiKey::ListTransactions, version, body)?;
    let mut response = ListTransactionsResponse::default();
    let mut states = BTreeSet::new();
    for name in &request.state_filters {
        match all_states().find(|s| s.name() == name.as_str()) {
            Some(state) => {
                states.insert(state.name());
            }
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let pattern = match request.transactional_id_pattern.as_deref() {
        None | Some("") => None,
        Some(source) => match compile(source) {
            Some(regex) => Some(regex),
            None => {
                let response = response.with_error_code(Code::InvalidRegularExpression.code());
                return encode(ApiKey::ListTransactions, version, &response);
            }
        },
    };
    let filters = Filters {
        states,
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        duration_ms: request.duration_filter,
        pattern,
    };
    let t = match shared.transactions() {
        Ok(t) => t,
        Err(e) => {
            let code = for_txn_error(&e, Code::ProducerFenced);
            let response = response.with_error_code(code.code());
            return encode(ApiKey::ListTransactions, version, &response);
        }
    };
    let now = t.now_ms();
    response.transaction_states = t
        .coordinator
        .list()
        .iter()
        .filter(|meta| filters.keeps(meta, now))
        // Only the ids the caller may describe, as Kafka lists them.
        .filter(|meta| {
            caller.sees(
                Describe,
                ResourceType::TransactionalId,
                &meta.transactional_id,
            )
        })
        .map(|meta| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    meta.transactional_id.clone(),
                )))
                .with_producer_id(ProducerId(meta.producer_id))
                .with_transaction_state(str_bytes(meta.state.name()))
        })
        .collect();
    encode(ApiKey::ListTransactions, version, &response)
}
