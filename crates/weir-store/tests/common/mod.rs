//! Helpers shared by the store's model, crash and kill -9 tests: opening a
//! store on a simulated or real disk, reading the events log raw (the
//! truth the indexes must agree with), and dumping every read the indexes
//! answer so two stores can be compared.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::sim::SimStorage;
use weir_log::{DataDir, DirConfig, ManualClock, Storage};
use weir_store::{
    Direction, EVENTS_TOPIC, EmbeddedStore, EventStore, RecordedEvent, SNAPSHOTS_TOPIC,
    StoreConfig, StoreError, category_of,
};

/// Where the simulated disk keeps the data directory.
pub const ROOT: &str = "/data";
/// The saved index's file name in the data directory (see
/// `docs/design/event-store.md`).
pub const SAVED_INDEX: &str = ".weir-events-index";

/// A store on the simulated disk, its events log rolling every 4 KiB (the
/// smallest segment), so a few dozen events span several segments.
pub fn open_sim(disk: &SimStorage, clock: &ManualClock) -> EmbeddedStore {
    let dir = DataDir::open_with(
        Arc::new(disk.clone()),
        Arc::new(clock.clone()),
        ROOT,
        DirConfig::default(),
    )
    .expect("open the data directory");
    let broker = Arc::new(Broker::open(dir, BrokerConfig::default()).expect("open the broker"));
    // The simulated disk materializes preallocated space in memory, and a
    // log preallocates up to 64 MiB of its segment: the snapshots topic
    // (which the store creates with the broker's 1 GiB segments) gets
    // small segments here, or every case would clear 64 MiB.
    broker
        .ensure_internal_topic(
            SNAPSHOTS_TOPIC,
            1,
            &[
                ("retention.ms", "-1"),
                ("segment.bytes", "65536"),
                ("max.message.bytes", "65536"),
            ],
        )
        .expect("create the snapshots topic");
    let config = StoreConfig {
        segment_bytes: weir_log::SEGMENT_BYTES_MIN,
        clock: Some(Arc::new(clock.clone())),
    };
    EmbeddedStore::open(broker, config).expect("open the store")
}

/// A store in a real directory.
pub fn open_os(dir: &Path) -> EmbeddedStore {
    let data = DataDir::open(dir, DirConfig::default()).expect("open the data directory");
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).expect("open the broker"));
    let config = StoreConfig {
        segment_bytes: 64 * 1024,
        ..StoreConfig::default()
    };
    EmbeddedStore::open(broker, config).expect("open the store")
}

fn saved_index_path() -> std::path::PathBuf {
    Path::new(ROOT).join(SAVED_INDEX)
}

/// The saved index's bytes on the simulated disk, if there is one.
pub fn read_saved_index(disk: &SimStorage) -> Option<Vec<u8>> {
    let path = saved_index_path();
    if !disk.exists(&path) {
        return None;
    }
    let file = disk.open(&path, false).expect("open the saved index");
    let mut bytes = vec![0; file.len().expect("stat") as usize];
    let n = file.read_at(&mut bytes, 0).expect("read the saved index");
    bytes.truncate(n);
    Some(bytes)
}

/// Replaces the saved index on the simulated disk (durably).
pub fn write_saved_index(disk: &SimStorage, bytes: &[u8]) {
    let path = saved_index_path();
    let file = disk.open(&path, true).expect("create the saved index");
    file.set_len(0).unwrap();
    file.write_all_at(bytes, 0).unwrap();
    file.sync_data().unwrap();
    disk.sync_dir(Path::new(ROOT)).unwrap();
}

/// Removes the saved index from the simulated disk, if there is one.
pub fn remove_saved_index(disk: &SimStorage) {
    let path = saved_index_path();
    if disk.exists(&path) {
        disk.remove_file(&path).expect("remove the saved index");
        disk.sync_dir(Path::new(ROOT)).unwrap();
    }
}

/// One record of `__weir_events` as stored: what the log says, whatever
/// the indexes think.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub id: String,
    pub event_type: String,
    /// The correlation id the metadata names, read as the store's
    /// convention says (see [`correlation_by_scan`]), not by the store.
    pub correlation: Option<String>,
}

/// An event's correlation id as `docs/design/event-store.md` states the
/// convention, written independently of the store's byte search: the
/// top-level string `correlationid` of a JSON object, 1 to 256 bytes, the
/// key written plainly.
pub fn correlation_by_scan(metadata: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(metadata).ok()?;
    if !text.contains("\"correlationid\"") {
        return None;
    }
    // An object (a Map refuses arrays and scalars) without a repeated key
    // (serde's derive refuses one, where a Map keeps the last).
    let _: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    let strict: Strict = serde_json::from_str(text).ok()?;
    match strict.correlationid {
        Some(serde_json::Value::String(s)) if (1..=256).contains(&s.len()) => Some(s),
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct Strict {
    correlationid: Option<serde_json::Value>,
}

fn optional_header<'a>(r: &weir_log::batch::Record<'a>, name: &str) -> &'a [u8] {
    r.headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| *v)
        .unwrap_or_default()
}

fn header(r: &weir_log::batch::Record<'_>, name: &str) -> String {
    let value = r
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| *v)
        .unwrap_or_else(|| panic!("the record at {} has no {name}", r.offset));
    String::from_utf8(value.to_vec()).expect("UTF-8 header")
}

/// Every record of the events log, read from the log itself (not through
/// the store's indexes), with positions checked to be dense from 0.
pub fn raw_log(broker: &Broker) -> Vec<LogEvent> {
    let log = broker.partition(EVENTS_TOPIC, 0).expect("the events log");
    let mut out = Vec::new();
    let mut at = log.start_offset();
    loop {
        let read = log.read(at, 1 << 20).expect("read the events log");
        if read.bytes.is_empty() {
            break;
        }
        let batches = weir_log::batch::validate_all(&read.bytes).expect("stored batches are valid");
        for (_, range) in batches {
            for r in weir_log::batch::records(&read.bytes[range]).unwrap() {
                if r.offset < at {
                    continue;
                }
                out.push(LogEvent {
                    position: r.offset as u64,
                    stream: String::from_utf8(r.key.expect("a stream id").to_vec()).unwrap(),
                    version: header(&r, "ce_streamversion").parse().unwrap(),
                    id: header(&r, "ce_id"),
                    event_type: header(&r, "ce_type"),
                    correlation: correlation_by_scan(optional_header(&r, "ce_metadata")),
                });
            }
        }
        at = read.next_offset;
    }
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e.position, i as u64, "positions are dense from 0");
    }
    out
}

/// What a read returned, comparable: each event's full content, or the
/// error's text.
pub type Answer = Result<Vec<RecordedEvent>, String>;

fn answer(r: Result<Vec<RecordedEvent>, StoreError>) -> Answer {
    r.map_err(|e| e.to_string())
}

/// Every read the indexes answer, for every stream, category and type the
/// log holds: two stores over the same log must give equal dumps. Forward
/// reads cover every index list (backward reads page the same lists, and
/// the model test checks both directions).
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    pub head: u64,
    pub all: Answer,
    /// (stream, version, metadata, events).
    pub streams: Vec<(String, String, String, Answer)>,
    pub categories: Vec<(String, Answer)>,
    pub types: Vec<(String, Answer)>,
    /// Every correlation id the log's metadata names, read through the
    /// correlation index.
    pub correlations: Vec<(String, Answer)>,
}

/// Reads everything the store shows, using the raw log to name every
/// stream, category and type there is.
pub fn dump(store: &EmbeddedStore) -> Dump {
    let log = raw_log(store.broker());
    let max = usize::MAX;
    let streams: BTreeSet<&str> = log
        .iter()
        .map(|e| e.stream.strip_prefix("$$").unwrap_or(&e.stream))
        .collect();
    let categories: BTreeSet<&str> = streams.iter().filter_map(|s| category_of(s)).collect();
    let types: BTreeSet<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    let correlations: BTreeSet<&str> = log
        .iter()
        .filter_map(|e| e.correlation.as_deref())
        .collect();
    let all = answer(store.read_all(0, Direction::Forward, max));
    let correlations = correlations
        .iter()
        .map(|c| {
            let read = answer(store.read_correlation(c, 0, max));
            // The index against a scan: the visible events (read_all) whose
            // log record names this correlation.
            if let Ok(all) = &all {
                let scan: Vec<RecordedEvent> = all
                    .iter()
                    .filter(|e| log[e.position as usize].correlation.as_deref() == Some(*c))
                    .cloned()
                    .collect();
                assert_eq!(
                    read,
                    Ok(scan),
                    "correlation {c}: the index against a scan of the log"
                );
            }
            (c.to_string(), read)
        })
        .collect();
    Dump {
        head: store.head_position(),
        all,
        streams: streams
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    format!("{:?}", store.stream_version(s).map_err(|e| e.to_string())),
                    format!("{:?}", store.stream_metadata(s).map_err(|e| e.to_string())),
                    answer(store.read_stream(s, 0, Direction::Forward, max)),
                )
            })
            .collect(),
        categories: categories
            .iter()
            .map(|c| {
                let read = store.read_category(c, 0, Direction::Forward, max);
                (c.to_string(), answer(read))
            })
            .collect(),
        types: types
            .iter()
            .map(|t| {
                let read = store.read_type(t, 0, Direction::Forward, max);
                (t.to_string(), answer(read))
            })
            .collect(),
        correlations,
    }
}

/// Asserts two dumps are equal, naming the first part that differs (a
/// whole-dump diff of thousands of events is unreadable).
pub fn assert_same_dump(context: &str, recovered: &Dump, rebuilt: &Dump) {
    assert_eq!(recovered.head, rebuilt.head, "{context}: head");
    assert_eq!(recovered.all, rebuilt.all, "{context}: read_all");
    assert_eq!(
        recovered.streams.len(),
        rebuilt.streams.len(),
        "{context}: streams"
    );
    for (a, b) in recovered.streams.iter().zip(&rebuilt.streams) {
        assert_eq!(a, b, "{context}: stream {}", a.0);
    }
    for (a, b) in recovered.categories.iter().zip(&rebuilt.categories) {
        assert_eq!(a, b, "{context}: category {}", a.0);
    }
    for (a, b) in recovered.types.iter().zip(&rebuilt.types) {
        assert_eq!(a, b, "{context}: type {}", a.0);
    }
    for (a, b) in recovered.correlations.iter().zip(&rebuilt.correlations) {
        assert_eq!(a, b, "{context}: correlation {}", a.0);
    }
    assert_eq!(recovered, rebuilt, "{context}");
}
