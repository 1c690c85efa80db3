//! Model-based tests of the event store: random sequences of appends (with
//! every kind of expected version, right and wrong, and retries of earlier
//! appends), reads of every kind, deletes, tombstones, stream metadata,
//! aggregate snapshots, subscriptions, clock steps and reopens, each checked
//! against a plain in-memory model (a vector of events and each stream's
//! versions). A second property loses, corrupts, truncates or swaps the
//! saved index before some reopens, and checks that the indexes rebuilt
//! from the log answer exactly as the model does. `WEIR_MODEL_CASES` sets
//! the number of cases (default 128).

#[path = "../common/mod.rs"]
mod common;
mod oracle;
mod runner;

use oracle::*;
use runner::*;

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
