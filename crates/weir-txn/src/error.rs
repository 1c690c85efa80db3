//! Why the coordinator refused a request, one variant per answer a Kafka
//! client tells apart (the Kafka layer maps each to its error code).

/// A refusal, or a failure of the coordinator's storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("transactional id {0:?} is empty or longer than the limit")]
    InvalidTransactionalId(String),
    #[error("transaction timeout {timeout_ms} ms is not within 1 to {max_ms} ms")]
    InvalidTimeout { timeout_ms: i32, max_ms: i32 },
    #[error("transactional id {transactional_id:?} has no producer id {producer_id}")]
    InvalidProducerIdMapping {
        transactional_id: String,
        producer_id: i64,
    },
    /// A newer producer with the same transactional id exists (a zombie).
    #[error("producer epoch {epoch} of {transactional_id:?} is fenced by epoch {current}")]
    Fenced {
        transactional_id: String,
        epoch: i16,
        current: i16,
    },
    /// The transaction is being committed or aborted: try again shortly.
    #[error("a transaction of {0:?} is completing; try again")]
    ConcurrentTransactions(String),
    #[error("{transactional_id:?} is {state}: {reason}")]
    InvalidTxnState {
        transactional_id: String,
        state: &'static str,
        reason: &'static str,
    },
    #[error("no transactional id {0:?}")]
    UnknownTransactionalId(String),
    #[error("a transaction may write to at most {max} partitions")]
    TooManyPartitions { max: usize },
    /// Writing the transaction log or the markers failed; nothing the
    /// caller was answered about changed.
    #[error("transaction storage: {0}")]
    Storage(String),
}
