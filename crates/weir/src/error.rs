//! The SDK's errors: one enum for everything the SDK itself can fail at,
//! and [`CommandError`] for command handling, which adds the aggregate's
//! own refusal as a separate, typed case.

use weir_store::StoreError;

/// A failure of the SDK or of the store beneath it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A persistent-subscription call was refused (embedded; a remote
    /// server's refusal is [`Error::Server`] with the problem's code).
    #[error(transparent)]
    Subscription(#[from] weir_store::persistent::SubscriptionError),
    #[error("opening the data directory {path}: {reason}")]
    Open { path: String, reason: String },
    /// The server of a remote client could not be reached, the connection
    /// broke, or it answered something the SDK does not understand.
    #[error("talking to the weir server {server}: {reason}")]
    Remote { server: String, reason: String },
    /// The server refused a request for a reason the store has no variant
    /// for (its RFC 9457 problem: HTTP status, stable code, detail).
    #[error("the weir server answered {status} {code}: {detail}")]
    Server {
        status: u16,
        code: String,
        detail: String,
    },
    /// A payload the remote backend must send as JSON is not JSON.
    #[error("{what} is not JSON, which the HTTP API needs: {reason}")]
    NotJson { what: String, reason: String },
    #[error("invalid client settings: {reason}")]
    Config { reason: String },
    #[error(
        "unknown event type {event_type:?} version {version}: no Rust type is registered for it"
    )]
    UnknownEventType { event_type: String, version: u32 },
    #[error(
        "event type {event_type:?} version {version} is registered twice: to {first} and to {second}"
    )]
    DuplicateEventType {
        event_type: String,
        version: u32,
        first: &'static str,
        second: &'static str,
    },
    #[error("event {id:?} ({event_type:?}): its data does not decode: {reason}")]
    BadEventData {
        id: String,
        event_type: String,
        reason: String,
    },
    /// An upcaster registration refused (a duplicate step, one past the
    /// current version, a limit).
    #[error("upcasters of {event_type:?}: {reason}")]
    InvalidUpcaster { event_type: String, reason: String },
    /// An event older than its type's current version, with no upcaster
    /// for one of the steps between.
    #[error(
        "event {id:?} ({event_type:?} v{version}): no upcaster from v{missing} on the way to the current v{current}"
    )]
    UpcastGap {
        id: String,
        event_type: String,
        version: u32,
        missing: u32,
        current: u32,
    },
    /// An upcaster failed on an event (or its data is not JSON); `version`
    /// is the version the failing step reads.
    #[error("event {id:?} ({event_type:?} v{version}): upcasting failed: {reason}")]
    UpcastFailed {
        id: String,
        event_type: String,
        version: u32,
        reason: String,
    },
    /// The schema registry refused a call, or could not be reached;
    /// `code` is Confluent's error code (0 when there is none).
    #[error("schema registry, subject {subject:?}: {reason} (code {code})")]
    Schema {
        subject: String,
        code: u32,
        reason: String,
    },
    /// An event curtain met an internal event type it neither maps nor
    /// drops, or its mapping failed.
    #[error("curtain {name}: event {id:?} ({event_type:?}): {reason}")]
    Curtain {
        name: String,
        id: String,
        event_type: String,
        reason: String,
    },
    #[error("event {id:?}: its metadata is not the SDK's: {reason}")]
    BadMetadata { id: String, reason: String },
    #[error("not a CloudEvent: {reason}")]
    InvalidCloudEvent { reason: String },
    #[error("stream {stream}: the snapshot at version {version} does not decode: {reason}")]
    BadSnapshot {
        stream: String,
        version: u64,
        reason: String,
    },
    #[error(
        "stream {stream}: gave up after {attempts} attempts, each lost a version conflict to another writer"
    )]
    Contention { stream: String, attempts: u32 },
    #[error("stream {stream} holds more than {max} events to load")]
    AggregateTooLong { stream: String, max: usize },
    #[error("read model {name}: {reason}")]
    ReadModel { name: String, reason: String },
    #[error(
        "read model {name}: the handler failed on event {id:?} at position {position}: {reason}"
    )]
    Handler {
        name: String,
        id: String,
        position: u64,
        reason: String,
    },
    /// The Kafka client of a service failed (creating, subscribing).
    #[error("service {service}: kafka: {reason}")]
    Kafka { service: String, reason: String },
    /// A saga operation was refused, or a saga's events do not make one.
    #[error("saga: {reason}")]
    Saga { reason: String },
    /// A dead-letter operation was refused or failed.
    #[error("dead letters: {reason}")]
    DeadLetters { reason: String },
    /// A queue call failed (see [`crate::queue`]).
    #[error("queue: {reason}")]
    Queue { reason: String },
    /// The consumer does not hold the record (its lock ran out and another
    /// consumer took it, or it was settled already).
    #[error("queue: offset {offset} is not held by {consumer:?}")]
    NotHeld { offset: i64, consumer: String },
    #[error("over a limit: {reason}")]
    Limit { reason: String },
    /// The client's backend cannot do this (a custom [`crate::Backend`]
    /// that does not implement it).
    #[error("this client's backend does not support {what}")]
    Unsupported { what: &'static str },
    #[error("invalid query: {reason}")]
    InvalidQuery { reason: String },
    #[error(
        "read model {name} did not reach position {position} within {timeout_ms} ms (it has applied everything below {checkpoint})"
    )]
    Timeout {
        name: String,
        position: u64,
        checkpoint: u64,
        timeout_ms: u64,
    },
}

impl Error {
    pub(crate) fn sqlite(name: &str, e: rusqlite::Error) -> Self {
        Self::ReadModel {
            name: name.to_owned(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn io(name: &str, what: &str, e: std::io::Error) -> Self {
        Self::ReadModel {
            name: name.to_owned(),
            reason: format!("{what}: {e}"),
        }
    }
}

/// Why a command was not carried out: the aggregate refused it (its
/// invariants, with its own error type), or the SDK failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    #[error(transparent)]
    Failed(#[from] Error),
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// The aggregate's refusal, if that is what this is.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(e) => Some(e),
            Self::Failed(_) => None,
        }
    }
}
