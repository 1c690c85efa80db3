//! The transaction coordinator of Kafka's exactly-once protocol (KIP-98,
//! KIP-360, KIP-447) as a state machine without I/O: which producer id and
//! epoch each `transactional.id` has, which partitions its open
//! transaction wrote, and the two-phase commit that ends it (a durable
//! `Prepare*` record in the transaction log, the commit or abort markers
//! in every partition, then a `Complete*` record). The broker gives it a
//! [`TxnIo`] (the transaction log, the markers, producer ids) and a clock
//! reading; a restart replays the log ([`TxnCoordinator::recover`]) and
//! finishes what was prepared, so every partition of a transaction gets
//! the same marker.

mod coordinator;
mod error;
mod record;
mod state;

pub use coordinator::{CoordinatorConfig, InitProducer, Recovered, TxnCoordinator, TxnIo};
pub use error::TxnError;
pub use record::{LogRecord, RecordError, decode_key, decode_value, encode_key, encode_value};
pub use state::{TopicPartition, TxnMetadata, TxnState};

/// The internal topic of the transaction log, as Kafka names it.
pub const TRANSACTION_LOG_TOPIC: &str = "__transaction_state";
/// Longest `transactional.id` taken, in bytes.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 249 * 4;
/// Partitions one transaction may write to (its markers go to each).
pub const TXN_PARTITIONS_MAX: usize = 10_000;
