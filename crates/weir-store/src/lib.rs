//! `weir-store`: Weir's event store. Streams of events with optimistic
//! concurrency (an append states the version it expects), one global order
//! that projections follow, reads by stream, category, event type and
//! correlation id, and subscriptions that catch up and go live.
//!
//! [`EventStore`] is the interface; [`EmbeddedStore`] implements it over
//! the data directory's internal topic `__weir_events`, one record per
//! event in the CloudEvents Kafka binding, so every appended event also
//! reaches Kafka consumers with no second write (the store is its own
//! outbox). A PostgreSQL engine will implement the same trait. The crate
//! owns no sockets and no runtime; calls block on disk I/O. The design is
//! in `docs/design/event-store.md`.
//!
//! ```
//! use std::sync::Arc;
//! use weir_broker::{Broker, BrokerConfig};
//! use weir_log::{DataDir, DirConfig};
//! use weir_store::{Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig};
//!
//! let tmp = tempfile::tempdir()?;
//! let broker = Arc::new(Broker::open(DataDir::open(tmp.path(), DirConfig::default())?, BrokerConfig::default())?);
//! let store = EmbeddedStore::open(broker, StoreConfig::default())?;
//!
//! let opened = NewEvent::json("e-1", "AccountOpened", br#"{"owner":"ada"}"#.to_vec());
//! let done = store.append("account-42", ExpectedVersion::NoStream, &[opened])?; // durable when it returns
//! assert_eq!(done.last_version, 0);
//!
//! let deposited = NewEvent::json("e-2", "Deposited", br#"{"amount":100}"#.to_vec());
//! store.append("account-42", ExpectedVersion::Exact(0), &[deposited])?;
//! let stale = NewEvent::json("e-3", "Deposited", br#"{"amount":5}"#.to_vec());
//! assert!(store.append("account-42", ExpectedVersion::Exact(0), &[stale]).is_err());
//!
//! let events = store.read_stream("account-42", 0, Direction::Forward, 100)?;
//! assert_eq!(events.len(), 2);
//! assert_eq!(store.read_category("account", 0, Direction::Forward, 100)?.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod correlation;
mod embedded;
mod error;
mod index;
pub mod persistent;
mod saved_index;
mod snapshots;
mod stats;
mod subscription;
mod trace;
mod types;
mod validation;

pub use codec::rfc3339;

/// The names of the Kafka record headers an event is stored with
/// (CloudEvents' Kafka binding, binary mode), for writers and readers of
/// CloudEvents records elsewhere.
pub mod headers {
    pub use crate::codec::{
        H_CONTENT_TYPE as CONTENT_TYPE, H_ID as ID, H_METADATA as METADATA, H_SOURCE as SOURCE,
        H_SPECVERSION as SPECVERSION, H_STREAM_VERSION as STREAM_VERSION, H_TIME as TIME,
        H_TRACEPARENT as TRACEPARENT, H_TRACESTATE as TRACESTATE, H_TYPE as TYPE,
    };
}
pub use correlation::{CORRELATION_ID_BYTES_MAX, correlation_of, validate_correlation_id};
pub use embedded::{EVENTS_TOPIC, EmbeddedStore, INDEX_SAVE_EVERY_EVENTS, Recovery, StoreConfig};
pub use error::StoreError;
pub use index::RECENT_IDS_WINDOW;
pub use snapshots::{Loaded, SNAPSHOT_BYTES_MAX, SNAPSHOTS_TOPIC, Snapshot};
pub use stats::{StoreCounts, StoreStats};
pub use subscription::{Checkpoint, Filter, Subscription, Target};
pub use trace::{TRACESTATE_BYTES_MAX, TraceContext, TraceParent};
pub use types::{
    APPEND_BYTES_MAX, APPEND_EVENTS_MAX, AppendResult, AsOf, Direction, EVENT_ID_BYTES_MAX,
    EVENT_TYPE_BYTES_MAX, ExpectedVersion, NewEvent, READ_COUNT_MAX, RecordedEvent,
    STREAM_ID_BYTES_MAX, StreamMetadata, category_of, validate_stream,
};
pub use validation::EventValidator;

/// An event store engine. Every method blocks until done; an append
/// returns once its events are durable, and readers see only durable
/// events.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` if it is at `expected`; all of them or
    /// none, consecutive in the global order. Retrying an append with the
    /// same event ids returns the first attempt's result and writes
    /// nothing: always for an exact version and `NoStream`; for `Any` and
    /// `Exists` while the ids are among the last [`RECENT_IDS_WINDOW`]
    /// recorded.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError>;

    /// The stream's last version, `None` if it has no events.
    fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// Up to `max_count` events of a stream from `from_version`, forward
    /// or backward (backward from `u64::MAX` starts at the newest).
    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max_count` events in global order from `from_position`
    /// (inclusive), forward or backward.
    fn read_all(
        &self,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of a category (streams `category-…`) in global order.
    fn read_category(
        &self,
        category: &str,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of one type in global order.
    fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max_count` events of one correlation in global order from
    /// `from_position` (inclusive): the events whose metadata is a JSON
    /// object with the string `correlationid` (the SDK's envelope writes
    /// it; see [`correlation_of`]). An id no event names reads as empty.
    fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position the next event will have; every event below it is
    /// durable and readable.
    fn head_position(&self) -> u64;

    /// Soft delete: the stream reads as absent; a later append (with
    /// `NoStream` or `Any`) writes it again, its versions continuing.
    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<(), StoreError>;

    /// Deletes the stream for good: reads and appends fail with
    /// [`StoreError::StreamDeleted`].
    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<(), StoreError>;

    /// Sets a stream's settings, enforced on every read from now on.
    fn set_stream_metadata(
        &self,
        stream: &str,
        settings: &StreamMetadata,
    ) -> Result<(), StoreError>;

    /// A stream's settings.
    fn stream_metadata(&self, stream: &str) -> Result<StreamMetadata, StoreError>;

    /// A stream's events as they were at a past position or time, oldest
    /// first.
    fn read_stream_as_of(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Saves an aggregate's state as of `version` of `stream`, beside it.
    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// The stream's newest snapshot and up to `max_events` events after it.
    fn load(&self, stream: &str, max_events: usize) -> Result<Loaded, StoreError>;
}
