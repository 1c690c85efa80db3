//! The event store's vocabulary: what a writer expects of a stream, the
//! events it appends, the events readers get back, and the names and
//! limits that hold for all of them.

use crate::StoreError;

/// Longest stream id, in bytes.
pub const STREAM_ID_BYTES_MAX: usize = 1024;
/// Longest event id and event type, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 256;
pub const EVENT_TYPE_BYTES_MAX: usize = 256;
/// Most events in one append.
pub const APPEND_EVENTS_MAX: usize = 10_000;
/// Most bytes of data and metadata in one append (it is one record batch).
pub const APPEND_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most events one read returns, whatever `max_count` asks.
pub const READ_COUNT_MAX: usize = 100_000;

/// What a writer expects of the stream it appends to (optimistic
/// concurrency, as in KurrentDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist (no event, or deleted and not written
    /// since).
    NoStream,
    /// The stream must exist.
    Exists,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no_stream"),
            Self::Exists => f.write_str("exists"),
            Self::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id (the CloudEvents `id`); a retried append with the same ids
    /// is idempotent.
    pub id: String,
    /// The event type (CloudEvents `type`), e.g. `AccountOpened`.
    pub event_type: String,
    /// The payload, as the writer encoded it.
    pub data: Vec<u8>,
    /// The payload's media type (CloudEvents `datacontenttype`).
    pub content_type: String,
    /// Free-form metadata (JSON by convention), kept beside the data.
    pub metadata: Vec<u8>,
    /// The W3C trace context the event was written in (CloudEvents'
    /// distributed-tracing extension), if any.
    pub trace: Option<crate::TraceContext>,
}

impl NewEvent {
    /// A JSON event with no metadata.
    pub fn json(
        id: impl Into<String>,
        event_type: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            id: id.into(),
            event_type: event_type.into(),
            data: data.into(),
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: String,
    /// The event's version in its stream, from 0.
    pub version: u64,
    /// The event's place in the global order (its offset in the events
    /// log).
    pub position: u64,
    pub id: String,
    pub event_type: String,
    pub data: Vec<u8>,
    pub content_type: String,
    pub metadata: Vec<u8>,
    /// When the store recorded it, in ms since the Unix epoch.
    pub recorded_ms: i64,
    /// The W3C trace context it was written in, if any.
    pub trace: Option<crate::TraceContext>,
}

/// What an append did (or, for an idempotent retry, had done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Versions of the first and last event appended.
    pub first_version: u64,
    pub last_version: u64,
    /// Global positions of the first and last event appended.
    pub first_position: u64,
    pub last_position: u64,
}

impl AppendResult {
    /// The version to expect for the next append.
    pub fn next_expected(&self) -> ExpectedVersion {
        ExpectedVersion::Exact(self.last_version)
    }
}

/// Which way a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// The category of a stream: its id up to the first `-` (`account` for
/// `account-42`), as KurrentDB's `$by_category` has it; a stream without
/// one is in no category.
pub fn category_of(stream: &str) -> Option<&str> {
    stream
        .split_once('-')
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty())
}

/// Checks a stream id: not empty, bounded, no control characters, and not
/// starting with `$` (reserved for the store's own streams).
pub fn validate_stream(stream: &str) -> Result<(), StoreError> {
    let invalid = |reason: &'static str| StoreError::InvalidStream {
        stream: stream.chars().take(64).collect(),
        reason,
    };
    if stream.is_empty() {
        return Err(invalid("a stream id must not be empty"));
    }
    if stream.len() > STREAM_ID_BYTES_MAX {
        return Err(invalid("a stream id is at most 1024 bytes"));
    }
    if stream.chars().any(char::is_control) {
        return Err(invalid("a stream id must not contain control characters"));
    }
    if stream.starts_with('$') {
        return Err(invalid("stream ids starting with '$' are reserved"));
    }
    Ok(())
}

pub(crate) fn validate_events(events: &[NewEvent]) -> Result<(), StoreError> {
    if events.len() > APPEND_EVENTS_MAX {
        return Err(StoreError::AppendTooLarge {
            reason: format!(
                "{} events, at most {APPEND_EVENTS_MAX} per append",
                events.len()
            ),
        });
    }
    let bytes: usize = events
        .iter()
        .map(|e| e.data.len() + e.metadata.len() + e.id.len() + e.event_type.len())
        .sum();
    if bytes > APPEND_BYTES_MAX {
        return Err(StoreError::AppendTooLarge {
            reason: format!("{bytes} bytes, at most {APPEND_BYTES_MAX} per append"),
        });
    }
    let mut ids = std::collections::HashSet::with_capacity(events.len());
    for e in events {
        let invalid = |reason: String| StoreError::InvalidEvent {
            id: e.id.chars().take(64).collect(),
            reason,
        };
        if e.id.is_empty() || e.id.len() > EVENT_ID_BYTES_MAX {
            return Err(invalid(format!(
                "an event id has 1 to {EVENT_ID_BYTES_MAX} bytes"
            )));
        }
        if e.event_type.is_empty() || e.event_type.len() > EVENT_TYPE_BYTES_MAX {
            return Err(invalid(format!(
                "an event type has 1 to {EVENT_TYPE_BYTES_MAX} bytes"
            )));
        }
        if e.event_type.starts_with('$') {
            return Err(invalid(
                "event types starting with '$' are reserved".to_owned(),
            ));
        }
        if e.content_type.len() > EVENT_TYPE_BYTES_MAX {
            return Err(invalid("the content type is too long".to_owned()));
        }
        if !ids.insert(e.id.as_str()) {
            return Err(invalid("the id appears twice in one append".to_owned()));
        }
    }
    Ok(())
}

/// A stream's settings (KurrentDB's stream metadata), enforced on reads.
/// Space is reclaimed by a later scavenge, not by setting them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamMetadata {
    /// Events older than this many milliseconds read as gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Only the newest this many events can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Events with a lower version read as gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_before: Option<u64>,
}

/// A point in the past to read a stream as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Events at or before this global position.
    Position(u64),
    /// Events recorded at or before this time (ms since the Unix epoch).
    Time(i64),
}

impl AsOf {
    /// Whether `event` came after this point.
    pub fn is_past(&self, event: &RecordedEvent) -> bool {
        match *self {
            AsOf::Position(p) => event.position > p,
            AsOf::Time(ms) => event.recorded_ms > ms,
        }
    }

    /// A stream's events as of this point, at most `max_count`, from
    /// forward pages of `page_size` that `read(from_version)` returns (a
    /// shorter page is the stream's end). Any engine reads as-of this way:
    /// a stream's events are in recorded order.
    pub fn collect<E>(
        &self,
        max_count: usize,
        page_size: usize,
        mut read: impl FnMut(u64) -> Result<Vec<RecordedEvent>, E>,
    ) -> Result<Vec<RecordedEvent>, E> {
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let page = read(from)?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            let full = page.len() >= page_size;
            for e in page {
                if self.is_past(&e) || out.len() >= max {
                    return Ok(out);
                }
                out.push(e);
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}
