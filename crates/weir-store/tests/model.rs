//! Model-based tests of the event store: random sequences of appends (with
//! every kind of expected version, right and wrong, and retries of earlier
//! appends), reads of every kind, deletes, tombstones, stream metadata,
//! aggregate snapshots, subscriptions, clock steps and reopens, each checked
//! against a plain in-memory model (a vector of events and each stream's
//! versions). A second property loses, corrupts, truncates or swaps the
//! saved index before some reopens, and checks that the indexes rebuilt
//! from the log answer exactly as the model does. `WEIR_MODEL_CASES` sets
//! the number of cases (default 128).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{
    correlation_by_scan, open_sim, read_saved_index, remove_saved_index, write_saved_index,
};
use proptest::prelude::*;
use weir_log::ManualClock;
use weir_log::sim::SimStorage;
use weir_store::{
    AppendResult, AsOf, Direction, EmbeddedStore, EventStore, ExpectedVersion, Filter, NewEvent,
    RecordedEvent, Snapshot, StoreError, StreamMetadata, Target, category_of,
};

/// Streams in two categories, streams in none (`plain`, `-lead`), and one
/// whose id has two dashes (category `acc`).
const STREAMS: [&str; 8] = [
    "acc-1", "acc-2", "acc-3", "ord-1", "ord-2", "plain", "-lead", "acc-x-y",
];
/// Categories read (`plain` and `nope` have no streams).
const CATEGORIES: [&str; 4] = ["acc", "ord", "plain", "nope"];
/// Event types; the last is never written.
const TYPES: [&str; 4] = ["Opened", "Changed", "Closed", "Missing"];
/// Correlation ids read; the last is never written.
const CORRELATIONS: [&str; 4] = ["corr-a", "corr-b", "corr-c", "corr-none"];
/// Kinds of metadata an appended event has: none, an object without a
/// correlation, one of the correlations in the SDK's shape (three kinds),
/// and odd shapes that name the key but are not (or are less plainly) the
/// convention.
const METADATA_KINDS: u8 = 6;
const START_MS: i64 = 1_000_000;

/// An expected version, resolved against the model when the op runs.
#[derive(Debug, Clone)]
enum Exp {
    Any,
    NoStream,
    Exists,
    /// The stream's version as writers see it (`NoStream` if it has none).
    Current,
    /// Exact: the stream's last version (0 if none) plus this.
    Off(i8),
    /// Exact(u64::MAX): a version no stream can have.
    Max,
}

/// How an earlier append is sent again.
#[derive(Debug, Clone)]
enum Again {
    /// Unchanged: a client retrying what it did not hear back from.
    Same,
    /// Only its first event.
    Prefix,
    /// With one more, new, event.
    Extended,
    /// The same events to another stream.
    OtherStream(usize),
    /// The same events with another expected version.
    OtherExpected(Exp),
}

/// What happens to the saved index before a reopen.
#[derive(Debug, Clone)]
enum Fate {
    Keep,
    Delete,
    /// One byte flipped.
    Corrupt {
        at: f64,
        xor: u8,
    },
    /// Cut short.
    Truncate {
        at: f64,
    },
    Garbage(Vec<u8>),
    /// An older saved index (valid, covering less of the log).
    Stale {
        pick: usize,
    },
}

/// Where a read starts: a fraction of the range, or (at 1.1 and up) the
/// end (`u64::MAX`).
type From = f64;

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expected: Exp,
        /// Each event's type and its kind of metadata (below
        /// [`METADATA_KINDS`]).
        events: Vec<(usize, u8)>,
    },
    Again {
        pick: usize,
        how: Again,
    },
    ReadStream {
        stream: usize,
        from: From,
        backward: bool,
        max: usize,
    },
    ReadAll {
        from: From,
        backward: bool,
        max: usize,
    },
    ReadCategory {
        category: usize,
        from: From,
        backward: bool,
        max: usize,
    },
    ReadType {
        ty: usize,
        from: From,
        backward: bool,
        max: usize,
    },
    ReadCorrelation {
        which: usize,
        from: From,
        max: usize,
    },
    AsOf {
        stream: usize,
        at: f64,
        by_time: bool,
        max: usize,
    },
    Delete {
        stream: usize,
        expected: Exp,
    },
    Tombstone {
        stream: usize,
        expected: Exp,
    },
    SetMetadata {
        stream: usize,
        max_age_ms: Option<u64>,
        max_count: Option<u64>,
        truncate_before: Option<u64>,
    },
    AdvanceClock(i64),
    SaveSnapshot {
        stream: usize,
        back: u64,
        past: bool,
    },
    Load {
        stream: usize,
        max: usize,
    },
    Subscribe {
        /// 0: all, 1: a category, 2: a stream.
        target: u8,
        which: usize,
        /// Bit i keeps `TYPES[i]`; 0 keeps every type.
        types: u8,
        prefix: bool,
        from: From,
        page: usize,
    },
    /// Save the index now (as `weir serve` does every 10 s).
    Maintain,
    Reopen(Fate),
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        3 => Just(Exp::Any),
        2 => Just(Exp::NoStream),
        1 => Just(Exp::Exists),
        4 => Just(Exp::Current),
        2 => (-2i8..=2).prop_map(Exp::Off),
        1 => Just(Exp::Max),
    ]
}

fn from() -> impl Strategy<Value = From> {
    0.0f64..1.2
}

fn fate(lossy: bool) -> BoxedStrategy<Fate> {
    if !lossy {
        return Just(Fate::Keep).boxed();
    }
    prop_oneof![
        1 => Just(Fate::Keep),
        2 => Just(Fate::Delete),
        2 => (0.0f64..1.0, 1u8..=255).prop_map(|(at, xor)| Fate::Corrupt { at, xor }),
        1 => (0.0f64..1.0).prop_map(|at| Fate::Truncate { at }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Fate::Garbage),
        2 => any::<usize>().prop_map(|pick| Fate::Stale { pick }),
    ]
    .boxed()
}

fn op(lossy: bool) -> impl Strategy<Value = Op> {
    let s = 0..STREAMS.len();
    let max = prop_oneof![1 => 0usize..1, 6 => 1usize..6, 2 => Just(usize::MAX)];
    prop_oneof![
        12 => (s.clone(), exp(), prop::collection::vec((0..3usize, 0..METADATA_KINDS), 1..4))
            .prop_map(|(stream, expected, events)| Op::Append { stream, expected, events }),
        4 => (any::<usize>(), prop_oneof![
                4 => Just(Again::Same),
                1 => Just(Again::Prefix),
                1 => Just(Again::Extended),
                1 => (0..STREAMS.len()).prop_map(Again::OtherStream),
                1 => exp().prop_map(Again::OtherExpected),
            ]).prop_map(|(pick, how)| Op::Again { pick, how }),
        3 => (s.clone(), from(), any::<bool>(), max.clone())
            .prop_map(|(stream, from, backward, max)| Op::ReadStream { stream, from, backward, max }),
        2 => (from(), any::<bool>(), max.clone())
            .prop_map(|(from, backward, max)| Op::ReadAll { from, backward, max }),
        2 => (0..CATEGORIES.len(), from(), any::<bool>(), max.clone())
            .prop_map(|(category, from, backward, max)| Op::ReadCategory { category, from, backward, max }),
        2 => (0..TYPES.len(), from(), any::<bool>(), max.clone())
            .prop_map(|(ty, from, backward, max)| Op::ReadType { ty, from, backward, max }),
        2 => (0..CORRELATIONS.len(), from(), max.clone())
            .prop_map(|(which, from, max)| Op::ReadCorrelation { which, from, max }),
        1 => (s.clone(), 0.0f64..1.1, any::<bool>(), max.clone())
            .prop_map(|(stream, at, by_time, max)| Op::AsOf { stream, at, by_time, max }),
        2 => (s.clone(), exp()).prop_map(|(stream, expected)| Op::Delete { stream, expected }),
        1 => (s.clone(), exp()).prop_map(|(stream, expected)| Op::Tombstone { stream, expected }),
        2 => (
                s.clone(),
                prop::option::weighted(0.3, prop_oneof![Just(1_000u64), Just(3_000), Just(10_000)]),
                prop::option::weighted(0.3, 0u64..4),
                prop::option::weighted(0.3, 0u64..6),
            )
            .prop_map(|(stream, max_age_ms, max_count, truncate_before)| Op::SetMetadata {
                stream,
                max_age_ms,
                max_count,
                truncate_before,
            }),
        2 => (0i64..2_500).prop_map(Op::AdvanceClock),
        1 => (s.clone(), 0u64..3, prop::bool::weighted(0.2))
            .prop_map(|(stream, back, past)| Op::SaveSnapshot { stream, back, past }),
        1 => (s.clone(), max.clone()).prop_map(|(stream, max)| Op::Load { stream, max }),
        1 => (0u8..3, any::<usize>(), 0u8..16, prop::bool::weighted(0.2), from(), 1usize..5)
            .prop_map(|(target, which, types, prefix, from, page)| Op::Subscribe {
                target,
                which,
                types,
                prefix,
                from,
                page,
            }),
        1 => Just(Op::Maintain),
        1 => fate(lossy).prop_map(Op::Reopen),
    ]
}

/// An answer the store gives instead of a result, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fail {
    Wrong(Option<u64>),
    Conflict,
    NotFound,
    Deleted,
    InvalidMetadata,
}

fn fail_of(e: StoreError) -> Fail {
    match e {
        StoreError::WrongExpectedVersion { actual, .. } => Fail::Wrong(actual),
        StoreError::IdempotencyConflict { .. } => Fail::Conflict,
        StoreError::StreamNotFound { .. } => Fail::NotFound,
        StoreError::StreamDeleted { .. } => Fail::Deleted,
        StoreError::InvalidMetadata { .. } => Fail::InvalidMetadata,
        other => panic!("the store failed: {other}"),
    }
}

/// Whether the model's event belongs to correlation `c` (by the
/// convention, read independently of the store).
fn in_correlation(e: &RecordedEvent, c: &str) -> bool {
    correlation_by_scan(&e.metadata).as_deref() == Some(c)
}

fn got<T>(r: Result<T, StoreError>) -> Result<T, Fail> {
    r.map_err(fail_of)
}

#[derive(Debug, Clone, Default)]
struct MMeta {
    settings: StreamMetadata,
    deleted_at: Option<u64>,
    tombstoned: bool,
}

/// The model: the events in global order (a position is an index), each
/// stream's positions by version (metadata streams `$$…` included, as
/// they take positions too), stream settings and deletes, the newest
/// record of each event id, and each stream's newest snapshot.
#[derive(Debug, Default)]
struct Model {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<u64>>,
    meta: HashMap<String, MMeta>,
    recent: HashMap<String, (String, u64, u64)>,
    last_recorded_ms: i64,
    snapshots: HashMap<String, Snapshot>,
}

impl Model {
    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    fn meta(&self, stream: &str) -> MMeta {
        self.meta.get(stream).cloned().unwrap_or_default()
    }

    /// The stream's last version, deleted or not.
    fn last(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|l| (l.len() as u64).checked_sub(1))
    }

    /// The version writers see: none after a soft delete until written again.
    fn effective(&self, stream: &str) -> Option<u64> {
        let last = self.last(stream);
        match self.meta(stream).deleted_at {
            Some(d) if Some(d) == last => None,
            _ => last,
        }
    }

    fn resolve(&self, stream: &str, e: &Exp) -> ExpectedVersion {
        match e {
            Exp::Any => ExpectedVersion::Any,
            Exp::NoStream => ExpectedVersion::NoStream,
            Exp::Exists => ExpectedVersion::Exists,
            Exp::Current => self
                .effective(stream)
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            Exp::Off(d) => {
                let base = self.last(stream).unwrap_or(0) as i64;
                ExpectedVersion::Exact((base + i64::from(*d)).max(0) as u64)
            }
            Exp::Max => ExpectedVersion::Exact(u64::MAX),
        }
    }

    fn check_expected(&self, stream: &str, expected: ExpectedVersion) -> Result<(), Fail> {
        let current = self.effective(stream);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        };
        if ok {
            Ok(())
        } else {
            Err(Fail::Wrong(current))
        }
    }

    fn first_visible(m: &MMeta, last: u64) -> u64 {
        let tb = m.settings.truncate_before.unwrap_or(0);
        m.settings
            .max_count
            .map_or(tb, |n| tb.max((last + 1).saturating_sub(n)))
    }

    fn young_enough(m: &MMeta, e: &RecordedEvent, now: i64) -> bool {
        m.settings
            .max_age_ms
            .is_none_or(|age| e.recorded_ms >= now - age as i64)
    }

    /// Whether reads of the global order, categories and types show `e`.
    fn shows(&self, e: &RecordedEvent, now: i64) -> bool {
        if e.stream.starts_with('$') {
            return false;
        }
        let m = self.meta(&e.stream);
        let last = self.last(&e.stream).expect("the event's stream has events");
        !m.tombstoned
            && e.version >= Self::first_visible(&m, last)
            && Self::young_enough(&m, e, now)
    }

    /// Appends events (the store's own or a client's) after the stream's
    /// last version.
    fn write(&mut self, stream: &str, events: &[NewEvent], now: i64) -> AppendResult {
        let first_version = self.last(stream).map_or(0, |v| v + 1);
        let first_position = self.head();
        let recorded_ms = now.max(self.last_recorded_ms);
        self.last_recorded_ms = recorded_ms;
        for (i, e) in events.iter().enumerate() {
            let (version, position) = (first_version + i as u64, first_position + i as u64);
            self.events.push(RecordedEvent {
                stream: stream.to_owned(),
                version,
                position,
                id: e.id.clone(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                content_type: e.content_type.clone(),
                metadata: e.metadata.clone(),
                recorded_ms,
                trace: e.trace.clone(),
            });
            self.streams
                .entry(stream.to_owned())
                .or_default()
                .push(position);
            if !stream.starts_with('$') {
                self.recent
                    .insert(e.id.clone(), (stream.to_owned(), version, position));
            }
        }
        let n = events.len() as u64;
        AppendResult {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
        }
    }

    /// One event of the stream's metadata stream (its content is the
    /// store's business; reads never show it).
    fn write_system(&mut self, stream: &str, event_type: &str, now: i64) {
        let meta_stream = format!("$${stream}");
        let version = self.last(&meta_stream).map_or(0, |v| v + 1);
        let event = NewEvent {
            id: format!("{meta_stream}@{version}"),
            event_type: event_type.to_owned(),
            data: Vec::new(),
            content_type: "application/json".to_owned(),
            metadata: Vec::new(),
            trace: None,
        };
        self.write(&meta_stream, &[event], now);
    }

    /// Whether an append repeats an earlier one, as the design document
    /// states it: for an exact version or `NoStream`, the ids at the
    /// versions the first attempt took; for `Any` and `Exists`, where each
    /// id was last recorded.
    fn retried(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, Fail> {
        let found: Vec<Option<(u64, u64)>> = match expected {
            ExpectedVersion::Exact(_) | ExpectedVersion::NoStream => {
                let start = match expected {
                    // No stream reaches a version past u64::MAX.
                    ExpectedVersion::Exact(v) => match v.checked_add(1) {
                        Some(start) => start,
                        None => return Ok(None),
                    },
                    _ => self.meta(stream).deleted_at.map_or(0, |d| d + 1),
                };
                let list = self.streams.get(stream).map_or(&[][..], Vec::as_slice);
                if list.len() as u64 <= start {
                    return Ok(None);
                }
                events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let version = start + i as u64;
                        // The event at that version is the first attempt's
                        // if it has the id, whatever was recorded under the
                        // same id elsewhere since.
                        list.get(version as usize)
                            .filter(|&&p| self.events[p as usize].id == e.id)
                            .map(|&p| (version, p))
                    })
                    .collect()
            }
            ExpectedVersion::Any | ExpectedVersion::Exists => events
                .iter()
                .map(|e| match self.recent.get(&e.id) {
                    Some((s, v, p)) if s == stream => Some((*v, *p)),
                    Some(_) => Some((u64::MAX, u64::MAX)),
                    None => None,
                })
                .collect(),
        };
        let all: Vec<(u64, u64)> = found.iter().flatten().copied().collect();
        if all.is_empty() {
            return Ok(None);
        }
        let consecutive = all
            .windows(2)
            .all(|w| w[0].0.checked_add(1) == Some(w[1].0) && w[1].1 > w[0].1);
        if all.len() < events.len() || !consecutive || all.iter().any(|f| f.0 == u64::MAX) {
            return Err(Fail::Conflict);
        }
        Ok(Some(AppendResult {
            first_version: all[0].0,
            last_version: all[all.len() - 1].0,
            first_position: all[0].1,
            last_position: all[all.len() - 1].1,
        }))
    }

    fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        now: i64,
    ) -> Result<AppendResult, Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        if let Some(done) = self.retried(stream, expected, events)? {
            return Ok(done);
        }
        self.check_expected(stream, expected)?;
        Ok(self.write(stream, events, now))
    }

    fn delete(&mut self, stream: &str, expected: ExpectedVersion, now: i64) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        self.check_expected(stream, expected)?;
        let last = self.effective(stream).ok_or(Fail::NotFound)?;
        let m = self.meta.entry(stream.to_owned()).or_default();
        m.settings.truncate_before = Some(last + 1);
        m.deleted_at = Some(last);
        self.write_system(stream, "$metadata", now);
        Ok(())
    }

    fn tombstone(&mut self, stream: &str, expected: ExpectedVersion, now: i64) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        self.check_expected(stream, expected)?;
        self.meta.entry(stream.to_owned()).or_default().tombstoned = true;
        self.write_system(stream, "$tombstone", now);
        Ok(())
    }

    fn set_metadata(
        &mut self,
        stream: &str,
        settings: &StreamMetadata,
        now: i64,
    ) -> Result<(), Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        if settings.max_count == Some(0) {
            return Err(Fail::InvalidMetadata);
        }
        let m = self.meta.entry(stream.to_owned()).or_default();
        m.settings = settings.clone();
        // New settings never bring back what a soft delete removed.
        if let Some(d) = m.deleted_at {
            let tb = m.settings.truncate_before.map_or(d + 1, |t| t.max(d + 1));
            m.settings.truncate_before = Some(tb);
        }
        self.write_system(stream, "$metadata", now);
        Ok(())
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, Fail> {
        if self.meta(stream).tombstoned {
            return Err(Fail::Deleted);
        }
        Ok(self.effective(stream))
    }

    fn stream_metadata(&self, stream: &str) -> Result<StreamMetadata, Fail> {
        let m = self.meta(stream);
        if m.tombstoned {
            return Err(Fail::Deleted);
        }
        Ok(m.settings)
    }

    /// A stream's events readers may see (settings, deletes and age
    /// applied), oldest first.
    fn visible_stream(&self, stream: &str, now: i64) -> Result<Vec<&RecordedEvent>, Fail> {
        let m = self.meta(stream);
        if m.tombstoned {
            return Err(Fail::Deleted);
        }
        let last = self.last(stream).ok_or(Fail::NotFound)?;
        let first = Self::first_visible(&m, last);
        if first > last {
            return Err(Fail::NotFound);
        }
        Ok(self.streams[stream][first as usize..]
            .iter()
            .map(|&p| &self.events[p as usize])
            .filter(|e| Self::young_enough(&m, e, now))
            .collect())
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
        now: i64,
    ) -> Result<Vec<RecordedEvent>, Fail> {
        let visible = self.visible_stream(stream, now)?;
        Ok(match direction {
            Direction::Forward => visible
                .into_iter()
                .filter(|e| e.version >= from)
                .take(max)
                .cloned()
                .collect(),
            Direction::Backward => visible
                .into_iter()
                .rev()
                .filter(|e| e.version <= from)
                .take(max)
                .cloned()
                .collect(),
        })
    }

    /// The visible events `keep` selects, in global order from `from`.
    fn global(
        &self,
        keep: impl Fn(&RecordedEvent) -> bool,
        from: u64,
        direction: Direction,
        max: usize,
        now: i64,
    ) -> Vec<RecordedEvent> {
        let selected = |e: &&RecordedEvent| self.shows(e, now) && keep(e);
        match direction {
            Direction::Forward => self
                .events
                .iter()
                .filter(|e| e.position >= from)
                .filter(selected)
                .take(max)
                .cloned()
                .collect(),
            Direction::Backward => self
                .events
                .iter()
                .rev()
                .filter(|e| e.position <= from)
                .filter(selected)
                .take(max)
                .cloned()
                .collect(),
        }
    }

    fn save_snapshot(
        &mut self,
        stream: &str,
        version: u64,
        data: Vec<u8>,
        now: i64,
    ) -> Result<(), Fail> {
        let current = self.stream_version(stream)?;
        if current.is_none_or(|c| version > c) {
            return Err(Fail::Wrong(current));
        }
        let newer = self
            .snapshots
            .get(stream)
            .is_none_or(|s| version >= s.version);
        if newer {
            let snapshot = Snapshot {
                stream: stream.to_owned(),
                version,
                snapshot_type: "State".to_owned(),
                data,
                recorded_ms: now,
            };
            self.snapshots.insert(stream.to_owned(), snapshot);
        }
        Ok(())
    }

    /// What loading an aggregate returns: the newest snapshot, unless the
    /// versions it stands for are hidden, and the events after it.
    fn load(
        &self,
        stream: &str,
        max: usize,
        now: i64,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), Fail> {
        let read = |from| match self.read_stream(stream, from, Direction::Forward, max, now) {
            Err(Fail::NotFound) => Ok(Vec::new()),
            other => other,
        };
        let found = self.snapshots.get(stream).cloned();
        let from = found.as_ref().map_or(0, |s| s.version + 1);
        let events = read(from)?;
        let first_visible = match self.read_stream(stream, 0, Direction::Forward, 1, now) {
            Ok(first) => first.first().map(|e| e.version),
            Err(Fail::NotFound) => None,
            Err(e) => return Err(e),
        };
        let snapshot = found.filter(|s| first_visible.is_some_and(|v| v <= s.version + 1));
        if snapshot.is_none() && from > 0 {
            return Ok((None, read(0)?));
        }
        Ok((snapshot, events))
    }
}

/// A point in `0..=end` (or past it), from a fraction.
fn point(end: u64, from: From) -> u64 {
    if from >= 1.1 {
        u64::MAX
    } else {
        ((end + 2) as f64 * from) as u64
    }
}

fn direction(backward: bool) -> Direction {
    if backward {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

struct Run {
    disk: SimStorage,
    clock: ManualClock,
    /// `None` only while it is being reopened.
    store: Option<Arc<EmbeddedStore>>,
    model: Model,
    /// Appends sent so far (stream, expected version, events), for retries.
    sent: Vec<(String, ExpectedVersion, Vec<NewEvent>)>,
    next_id: u64,
    /// Saved indexes seen at earlier reopens, for stale ones.
    saved: Vec<Vec<u8>>,
}

impl Run {
    fn store(&self) -> &Arc<EmbeddedStore> {
        self.store.as_ref().expect("the store is open")
    }

    fn now(&self) -> i64 {
        weir_log::Clock::now_ms(&self.clock)
    }

    fn new_event(&mut self, ty: usize, metadata: u8) -> NewEvent {
        self.next_id += 1;
        let n = self.next_id;
        NewEvent {
            id: format!("e{n}"),
            event_type: TYPES[ty].to_owned(),
            data: format!("{{\"n\":{n}}}").into_bytes(),
            content_type: if ty == 2 {
                String::new()
            } else {
                "application/json".to_owned()
            },
            metadata: match metadata {
                0 => String::new(),
                1 => format!("{{\"by\":{n}}}"),
                2..=4 => format!(
                    r#"{{"source":"/model","dataversion":1,"correlationid":"{}","causationid":"e{}"}}"#,
                    CORRELATIONS[usize::from(metadata - 2)],
                    n - 1
                ),
                _ => match n % 5 {
                    0 => r#"{"correlationid":7}"#.to_owned(),
                    1 => r#"["correlationid","corr-a"]"#.to_owned(),
                    2 => r#"{"correlationid":"corr-a","correlationid":"corr-b"}"#.to_owned(),
                    3 => r#"{"x":{"correlationid":"corr-a"}}"#.to_owned(),
                    // An escape in the value: indexed as `corr-b`.
                    _ => r#" {"correlationid" : "corr-\u0062"}"#.to_owned(),
                },
            }
            .into_bytes(),
            // Every third event in a trace (every sixth with a state too):
            // the store keeps it as the model does.
            trace: n.is_multiple_of(3).then(|| {
                let state = n.is_multiple_of(2).then_some("weir=model");
                weir_store::TraceContext::parse(&format!("00-{n:032x}-{n:016x}-01"), state)
                    .expect("a valid traceparent")
            }),
        }
    }

    fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<(), TestCaseError> {
        let now = self.now();
        let want = self.model.append(stream, expected, &events, now);
        let head = self.store().head_position();
        let have = got(self.store().append(stream, expected, &events));
        prop_assert_eq!(
            &have,
            &want,
            "append to {} expecting {} of {:?}",
            stream,
            expected,
            events.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
        // A retry or a refusal writes nothing.
        let written = have.as_ref().is_ok_and(|r| r.first_position >= head);
        prop_assert_eq!(self.store().head_position(), self.model.head());
        prop_assert_eq!(self.store().head_position() > head, written);
        self.sent.push((stream.to_owned(), expected, events));
        Ok(())
    }

    fn reopen(&mut self, fate: &Fate) -> Result<(), TestCaseError> {
        let head = self.model.head();
        // The only holder: dropping it saves the index and closes the
        // data directory.
        drop(self.store.take());
        let current = read_saved_index(&self.disk);
        if let Some(bytes) = &current {
            prop_assert_eq!(
                covered(bytes),
                head,
                "the index saved at close covers the log"
            );
            self.saved.push(bytes.clone());
        }
        // Where the reopened store's saved index should have left off.
        let expected_saved = match (fate, &current) {
            (_, None) => None,
            (Fate::Keep, Some(_)) => Some(head),
            (Fate::Delete, Some(_)) => {
                remove_saved_index(&self.disk);
                None
            }
            (Fate::Corrupt { at, xor }, Some(bytes)) => {
                let mut bytes = bytes.clone();
                let i = (bytes.len() as f64 * at) as usize;
                bytes[i] ^= xor;
                write_saved_index(&self.disk, &bytes);
                None
            }
            (Fate::Truncate { at }, Some(bytes)) => {
                write_saved_index(&self.disk, &bytes[..(bytes.len() as f64 * at) as usize]);
                None
            }
            (Fate::Garbage(bytes), Some(_)) => {
                write_saved_index(&self.disk, bytes);
                None
            }
            (Fate::Stale { pick }, Some(_)) => {
                let bytes = self.saved[pick % self.saved.len()].clone();
                write_saved_index(&self.disk, &bytes);
                Some(covered(&bytes))
            }
        };
        self.store = Some(Arc::new(open_sim(&self.disk, &self.clock)));
        let recovery = self.store().recovery();
        prop_assert_eq!(
            recovery.saved_index_position,
            expected_saved,
            "after {:?}",
            fate
        );
        prop_assert_eq!(
            recovery.events_replayed,
            head - expected_saved.unwrap_or(0),
            "after {:?}",
            fate
        );
        self.check_everything()
    }

    /// Every read of every stream, category and type, and every stream's
    /// version, settings and aggregate, against the model.
    fn check_everything(&self) -> Result<(), TestCaseError> {
        let (store, model, now) = (self.store(), &self.model, self.now());
        let all = usize::MAX;
        prop_assert_eq!(store.head_position(), model.head());
        for d in [Direction::Forward, Direction::Backward] {
            let from = if d == Direction::Forward { 0 } else { u64::MAX };
            prop_assert_eq!(
                got(store.read_all(from, d, all)),
                Ok(model.global(|_| true, from, d, all, now)),
                "read_all {:?}",
                d
            );
            for s in STREAMS {
                prop_assert_eq!(
                    got(store.read_stream(s, from, d, all)),
                    model.read_stream(s, from, d, all, now),
                    "stream {} {:?}",
                    s,
                    d
                );
            }
            for c in CATEGORIES {
                prop_assert_eq!(
                    got(store.read_category(c, from, d, all)),
                    Ok(model.global(|e| category_of(&e.stream) == Some(c), from, d, all, now)),
                    "category {} {:?}",
                    c,
                    d
                );
            }
            for t in TYPES {
                prop_assert_eq!(
                    got(store.read_type(t, from, d, all)),
                    Ok(model.global(|e| e.event_type == t, from, d, all, now)),
                    "type {} {:?}",
                    t,
                    d
                );
            }
        }
        for c in CORRELATIONS {
            let forward = Direction::Forward;
            prop_assert_eq!(
                got(store.read_correlation(c, 0, all)),
                Ok(model.global(|e| in_correlation(e, c), 0, forward, all, now)),
                "correlation {}",
                c
            );
        }
        for s in STREAMS {
            prop_assert_eq!(
                got(store.stream_version(s)),
                model.stream_version(s),
                "version of {}",
                s
            );
            prop_assert_eq!(
                got(store.stream_metadata(s)),
                model.stream_metadata(s),
                "metadata of {}",
                s
            );
            prop_assert_eq!(
                got(store.load(s, all).map(|l| (l.snapshot, l.events))),
                model.load(s, all, now),
                "load {}",
                s
            );
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now();
        match op {
            Op::Append {
                stream,
                expected,
                events,
            } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                let events = events
                    .iter()
                    .map(|&(ty, meta)| self.new_event(ty, meta))
                    .collect();
                self.append(stream, expected, events)?;
            }
            Op::Again { pick, how } => {
                if self.sent.is_empty() {
                    return Ok(());
                }
                let (mut stream, mut expected, mut events) =
                    self.sent[pick % self.sent.len()].clone();
                match how {
                    Again::Same => {}
                    Again::Prefix => events.truncate(1),
                    Again::Extended => events.push(self.new_event(0, 2)),
                    Again::OtherStream(s) => stream = STREAMS[*s].to_owned(),
                    Again::OtherExpected(e) => expected = self.model.resolve(&stream, e),
                }
                self.append(&stream, expected, events)?;
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                max,
            } => {
                let stream = STREAMS[*stream];
                let end = self.model.last(stream).map_or(0, |v| v + 1);
                let (from, d) = (point(end, *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_stream(stream, from, d, *max)),
                    self.model.read_stream(stream, from, d, *max, now),
                    "read_stream {} from {} {:?} max {}",
                    stream,
                    from,
                    d,
                    max
                );
            }
            Op::ReadAll {
                from,
                backward,
                max,
            } => {
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_all(from, d, *max)),
                    Ok(self.model.global(|_| true, from, d, *max, now)),
                    "read_all from {} {:?} max {}",
                    from,
                    d,
                    max
                );
            }
            Op::ReadCategory {
                category,
                from,
                backward,
                max,
            } => {
                let c = CATEGORIES[*category];
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_category(c, from, d, *max)),
                    Ok(self.model.global(
                        |e| category_of(&e.stream) == Some(c),
                        from,
                        d,
                        *max,
                        now
                    )),
                    "read_category {} from {} {:?} max {}",
                    c,
                    from,
                    d,
                    max
                );
            }
            Op::ReadType {
                ty,
                from,
                backward,
                max,
            } => {
                let t = TYPES[*ty];
                let (from, d) = (point(self.model.head(), *from), direction(*backward));
                prop_assert_eq!(
                    got(self.store().read_type(t, from, d, *max)),
                    Ok(self.model.global(|e| e.event_type == t, from, d, *max, now)),
                    "read_type {} from {} {:?} max {}",
                    t,
                    from,
                    d,
                    max
                );
            }
            Op::ReadCorrelation { which, from, max } => {
                let c = CORRELATIONS[*which];
                let from = point(self.model.head(), *from);
                let forward = Direction::Forward;
                prop_assert_eq!(
                    got(self.store().read_correlation(c, from, *max)),
                    Ok(self
                        .model
                        .global(|e| in_correlation(e, c), from, forward, *max, now)),
                    "read_correlation {} from {} max {}",
                    c,
                    from,
                    max
                );
            }
            Op::AsOf {
                stream,
                at,
                by_time,
                max,
            } => {
                let stream = STREAMS[*stream];
                let as_of = if *by_time {
                    AsOf::Time(START_MS + ((now - START_MS + 1) as f64 * at) as i64)
                } else {
                    AsOf::Position(point(self.model.head(), *at))
                };
                let want = self.model.visible_stream(stream, now).map(|events| {
                    events
                        .into_iter()
                        .take_while(|e| match as_of {
                            AsOf::Position(p) => e.position <= p,
                            AsOf::Time(t) => e.recorded_ms <= t,
                        })
                        .take(*max)
                        .cloned()
                        .collect::<Vec<_>>()
                });
                prop_assert_eq!(
                    got(self.store().read_stream_as_of(stream, as_of, *max)),
                    want,
                    "{} as of {:?} max {}",
                    stream,
                    as_of,
                    max
                );
            }
            Op::Delete { stream, expected } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                prop_assert_eq!(
                    got(self.store().delete_stream(stream, expected)),
                    self.model.delete(stream, expected, now),
                    "delete {} expecting {}",
                    stream,
                    expected
                );
            }
            Op::Tombstone { stream, expected } => {
                let stream = STREAMS[*stream];
                let expected = self.model.resolve(stream, expected);
                prop_assert_eq!(
                    got(self.store().tombstone_stream(stream, expected)),
                    self.model.tombstone(stream, expected, now),
                    "tombstone {} expecting {}",
                    stream,
                    expected
                );
            }
            Op::SetMetadata {
                stream,
                max_age_ms,
                max_count,
                truncate_before,
            } => {
                let stream = STREAMS[*stream];
                let settings = StreamMetadata {
                    max_age_ms: *max_age_ms,
                    max_count: *max_count,
                    truncate_before: *truncate_before,
                };
                prop_assert_eq!(
                    got(self.store().set_stream_metadata(stream, &settings)),
                    self.model.set_metadata(stream, &settings, now),
                    "set metadata of {} to {:?}",
                    stream,
                    settings
                );
            }
            Op::AdvanceClock(ms) => self.clock.advance(*ms),
            Op::SaveSnapshot { stream, back, past } => {
                let stream = STREAMS[*stream];
                let current = self.model.effective(stream).unwrap_or(0);
                let version = if *past {
                    current + 1
                } else {
                    current.saturating_sub(*back)
                };
                let data = format!("state of {stream} at {version}").into_bytes();
                prop_assert_eq!(
                    got(self
                        .store()
                        .save_snapshot(stream, version, "State", data.clone())),
                    self.model.save_snapshot(stream, version, data, now),
                    "snapshot of {} at {}",
                    stream,
                    version
                );
            }
            Op::Load { stream, max } => {
                let stream = STREAMS[*stream];
                prop_assert_eq!(
                    got(self
                        .store()
                        .load(stream, *max)
                        .map(|l| (l.snapshot, l.events))),
                    self.model.load(stream, *max, now),
                    "load {} max {}",
                    stream,
                    max
                );
            }
            Op::Subscribe {
                target,
                which,
                types,
                prefix,
                from,
                page,
            } => self.subscribe(*target, *which, *types, *prefix, *from, *page)?,
            Op::Maintain => {
                self.store().maintain(true).expect("save the index");
                let saved = read_saved_index(&self.disk).map(|b| covered(&b));
                let head = self.model.head();
                prop_assert_eq!(saved, (head > 0).then_some(head));
            }
            Op::Reopen(fate) => self.reopen(fate)?,
        }
        Ok(())
    }

    /// A subscription polled until it has nothing more delivers exactly
    /// the visible events its target and filter select, in order.
    fn subscribe(
        &self,
        target: u8,
        which: usize,
        types: u8,
        prefix: bool,
        from: From,
        page: usize,
    ) -> Result<(), TestCaseError> {
        let now = self.now();
        let filter = Filter {
            event_types: (0..TYPES.len())
                .filter(|i| types & (1 << i) != 0)
                .map(|i| TYPES[i].to_owned())
                .collect(),
            stream_prefix: prefix.then(|| "acc-".to_owned()),
        };
        let keeps = |e: &RecordedEvent| {
            (filter.event_types.is_empty() || filter.event_types.contains(&e.event_type))
                && filter
                    .stream_prefix
                    .as_ref()
                    .is_none_or(|p| e.stream.starts_with(p.as_str()))
        };
        let (target, want) = match target {
            0 => {
                let from = point(self.model.head(), from);
                let want = self
                    .model
                    .global(keeps, from, Direction::Forward, usize::MAX, now);
                (Target::All, (from, Ok(want)))
            }
            1 => {
                let c = CATEGORIES[which % CATEGORIES.len()];
                let from = point(self.model.head(), from);
                let want = self.model.global(
                    |e| category_of(&e.stream) == Some(c) && keeps(e),
                    from,
                    Direction::Forward,
                    usize::MAX,
                    now,
                );
                (Target::Category(c.to_owned()), (from, Ok(want)))
            }
            _ => {
                let s = STREAMS[which % STREAMS.len()];
                let end = self.model.last(s).map_or(0, |v| v + 1);
                let from = point(end, from);
                let want =
                    match self
                        .model
                        .read_stream(s, from, Direction::Forward, usize::MAX, now)
                    {
                        Ok(events) => Ok(events.into_iter().filter(|e| keeps(e)).collect()),
                        Err(Fail::NotFound) => Ok(Vec::new()),
                        Err(e) => Err(e),
                    };
                (Target::Stream(s.to_owned()), (from, want))
            }
        };
        let (from, want) = want;
        let mut sub = self.store().subscribe(target.clone(), filter.clone(), from);
        let mut delivered = Vec::new();
        let have = loop {
            match sub.poll(page) {
                Ok(events) if events.is_empty() => break Ok(delivered),
                Ok(events) => {
                    prop_assert!(events.len() <= page, "a poll returned more than asked");
                    delivered.extend(events);
                    prop_assert!(delivered.len() <= self.model.events.len(), "endless");
                }
                Err(e) => break Err(fail_of(e)),
            }
        };
        prop_assert_eq!(
            have,
            want,
            "subscription to {:?} from {} with {:?}",
            target,
            from,
            filter
        );
        Ok(())
    }
}

/// The position a saved index covers (after magic, version and CRC).
fn covered(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[10..18].try_into().unwrap())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let disk = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let store = Arc::new(open_sim(&disk, &clock));
    let mut run = Run {
        disk,
        clock,
        store: Some(store),
        model: Model {
            last_recorded_ms: START_MS,
            ..Model::default()
        },
        sent: Vec::new(),
        next_id: 0,
        saved: Vec::new(),
    };
    for op in ops {
        run.step(op)?;
    }
    run.check_everything()?;
    run.reopen(&Fate::Keep)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    /// Appends, reads, deletes, metadata, snapshots, subscriptions and
    /// clean reopens (which load the saved index) agree with the model.
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(false), 1..100)) {
        run(&ops)?;
    }

    /// The same, with the saved index lost, corrupted, cut short, replaced
    /// by garbage or by an older one before reopens: the indexes rebuilt
    /// from the log (or an old index and the log after it) still agree.
    #[test]
    fn rebuilt_indexes_match_model(ops in prop::collection::vec(op(true), 1..100)) {
        run(&ops)?;
    }
}
