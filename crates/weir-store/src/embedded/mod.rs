//! The embedded engine: every event is one record of the internal topic
//! `__weir_events` (one partition; a record's offset is the event's global
//! position), appended through `weir-log`, so an append shares the data
//! directory's fsync rounds with produce and commits, and a Kafka consumer
//! reads the same bytes. Indexes live in memory and are rebuilt from the
//! log on open.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use weir_broker::Broker;
use weir_log::batch::{self, BatchHeader};
use weir_log::{Clock, FsyncPolicy, Log};

use crate::codec;
use crate::correlation::{correlation_of, validate_correlation_id};
use crate::index::{Index, StreamMeta};
use crate::saved_index;
use crate::snapshots::{self, Loaded, SNAPSHOTS_TOPIC, Snapshot};
use crate::types::{READ_COUNT_MAX, validate_events, validate_stream};
use crate::{
    AppendResult, AsOf, Direction, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError, StreamMetadata,
};

mod append;
mod lifecycle;
mod own;
mod read;

use append::check_expected;
use lifecycle::apply_system;
pub(crate) use own::Sequence;
pub(crate) use read::for_each_record;

/// The internal topic that holds every event.
pub const EVENTS_TOPIC: &str = "__weir_events";

/// A stream's metadata stream is `$$` and its id; its events are of these
/// types.
const META_PREFIX: &str = "$$";
const TYPE_METADATA: &str = "$metadata";
const TYPE_TOMBSTONE: &str = "$tombstone";

/// Bytes read at once when scanning the log in order.
const SCAN_BYTES: usize = 1024 * 1024;

/// Events appended since the last saved index before
/// [`EmbeddedStore::maintain`] writes a new one; a reopen after a crash
/// replays at most about this many.
pub const INDEX_SAVE_EVERY_EVENTS: u64 = 100_000;

/// What opening the store found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The position the saved index covered, if a good one was found.
    pub saved_index_position: Option<u64>,
    /// Events read from the log to finish the indexes.
    pub events_replayed: u64,
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Segment size of `__weir_events`.
    pub segment_bytes: u64,
    /// The clock events are recorded by; `None` is the data directory's.
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 256 * 1024 * 1024,
            clock: None,
        }
    }
}

#[derive(Debug)]
struct State {
    index: Index,
    /// Recorded times never go backwards, whatever the clock does.
    last_recorded_ms: i64,
}

/// The event store over one data directory.
#[derive(Debug)]
pub struct EmbeddedStore {
    broker: Arc<Broker>,
    log: Log,
    clock: Arc<dyn Clock>,
    state: RwLock<State>,
    /// The position the newest saved index on disk covers.
    saved_index_position: Mutex<u64>,
    recovery: Recovery,
    /// The aggregate snapshots topic and each stream's newest snapshot.
    snapshots: Mutex<(Log, snapshots::Latest)>,
    pub(crate) stats: crate::stats::StoreStats,
    /// Checks appends to categories with schema validation on (the schema
    /// registry's, installed once).
    validator: std::sync::OnceLock<Arc<dyn crate::EventValidator>>,
}

fn read_lock(lock: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock(lock: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl EmbeddedStore {
    /// Opens the store in the broker's data directory, creating
    /// `__weir_events` if needed, and indexes the log.
    pub fn open(broker: Arc<Broker>, config: StoreConfig) -> Result<Self, StoreError> {
        let segment_bytes = config.segment_bytes.to_string();
        // One append is one batch: let the largest append in, as far as a
        // segment holds it (the broker refuses a max.message.bytes above
        // segment.bytes).
        let message_bytes = (crate::types::APPEND_BYTES_MAX as u64 * 2)
            .min(config.segment_bytes)
            .to_string();
        broker.ensure_internal_topic(
            EVENTS_TOPIC,
            1,
            &[
                ("retention.ms", "-1"),
                ("segment.bytes", &segment_bytes),
                ("max.message.bytes", &message_bytes),
            ],
        )?;
        let log = broker.partition(EVENTS_TOPIC, 0)?;
        broker.ensure_internal_topic(
            SNAPSHOTS_TOPIC,
            1,
            &[
                ("retention.ms", "-1"),
                (
                    "max.message.bytes",
                    &(snapshots::SNAPSHOT_BYTES_MAX * 2).to_string(),
                ),
            ],
        )?;
        let snapshot_log = broker.partition(SNAPSHOTS_TOPIC, 0)?;
        let latest = snapshots::scan(&snapshot_log)?;
        let clock = config.clock.unwrap_or_else(|| broker.data_dir().clock());
        let start = log.start_offset().max(0) as u64;
        let end = log.high_watermark().max(0) as u64;
        let (mut index, mut last_recorded_ms) = Self::load_saved_index(&broker, start, end);
        let saved_index_position = (index.next_position > start).then_some(index.next_position);
        let mut at = index.next_position;
        while at < end {
            let read = log.read(at as i64, SCAN_BYTES)?;
            if read.bytes.is_empty() {
                break;
            }
            for_each_record(&read.bytes, |r| {
                if (r.offset as u64) < at {
                    return Ok(());
                }
                let (stream, version, id, event_type) = codec::index_fields(r)?;
                let correlation = correlation_of(codec::metadata(r));
                last_recorded_ms = last_recorded_ms.max(r.timestamp);
                let offset = r.offset as u64;
                index.add(
                    stream,
                    version,
                    id,
                    event_type,
                    correlation.as_deref(),
                    offset,
                )?;
                if stream.starts_with('$') {
                    let data = r.value.unwrap_or_default();
                    apply_system(&mut index, stream, r.offset as u64, event_type, data);
                }
                Ok(())
            })?;
            at = read.next_offset as u64;
        }
        // Everything read at open is durable.
        index.meta_durable(end);
        let recovery = Recovery {
            saved_index_position,
            events_replayed: end - saved_index_position.unwrap_or(start),
        };
        tracing::info!(
            events = end - start,
            streams = index.streams.len(),
            ?recovery,
            "event store indexed"
        );
        Ok(Self {
            broker,
            log,
            clock,
            state: RwLock::new(State {
                index,
                last_recorded_ms,
            }),
            saved_index_position: Mutex::new(saved_index_position.unwrap_or(0)),
            recovery,
            snapshots: Mutex::new((snapshot_log, latest)),
            stats: crate::stats::StoreStats::default(),
            validator: std::sync::OnceLock::new(),
        })
    }

    /// Installs the checker of appends (the schema registry's); the first
    /// one installed stays (false if one was already).
    pub fn set_event_validator(&self, validator: Arc<dyn crate::EventValidator>) -> bool {
        self.validator.set(validator).is_ok()
    }

    /// Saves an aggregate's state as of `version` of `stream` (which must
    /// have that version), beside the stream.
    fn save_snapshot_impl(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        validate_stream(stream)?;
        let current = self.stream_version(stream)?;
        if current.is_none_or(|c| version > c) {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected: ExpectedVersion::Exact(version),
                actual: current,
            });
        }
        let now = self.clock.now_ms();
        let mut guard = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let (log, latest) = &mut *guard;
        snapshots::save(
            log,
            latest,
            &Snapshot {
                stream: stream.to_owned(),
                version,
                snapshot_type: snapshot_type.to_owned(),
                data,
                recorded_ms: now,
            },
        )
    }

    /// The saved index, if there is a good one that fits the log
    /// ([`log start`, `end`]); otherwise an empty index from `start`.
    fn load_saved_index(broker: &Broker, start: u64, end: u64) -> (Index, i64) {
        let empty = || {
            let mut index = Index::default();
            index.next_position = start;
            (index, 0)
        };
        let bytes = match broker.data_dir().read_meta(saved_index::FILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return empty(),
            Err(e) => {
                tracing::warn!(%e, "reading the saved index failed; rebuilding from the log");
                return empty();
            }
        };
        match saved_index::decode(&bytes) {
            Ok((index, t)) if (start..=end).contains(&index.next_position) => (index, t),
            Ok((index, _)) => {
                tracing::warn!(
                    covered = index.next_position,
                    start,
                    end,
                    "the saved index does not fit the log; rebuilding from the log"
                );
                empty()
            }
            Err(e) => {
                tracing::warn!(%e, "ignoring the saved index; rebuilding from the log");
                empty()
            }
        }
    }

    /// What opening found and did.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Writes an saved index if at least [`INDEX_SAVE_EVERY_EVENTS`]
    /// events were appended since the last one (or `force`). The server
    /// calls it now and then; closing the store forces one.
    pub fn maintain(&self, force: bool) -> Result<(), StoreError> {
        let mut covered = self
            .saved_index_position
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Stream settings and deletes take effect in the index when their
        // events are written, not when they are durable: save only when
        // none is on its way to the disk, or a crash that loses it would
        // leave the saved index claiming it. (A few tries: they are rare.)
        let mut tries = 0;
        let (head, bytes) = loop {
            let head = self.head();
            if head <= *covered || (!force && head - *covered < INDEX_SAVE_EVERY_EVENTS) {
                return Ok(());
            }
            let st = read_lock(&self.state);
            match st.index.meta_in_flight(head) {
                None => {
                    break (
                        head,
                        saved_index::encode(&st.index, head, st.last_recorded_ms),
                    );
                }
                Some(_) if tries == 8 => return Ok(()),
                Some(p) => {
                    drop(st);
                    self.wait_durable(p)?;
                    tries += 1;
                }
            }
        };
        self.broker
            .data_dir()
            .write_meta(saved_index::FILE, &bytes)?;
        tracing::debug!(position = head, bytes = bytes.len(), "saved index written");
        *covered = head;
        Ok(())
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The position the next durable event will have: every event below
    /// it can be read.
    pub fn head(&self) -> u64 {
        self.log.high_watermark().max(0) as u64
    }

    /// [`EventStore::append`] without blocking a thread: the events are
    /// written at once and the future resolves when they are durable
    /// (under the broker's default `fsync=always`), their fsync shared with
    /// every other appender. For async servers, which would otherwise hold
    /// a blocking-pool thread per append in flight.
    pub async fn append_async(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let started = std::time::Instant::now();
        let result = self.append_unsynced(stream, expected, events)?;
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log
                .until_durable(result.last_position as i64 + 1)
                .await?;
        }
        self.stats.appended(events.len(), started.elapsed());
        Ok(result)
    }

    /// Appends, their latency and open subscriptions, for metrics.
    pub fn stats(&self) -> &crate::stats::StoreStats {
        &self.stats
    }
}

impl EventStore for EmbeddedStore {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let started = std::time::Instant::now();
        let result = self.append_unsynced(stream, expected, events)?;
        self.wait_durable(result.last_position)?;
        self.stats.appended(events.len(), started.elapsed());
        Ok(result)
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let head = self.head();
        let st = read_lock(&self.state);
        let meta = st.index.meta_at(stream, head);
        if meta.is_some_and(|m| m.tombstoned) {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let last = st
            .index
            .streams
            .get(stream)
            .and_then(|p| (p.partition_point(|&pos| pos < head) as u64).checked_sub(1));
        Ok(match meta {
            Some(m) if m.deleted_at.is_some() && m.deleted_at == last => None,
            _ => last,
        })
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let not_found = || StoreError::StreamNotFound {
            stream: stream.to_owned(),
        };
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::new();
        let mut from_version = from_version;
        // One page, unless max_age hides events of it: those are the
        // stream's oldest (recorded times never go back), so a forward
        // read goes on past them until it has `max` events or the end.
        loop {
            let asked = max - out.len();
            let (positions, meta) = {
                let st = read_lock(&self.state);
                let meta = st.index.meta_at(stream, head).cloned();
                if meta.as_ref().is_some_and(|m| m.tombstoned) {
                    return Err(StoreError::StreamDeleted {
                        stream: stream.to_owned(),
                    });
                }
                let Some(list) = st.index.streams.get(stream) else {
                    return Err(not_found());
                };
                let visible = list.partition_point(|&p| p < head);
                // Versions below the first visible one (truncate_before,
                // max_count, a soft delete) read as gone.
                let first = match (&meta, visible.checked_sub(1)) {
                    (_, None) => return Err(not_found()),
                    (Some(m), Some(last)) => m.first_visible(last as u64) as usize,
                    (None, Some(_)) => 0,
                };
                if first >= visible {
                    return Err(not_found());
                }
                let from = from_version.min(usize::MAX as u64) as usize;
                let positions = match direction {
                    Direction::Forward => list[from.clamp(first, visible)..visible]
                        .iter()
                        .take(asked)
                        .copied()
                        .collect::<Vec<_>>(),
                    Direction::Backward => {
                        let end = from.saturating_add(1).min(visible);
                        list[first.min(end)..end]
                            .iter()
                            .rev()
                            .take(asked)
                            .copied()
                            .collect()
                    }
                };
                (positions, meta)
            };
            let mut events = self.events_at(&positions)?;
            let full = events.len() == asked;
            let next = events.last().map(|e| e.version + 1);
            let read = events.len();
            if let Some(age) = meta.and_then(|m| m.settings.max_age_ms) {
                // Past i64::MAX ms is "forever" (as in `StreamMeta::shows`).
                let age = i64::try_from(age).unwrap_or(i64::MAX);
                let oldest = self.clock.now_ms().saturating_sub(age);
                events.retain(|e| e.recorded_ms >= oldest);
            }
            let hidden = events.len() < read;
            out.extend(events);
            match next {
                Some(next) if direction == Direction::Forward && hidden && full => {
                    from_version = next;
                }
                _ => return Ok(out),
            }
        }
    }

    fn read_all(
        &self,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.filtered(from_position, direction, max_count, |from, max| {
            self.read_all_raw(from, direction, max)
        })
    }

    fn read_category(
        &self,
        category: &str,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.filtered(from_position, direction, max_count, |from, max| {
            self.read_indexed(|i| i.categories.get(category), from, direction, max)
        })
    }

    fn read_type(
        &self,
        event_type: &str,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.filtered(from_position, direction, max_count, |from, max| {
            self.read_indexed(|i| i.types.get(event_type), from, direction, max)
        })
    }

    fn read_correlation(
        &self,
        correlation_id: &str,
        from_position: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_correlation_id(correlation_id)?;
        let forward = Direction::Forward;
        self.filtered(from_position, forward, max_count, |from, max| {
            self.read_indexed(|i| i.correlations.get(correlation_id), from, forward, max)
        })
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<(), StoreError> {
        self.delete_stream_impl(stream, expected)
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<(), StoreError> {
        self.tombstone_stream_impl(stream, expected)
    }

    fn set_stream_metadata(
        &self,
        stream: &str,
        settings: &StreamMetadata,
    ) -> Result<(), StoreError> {
        self.set_stream_metadata_impl(stream, settings)
    }

    fn stream_metadata(&self, stream: &str) -> Result<StreamMetadata, StoreError> {
        self.stream_metadata_impl(stream)
    }

    fn read_stream_as_of(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_as_of_impl(stream, as_of, max_count)
    }

    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        snapshot_type: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.save_snapshot_impl(stream, version, snapshot_type, data)
    }

    fn load(&self, stream: &str, max_events: usize) -> Result<Loaded, StoreError> {
        self.load_impl(stream, max_events)
    }

    fn head_position(&self) -> u64 {
        self.head()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.maintain(true) {
            tracing::warn!(%e, "writing the saved index at close failed");
        }
    }
}
