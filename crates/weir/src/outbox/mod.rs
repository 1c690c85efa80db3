//! The transactional outbox: a service that keeps its own database writes
//! the events it emits as rows of that database, in the same transaction
//! as its business rows, and a [`Relay`] publishes those rows afterwards to
//! a Kafka topic or to event-store streams. Either both the business change
//! and its events commit or neither does; no event is published for a
//! change that rolled back, and none is lost for one that committed.
//!
//! - [`setup`] creates the outbox table (`weir_outbox`) in a transaction;
//!   [`enqueue`] inserts one event row in the caller's transaction: on
//!   SQLite a [`rusqlite::Transaction`], on PostgreSQL (feature
//!   `postgres`) a `postgres::Transaction`. Each row has the event id
//!   (unique: the dedup key downstream), the aggregate id, the aggregate's
//!   next sequence number (from 0, no gaps), and the envelope in its Kafka
//!   form (the data and the `ce_*` headers).
//! - [`Relay`] claims bounded batches of unpublished rows, publishes them
//!   in order per aggregate, and marks them published only after the
//!   target acknowledged them: at least once, never out of order per
//!   aggregate. After a crash the rows it had published but not yet marked
//!   are published again; the event id makes the copy harmless (the store
//!   recognises it; Kafka consumers skip it, as [`crate::Consumer`] does).
//! - Several relays on one outbox do not publish the same row in normal
//!   operation: on PostgreSQL each claims whole aggregates with `SELECT …
//!   FOR UPDATE SKIP LOCKED` on the aggregate's oldest unpublished row; on
//!   SQLite one relay holds a lease row with an expiry and the others
//!   stand by until it expires.
//!
//! The design, the guarantees and their limits are in
//! `docs/design/sagas.md` ("Transactional outbox").
//!
//! ```
//! use weir::outbox::{self, Relay, RelayConfig, Source, Target};
//! use weir::{Causation, Client, Envelope};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Clone, Serialize, Deserialize)]
//! # pub struct Placed { pub total: u64 }
//! # weir::events! { #[derive(Debug, Clone)] pub enum OrderEvent { Placed(Placed) = "OrderPlaced" v 1 } }
//!
//! let dir = tempfile::tempdir()?;
//! let db_path = dir.path().join("orders.db");
//! let mut db = rusqlite::Connection::open(&db_path)?;
//! let mut tx = db.transaction()?;
//! outbox::setup(&mut tx)?;
//! tx.execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER)")?;
//! tx.commit()?;
//!
//! // The business row and its event commit together.
//! let mut tx = db.transaction()?;
//! tx.execute("INSERT INTO orders VALUES ('o-1', 42)", [])?;
//! let placed = OrderEvent::Placed(Placed { total: 42 });
//! let event = Envelope::new(&placed, "/orders", &Causation::new())?.with_subject("o-1");
//! outbox::enqueue(&mut tx, "o-1", &event)?;
//! tx.commit()?;
//!
//! // A relay (usually its own process: `weir outbox relay`) publishes it.
//! let store = Client::open(dir.path().join("weir-data"))?;
//! let target = Target::streams(store.clone(), "order-");
//! let mut relay = Relay::new(Source::Sqlite(db_path), target, RelayConfig::default())?;
//! assert_eq!(relay.run_once()?.published, 1);
//! assert_eq!(store.read_stream("order-o-1", 0, 10)?[0].id, event.id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod relay;
mod sqlite;

#[cfg(feature = "postgres")]
mod postgres;

use std::time::{SystemTime, UNIX_EPOCH};

pub use relay::{Relay, RelayConfig, RelayStats, Round, Source, Target};

use crate::{Envelope, KafkaRecord};

/// The longest aggregate id, in bytes (a stream id is the prefix and the
/// aggregate id, and the store takes up to 1,024 bytes).
pub const AGGREGATE_ID_BYTES_MAX: usize = 256;
/// The largest event a row holds, data and headers together, in bytes.
pub const ROW_BYTES_MAX: usize = 1024 * 1024;
/// The most rows a relay claims in one batch.
pub const BATCH_ROWS_MAX: usize = 10_000;

/// What the outbox and its relay fail at.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("invalid aggregate id {aggregate_id:?}: {reason}")]
    InvalidAggregateId {
        aggregate_id: String,
        reason: &'static str,
    },
    #[error("event {id:?} cannot go in the outbox: {reason}")]
    InvalidEvent { id: String, reason: String },
    /// The event id is already in the outbox: event ids are the dedup key
    /// downstream, so a second event with the same id would be dropped
    /// there.
    #[error("event {id:?} is already in the outbox (event ids are unique)")]
    DuplicateEventId { id: String },
    /// Another transaction enqueued for the same aggregate at the same
    /// time and committed first (PostgreSQL); retry the transaction.
    #[error(
        "aggregate {aggregate_id:?}: another transaction enqueued its next event concurrently; retry the transaction"
    )]
    ConcurrentEnqueue { aggregate_id: String },
    #[error("the outbox database {database}: {reason}")]
    Database { database: String, reason: String },
    #[error(
        "the outbox database {database} has no outbox table (weir_outbox): create it with weir::outbox::setup"
    )]
    NotSetUp { database: String },
    #[error("outbox row {seq} (event {id:?}) is corrupt: {reason}")]
    CorruptRow {
        seq: i64,
        id: String,
        reason: String,
    },
    /// The relay's lease on a SQLite outbox expired and another relay took
    /// it over before this one marked its batch: the rows stay unpublished
    /// in the table and the new holder publishes them again.
    #[error("the relay's lease on {database} was taken over by {holder}")]
    LeaseLost { database: String, holder: String },
    /// The target stream holds an event at the version an outbox row
    /// should be at, and it is not that row's event: something else
    /// writes to the stream.
    #[error(
        "stream {stream} at version {version} holds event {found_id:?}, not the outbox's {expected_id:?}: only the relay may write to its streams"
    )]
    StreamDiverged {
        stream: String,
        version: u64,
        expected_id: String,
        found_id: String,
    },
    #[error("invalid relay settings: {reason}")]
    Config { reason: String },
    /// Publishing to the target failed (it is down, or refused).
    #[error("publishing: {0}")]
    Publish(#[from] crate::Error),
}

/// Where [`enqueue`] put an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The row's place in the outbox (insertion order).
    pub seq: i64,
    /// The event's number within its aggregate, from 0.
    pub aggregate_seq: u64,
}

/// A transaction of a database the outbox lives in.
pub trait OutboxTx {
    /// Creates the outbox's tables and indexes if they do not exist.
    fn setup_outbox(&mut self) -> Result<(), OutboxError>;
    /// Inserts `envelope` as the next event of `aggregate_id`.
    fn enqueue_event(
        &mut self,
        aggregate_id: &str,
        envelope: &Envelope,
    ) -> Result<Enqueued, OutboxError>;
}

/// Creates the outbox's tables in `tx` if they do not exist (commit `tx`
/// to keep them).
pub fn setup(tx: &mut impl OutboxTx) -> Result<(), OutboxError> {
    tx.setup_outbox()
}

/// Inserts `envelope` in `tx` as the next event of `aggregate_id`; it is
/// published once `tx` commits, and never if `tx` rolls back.
pub fn enqueue(
    tx: &mut impl OutboxTx,
    aggregate_id: &str,
    envelope: &Envelope,
) -> Result<Enqueued, OutboxError> {
    tx.enqueue_event(aggregate_id, envelope)
}

/// An event row as [`enqueue`] writes it.
pub(crate) struct NewRow {
    pub event_id: String,
    pub event_type: String,
    /// The `ce_*` headers of the envelope's Kafka form, as a JSON array of
    /// `[name, value]` pairs (every value is text).
    pub headers: String,
    pub data: Vec<u8>,
    pub created_ms: i64,
}

impl NewRow {
    /// Checks `aggregate_id` and `envelope` and encodes the row.
    pub fn encode(aggregate_id: &str, envelope: &Envelope) -> Result<Self, OutboxError> {
        let bad_aggregate = |reason| OutboxError::InvalidAggregateId {
            aggregate_id: aggregate_id.to_owned(),
            reason,
        };
        if aggregate_id.is_empty() {
            return Err(bad_aggregate("it is empty"));
        }
        if aggregate_id.len() > AGGREGATE_ID_BYTES_MAX {
            return Err(bad_aggregate("longer than 256 bytes"));
        }
        if aggregate_id.contains('\0') {
            return Err(bad_aggregate("it holds a NUL character"));
        }
        let bad_event = |reason: String| OutboxError::InvalidEvent {
            id: envelope.id.clone(),
            reason,
        };
        if envelope.id.is_empty() || envelope.id.len() > weir_store::EVENT_ID_BYTES_MAX {
            return Err(bad_event("its id must be 1 to 256 bytes".to_owned()));
        }
        if envelope.event_type.is_empty() {
            return Err(bad_event("its type is empty".to_owned()));
        }
        let record = envelope.to_kafka();
        let pairs: Vec<(String, String)> = record
            .headers
            .into_iter()
            .map(|(k, v)| {
                String::from_utf8(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|_| bad_event(format!("header {k} is not UTF-8")))
            })
            .collect::<Result<_, _>>()?;
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(bad_event("an attribute holds a NUL character".to_owned()));
        }
        let headers = serde_json::to_string(&pairs).map_err(|e| bad_event(e.to_string()))?;
        if headers.len() + record.value.len() > ROW_BYTES_MAX {
            return Err(bad_event(format!(
                "{} bytes, over the outbox's {ROW_BYTES_MAX}",
                headers.len() + record.value.len()
            )));
        }
        Ok(Self {
            event_id: envelope.id.clone(),
            event_type: envelope.event_type.clone(),
            headers,
            data: record.value,
            created_ms: now_ms(),
        })
    }
}

/// An unpublished row a relay claimed.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub seq: i64,
    pub aggregate_id: String,
    pub aggregate_seq: u64,
    pub envelope: Envelope,
}

impl Row {
    /// Decodes a row read back from the table.
    pub fn decode(
        seq: i64,
        event_id: String,
        aggregate_id: String,
        aggregate_seq: i64,
        headers: &str,
        data: Vec<u8>,
    ) -> Result<Self, OutboxError> {
        let corrupt = |reason: String| OutboxError::CorruptRow {
            seq,
            id: event_id.clone(),
            reason,
        };
        let pairs: Vec<(String, String)> =
            serde_json::from_str(headers).map_err(|e| corrupt(format!("headers: {e}")))?;
        let record = KafkaRecord {
            key: None,
            value: data,
            headers: pairs
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        };
        let envelope = Envelope::from_kafka(&record).map_err(|e| corrupt(e.to_string()))?;
        if envelope.id != event_id {
            return Err(corrupt(format!(
                "its headers hold event id {:?}",
                envelope.id
            )));
        }
        let aggregate_seq = u64::try_from(aggregate_seq)
            .map_err(|_| corrupt(format!("negative aggregate_seq {aggregate_seq}")))?;
        Ok(Self {
            seq,
            aggregate_id,
            aggregate_seq,
            envelope,
        })
    }
}

/// A source of unpublished rows: claims a batch (holding whatever keeps
/// other relays off it), then marks what was published and lets go.
pub(crate) trait Claimer: Send {
    /// Claims up to `rows_max` unpublished rows, in order per aggregate
    /// (by `aggregate_seq`), each aggregate's rows a prefix of its
    /// unpublished ones. Empty when there are none, or when another relay
    /// holds the outbox.
    fn claim(&mut self, rows_max: usize) -> Result<Claimed, OutboxError>;
    /// Marks `seqs` published and ends the claim.
    fn complete(&mut self, seqs: &[i64]) -> Result<(), OutboxError>;
    /// Ends the claim without marking anything (after a failure).
    fn abandon(&mut self);
}

/// What one claim got.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    pub rows: Vec<Row>,
    /// Another relay holds the outbox (SQLite's lease): this one stands by.
    pub standby: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
