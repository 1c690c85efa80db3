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

/// The internal topic that holds every event.
pub const EVENTS_TOPIC: &str = "__weir_events";

/// A stream's metadata stream is `$$` and its id; its events are of these
/// types.
const META_PREFIX: &str = "$$";
const TYPE_METADATA: &str = "$metadata";
const TYPE_TOMBSTONE: &str = "$tombstone";

/// The data of a `$metadata` event.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct MetaRecord {
    #[serde(flatten)]
    settings: StreamMetadata,
    /// Set by a soft delete: the stream's last version then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_at: Option<u64>,
}

/// Applies a system event (of a `$$` stream, at `position`) to the stream
/// it is about.
fn apply_system(index: &mut Index, stream: &str, position: u64, event_type: &str, data: &[u8]) {
    let Some(target) = stream.strip_prefix(META_PREFIX) else {
        return;
    };
    match event_type {
        TYPE_METADATA => match serde_json::from_slice::<MetaRecord>(data) {
            Ok(record) => index.change_meta(target, position, |meta| {
                meta.settings = record.settings;
                meta.deleted_at = record.deleted_at;
            }),
            Err(e) => tracing::warn!(stream, %e, "skipping unreadable stream metadata"),
        },
        TYPE_TOMBSTONE => index.change_meta(target, position, |meta| meta.tombstoned = true),
        _ => {}
    }
}

fn check_expected(
    stream: &str,
    expected: ExpectedVersion,
    current: Option<u64>,
) -> Result<(), StoreError> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current.is_none(),
        ExpectedVersion::Exists => current.is_some(),
        ExpectedVersion::Exact(v) => current == Some(v),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual: current,
        })
    }
}

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
}

fn read_lock(lock: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock(lock: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Calls `f` with every record of the whole batches in `bytes`.
pub(crate) fn for_each_record(
    bytes: &[u8],
    mut f: impl FnMut(&batch::Record<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut at = 0;
    let mut walker = batch::RecordWalker::default();
    while at < bytes.len() {
        let header = BatchHeader::parse(&bytes[at..]).map_err(|e| StoreError::Corrupt {
            reason: format!("batch header in the events log: {e}"),
        })?;
        let end = at + header.total_bytes();
        if end > bytes.len() {
            break;
        }
        if header.compression() != 0 {
            return Err(StoreError::Corrupt {
                reason: format!(
                    "a compressed batch in the events log at {}",
                    header.base_offset
                ),
            });
        }
        walker.walk(&bytes[at + batch::HEADER_BYTES..end], &header, &mut f)?;
        at = end;
    }
    Ok(())
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
        })
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

    /// An aggregate as a repository loads it: the stream's newest snapshot
    /// and up to `max_events` events after it (all of them from version 0
    /// when there is none). A snapshot of versions that a soft delete or
    /// `truncate_before` hides is not used.
    fn load_impl(&self, stream: &str, max_events: usize) -> Result<Loaded, StoreError> {
        let found = {
            let guard = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            guard
                .1
                .get(stream)
                .map(|(_, position)| snapshots::read(&guard.0, position))
                .transpose()?
        };
        let from = found.as_ref().map_or(0, |s| s.version + 1);
        let events = match self.read_stream(stream, from, Direction::Forward, max_events) {
            Ok(events) => events,
            Err(StoreError::StreamNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        // The snapshot stands for versions up to its own; if readers may
        // not see those any more, neither may the loader.
        let first_visible = match self.read_stream(stream, 0, Direction::Forward, 1) {
            Ok(first) => first.first().map(|e| e.version),
            Err(StoreError::StreamNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let snapshot = found.filter(|s| first_visible.is_some_and(|v| v <= s.version + 1));
        if snapshot.is_none() && from > 0 {
            let events = match self.read_stream(stream, 0, Direction::Forward, max_events) {
                Ok(events) => events,
                Err(StoreError::StreamNotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            return Ok(Loaded {
                snapshot: None,
                events,
            });
        }
        Ok(Loaded { snapshot, events })
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

    /// Writes `events` after the stream's last version, under the write
    /// lock, and indexes them (each under its correlation id, read from its
    /// metadata by the caller before it took the lock); the caller waits
    /// for durability.
    fn write_locked(
        &self,
        st: &mut State,
        stream: &str,
        events: &[NewEvent],
        correlations: &[Option<Cow<'_, str>>],
    ) -> Result<AppendResult, StoreError> {
        assert_eq!(events.len(), correlations.len(), "a correlation per event");
        st.index.meta_durable(self.head());
        let first_version = st.index.version(stream).map_or(0, |v| v + 1);
        let now = self.clock.now_ms().max(st.last_recorded_ms);
        let mut bytes = codec::encode(stream, first_version, events, now);
        let info = self.log.append_nowait(&mut bytes)?;
        let first_position = info.base_offset as u64;
        for (i, e) in events.iter().enumerate() {
            let added = st.index.add(
                stream,
                first_version + i as u64,
                &e.id,
                &e.event_type,
                correlations[i].as_deref(),
                first_position + i as u64,
            );
            if let Err(err) = added {
                st.index.truncate(first_position);
                return Err(err);
            }
            if stream.starts_with('$') {
                let position = first_position + i as u64;
                apply_system(&mut st.index, stream, position, &e.event_type, &e.data);
            }
        }
        st.last_recorded_ms = now;
        Ok(AppendResult {
            first_version,
            last_version: first_version + events.len() as u64 - 1,
            first_position,
            last_position: info.last_offset as u64,
        })
    }

    /// Appends one event to a stream's metadata stream, under the lock.
    fn write_system(
        &self,
        st: &mut State,
        stream: &str,
        event_type: &str,
        data: Vec<u8>,
    ) -> Result<AppendResult, StoreError> {
        let meta_stream = format!("{META_PREFIX}{stream}");
        let version = st.index.version(&meta_stream).map_or(0, |v| v + 1);
        let event = NewEvent {
            id: format!("{meta_stream}@{version}"),
            event_type: event_type.to_owned(),
            data,
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        };
        // System events carry no metadata, so no correlation.
        self.write_locked(st, &meta_stream, &[event], &[None])
    }

    /// Checks that `stream` may be changed: valid, not tombstoned, at
    /// `expected`. Returns its metadata.
    fn lifecycle_check(
        st: &State,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<StreamMeta, StoreError> {
        validate_stream(stream)?;
        let meta = st.index.meta.get(stream).cloned().unwrap_or_default();
        if meta.tombstoned {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        check_expected(stream, expected, st.index.effective_version(stream))?;
        Ok(meta)
    }

    /// Soft delete: the stream reads as absent, and a later append (with
    /// `NoStream` or `Any`) writes it again, its versions continuing. The
    /// events stay in the log until a scavenge (a later feature).
    fn delete_stream_impl(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        let meta = Self::lifecycle_check(&st, stream, expected)?;
        let Some(last) = st.index.effective_version(stream) else {
            return Err(StoreError::StreamNotFound {
                stream: stream.to_owned(),
            });
        };
        let mut settings = meta.settings;
        settings.truncate_before = Some(last + 1);
        let record = MetaRecord {
            settings,
            deleted_at: Some(last),
        };
        let data = serde_json::to_vec(&record).expect("metadata serializes");
        let done = self.write_system(&mut st, stream, TYPE_METADATA, data)?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// Tombstone: the stream is deleted for good; reads and appends fail
    /// with [`StoreError::StreamDeleted`].
    fn tombstone_stream_impl(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        Self::lifecycle_check(&st, stream, expected)?;
        let done = self.write_system(&mut st, stream, TYPE_TOMBSTONE, b"{}".to_vec())?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// Sets a stream's settings (`max_age`, `max_count`, `truncate_before`),
    /// enforced on every read from now on. A stream need not exist yet.
    fn set_stream_metadata_impl(
        &self,
        stream: &str,
        settings: &StreamMetadata,
    ) -> Result<(), StoreError> {
        let mut st = write_lock(&self.state);
        let meta = Self::lifecycle_check(&st, stream, ExpectedVersion::Any)?;
        if settings.max_count == Some(0) {
            return Err(StoreError::InvalidMetadata {
                reason: "max_count must be at least 1".to_owned(),
            });
        }
        let mut settings = settings.clone();
        if let Some(deleted_at) = meta.deleted_at {
            // New settings never bring back what a soft delete removed.
            let floor = deleted_at + 1;
            settings.truncate_before =
                Some(settings.truncate_before.map_or(floor, |t| t.max(floor)));
        }
        let record = MetaRecord {
            settings,
            deleted_at: meta.deleted_at,
        };
        let data = serde_json::to_vec(&record).expect("metadata serializes");
        let done = self.write_system(&mut st, stream, TYPE_METADATA, data)?;
        drop(st);
        self.wait_durable(done.last_position)
    }

    /// A stream's settings.
    fn stream_metadata_impl(&self, stream: &str) -> Result<StreamMetadata, StoreError> {
        let head = self.head();
        let st = read_lock(&self.state);
        match st.index.meta_at(stream, head) {
            Some(m) if m.tombstoned => Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            }),
            Some(m) => Ok(m.settings.clone()),
            None => Ok(StreamMetadata::default()),
        }
    }

    /// Drops events readers may not see: those of system streams, and
    /// those their stream's settings, deletion or tombstone hide.
    fn visible(&self, events: Vec<RecordedEvent>, head: u64) -> Vec<RecordedEvent> {
        let now = self.clock.now_ms();
        let st = read_lock(&self.state);
        let last = |stream: &str| {
            st.index
                .streams
                .get(stream)
                .and_then(|p| (p.partition_point(|&pos| pos < head) as u64).checked_sub(1))
        };
        events
            .into_iter()
            .filter(|e| {
                !e.stream.starts_with('$')
                    && st.index.meta_at(&e.stream, head).is_none_or(|m| {
                        m.shows(last(&e.stream).unwrap_or(0), e.version, e.recorded_ms, now)
                    })
            })
            .collect()
    }

    /// A stream's events as they were at a past position or time, oldest
    /// first, at most `max_count`.
    fn read_stream_as_of_impl(
        &self,
        stream: &str,
        as_of: AsOf,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut started = false;
        as_of.collect(max_count, 1000, |from| {
            match self.read_stream(stream, from, Direction::Forward, 1000) {
                Ok(page) => {
                    started = true;
                    Ok(page)
                }
                // Hidden from a later version on (max_count, a delete):
                // what was read so far is the answer.
                Err(StoreError::StreamNotFound { .. }) if started => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
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

    /// Checks and writes an append (or finds it was made before: a retry);
    /// the caller waits for it to be durable.
    fn append_unsynced(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        validate_stream(stream)?;
        if events.is_empty() {
            return Err(StoreError::InvalidEvent {
                id: String::new(),
                reason: "an append has at least one event".to_owned(),
            });
        }
        validate_events(events)?;
        // Outside the lock: a byte search per event, and a parse only for
        // metadata that names a correlation.
        let correlations: Vec<_> = events.iter().map(|e| correlation_of(&e.metadata)).collect();
        let mut st = write_lock(&self.state);
        if st.index.meta.get(stream).is_some_and(|m| m.tombstoned) {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let last = st.index.version(stream);
        // A retry's first attempt may still be on its way to the disk: the
        // caller waits for it like for a new append.
        if let Some(done) = self.retried(&st.index, stream, expected, last, events)? {
            return Ok(done);
        }
        check_expected(stream, expected, st.index.effective_version(stream))?;
        self.write_locked(&mut st, stream, events, &correlations)
    }

    fn wait_durable(&self, last_position: u64) -> Result<(), StoreError> {
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log.wait_durable(last_position as i64 + 1)?;
        }
        Ok(())
    }

    /// The id of the event at `position`, if it is readable.
    fn id_at(&self, position: u64) -> Result<Option<String>, StoreError> {
        Ok(self.events_at(&[position])?.pop().map(|e| e.id))
    }

    /// Whether `events` were appended to `stream` before (a retry), and
    /// if so what that append did. An append that matches only in part is
    /// an error that says so.
    fn retried(
        &self,
        index: &Index,
        stream: &str,
        expected: ExpectedVersion,
        current: Option<u64>,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let n = events.len() as u64;
        let conflict = |reason: &str| StoreError::IdempotencyConflict {
            stream: stream.to_owned(),
            ids: events.iter().map(|e| e.id.clone()).collect(),
            reason: reason.to_owned(),
        };
        // Where each id was recorded, if it was.
        let mut found = Vec::with_capacity(events.len());
        match expected {
            ExpectedVersion::Exact(_) | ExpectedVersion::NoStream => {
                // Where the first attempt's events went: after the expected
                // version, or (no stream) after a soft delete's last version.
                let start = match expected {
                    ExpectedVersion::Exact(v) => match v.checked_add(1) {
                        Some(start) => start,
                        // No stream has a version past u64::MAX.
                        None => return Ok(None),
                    },
                    _ => index
                        .meta
                        .get(stream)
                        .and_then(|m| m.deleted_at)
                        .map_or(0, |d| d + 1),
                };
                let have = current.map_or(0, |c| c + 1);
                if have <= start {
                    return Ok(None);
                }
                let positions = &index.streams[stream];
                for (i, e) in events.iter().enumerate() {
                    let version = start + i as u64;
                    let Some(&position) = positions.get(version as usize) else {
                        found.push(None);
                        continue;
                    };
                    // The event at that version, whatever was recorded
                    // since under the same id elsewhere. Events not yet
                    // durable are all among the recent ids.
                    let same = match index.recent_id_at(position) {
                        Some(id) => id == e.id,
                        None if position >= self.head() => false,
                        None => self.id_at(position)?.as_deref() == Some(e.id.as_str()),
                    };
                    found.push(same.then_some((version, position)));
                }
            }
            ExpectedVersion::Any | ExpectedVersion::Exists => {
                for e in events {
                    found.push(match index.recent(&e.id) {
                        Some(r) if r.stream == stream => Some((r.version, r.position)),
                        // Recorded in another stream: never a retry of this.
                        Some(_) => Some((u64::MAX, u64::MAX)),
                        None => None,
                    });
                }
            }
        }
        let matched = found.iter().filter(|f| f.is_some()).count() as u64;
        if matched == 0 {
            return Ok(None);
        }
        let all = found.iter().flatten().copied().collect::<Vec<_>>();
        let consecutive = all
            .windows(2)
            .all(|w| w[0].0.checked_add(1) == Some(w[1].0) && w[1].1 > w[0].1);
        if matched < n || !consecutive || all.iter().any(|f| f.0 == u64::MAX) {
            return Err(conflict(
                "only some of the ids were appended before, or elsewhere",
            ));
        }
        let (first, last) = (all[0], all[all.len() - 1]);
        Ok(Some(AppendResult {
            first_version: first.0,
            last_version: last.0,
            first_position: first.1,
            last_position: last.1,
        }))
    }

    /// Reads the events at `positions` (each below the head), in the
    /// order given. Neighbouring positions share one read.
    fn events_at(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut cache: HashMap<u64, RecordedEvent> = HashMap::new();
        let mut out = Vec::with_capacity(positions.len());
        for &p in positions {
            if let Some(e) = cache.remove(&p) {
                out.push(e);
                continue;
            }
            cache.clear();
            // The batch that holds `p` (and the events of its append).
            let read = self.log.read(p as i64, 1)?;
            for_each_record(&read.bytes, |r| {
                if r.offset as u64 >= p {
                    cache.insert(r.offset as u64, codec::decode(r)?);
                }
                Ok(())
            })?;
            match cache.remove(&p) {
                Some(e) => out.push(e),
                None => {
                    return Err(StoreError::Corrupt {
                        reason: format!("the index points at {p}, which the log does not hold"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Positions from an index list (global order) starting at `from` in
    /// `direction`, below the head, at most `max_count`.
    fn page(
        list: &[u64],
        head: u64,
        from: u64,
        direction: Direction,
        max_count: usize,
    ) -> Vec<u64> {
        let visible = &list[..list.partition_point(|&p| p < head)];
        let max = max_count.min(READ_COUNT_MAX);
        match direction {
            Direction::Forward => {
                let start = visible.partition_point(|&p| p < from);
                visible[start..].iter().take(max).copied().collect()
            }
            Direction::Backward => {
                let end = visible.partition_point(|&p| p <= from);
                visible[..end].iter().rev().take(max).copied().collect()
            }
        }
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

impl EmbeddedStore {
    /// Pages through `fetch` (a raw read in global order) from `from`,
    /// keeping what readers may see, until `max_count` events or the end.
    fn filtered(
        &self,
        from: u64,
        direction: Direction,
        max_count: usize,
        mut fetch: impl FnMut(u64, usize) -> Result<Vec<RecordedEvent>, StoreError>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < max {
            let want = max - out.len();
            let page = fetch(at, want)?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let short = page.len() < want;
            let page = self.visible(page, head);
            if out.is_empty() {
                out = page;
            } else {
                out.extend(page);
            }
            match direction {
                Direction::Forward => at = last + 1,
                Direction::Backward if last == 0 => break,
                Direction::Backward => at = last - 1,
            }
            if short {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// Events of an index list (category or type) in global order.
    fn read_indexed(
        &self,
        list: impl for<'a> Fn(&'a Index) -> Option<&'a Vec<u64>>,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let positions = {
            let st = read_lock(&self.state);
            list(&st.index)
                .map(|l| Self::page(l, head, from_position, direction, max_count))
                .unwrap_or_default()
        };
        self.events_at(&positions)
    }

    fn read_all_raw(
        &self,
        from_position: u64,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.head();
        let start = self.log.start_offset().max(0) as u64;
        let max = max_count.min(READ_COUNT_MAX);
        let mut out = Vec::with_capacity(max.min(head.saturating_sub(from_position) as usize));
        match direction {
            Direction::Forward => {
                let mut at = from_position.max(start);
                while at < head && out.len() < max {
                    let read = self.log.read(at as i64, SCAN_BYTES)?;
                    if read.bytes.is_empty() {
                        break;
                    }
                    for_each_record(&read.bytes, |r| {
                        let p = r.offset as u64;
                        if p >= at && p < head && out.len() < max {
                            out.push(codec::decode(r)?);
                        }
                        Ok(())
                    })?;
                    at = read.next_offset as u64;
                }
            }
            Direction::Backward => {
                // From the batch holding `at`, newest first, then the batch
                // before it.
                let mut at = from_position.min(head.saturating_sub(1));
                while head > 0 && at >= start && out.len() < max {
                    let read = self.log.read(at as i64, 1)?;
                    let mut batch = Vec::new();
                    for_each_record(&read.bytes, |r| {
                        batch.push(codec::decode(r)?);
                        Ok(())
                    })?;
                    let Some(base) = batch.first().map(|e| e.position) else {
                        break;
                    };
                    out.extend(
                        batch
                            .into_iter()
                            .rev()
                            .filter(|e| e.position <= at)
                            .take(max - out.len()),
                    );
                    if base == 0 || base <= start {
                        break;
                    }
                    at = base - 1;
                }
            }
        }
        Ok(out)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.maintain(true) {
            tracing::warn!(%e, "writing the saved index at close failed");
        }
    }
}
