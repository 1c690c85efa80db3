//! The correlation index through the store's public API: events that name
//! a `correlationid` in their metadata read back per correlation, across
//! streams, in global order, paged; hidden events stay hidden; the index
//! survives a clean reopen (saved index), a rebuild from the log, and a
//! saved index of the version before correlations existed.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{
    EmbeddedStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreConfig, StoreError,
};

/// The saved index's file, its version at bytes 4..6 (see
/// `saved_index.rs`).
const SAVED_INDEX: &str = ".weir-events-index";

fn open(dir: &std::path::Path) -> EmbeddedStore {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    EmbeddedStore::open(broker, StoreConfig::default()).unwrap()
}

/// An event in the SDK's metadata shape, or with none.
fn ev(id: &str, correlation: Option<&str>, causation: Option<&str>) -> NewEvent {
    let mut e = NewEvent::json(id, "T", br#"{}"#.to_vec());
    if let Some(c) = correlation {
        let cause = causation.map_or(String::new(), |c| format!(r#","causationid":"{c}""#));
        e.metadata =
            format!(r#"{{"source":"/test","dataversion":1,"correlationid":"{c}"{cause}}}"#)
                .into_bytes();
    }
    e
}

fn ids(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

/// Three streams, two correlations interleaved, events without one.
fn write_saga(store: &EmbeddedStore) {
    let any = ExpectedVersion::Any;
    store
        .append("order-1", any, &[ev("o1", Some("s-1"), None)])
        .unwrap();
    store
        .append("order-2", any, &[ev("o2", Some("s-2"), None)])
        .unwrap();
    store
        .append(
            "stock-9",
            any,
            &[ev("k1", Some("s-1"), Some("o1")), ev("plain", None, None)],
        )
        .unwrap();
    store
        .append("pay-1", any, &[ev("p1", Some("s-1"), Some("k1"))])
        .unwrap();
    store
        .append("pay-2", any, &[ev("p2", Some("s-2"), Some("o2"))])
        .unwrap();
}

#[test]
fn a_correlation_reads_across_streams_in_global_order_and_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    write_saga(&store);
    let s1 = store.read_correlation("s-1", 0, 100).unwrap();
    assert_eq!(ids(&s1), ["o1", "k1", "p1"]);
    assert!(s1.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(
        s1.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(),
        ["order-1", "stock-9", "pay-1"]
    );
    assert_eq!(
        ids(&store.read_correlation("s-2", 0, 100).unwrap()),
        ["o2", "p2"]
    );
    // Paging: `from` is a global position, inclusive.
    let first = store.read_correlation("s-1", 0, 2).unwrap();
    assert_eq!(ids(&first), ["o1", "k1"]);
    let rest = store
        .read_correlation("s-1", first[1].position + 1, 2)
        .unwrap();
    assert_eq!(ids(&rest), ["p1"]);
    assert!(
        store
            .read_correlation("s-1", rest[0].position + 1, 2)
            .unwrap()
            .is_empty()
    );
    // An id no event names is empty, not an error; an event without a
    // correlation is not indexed under its own id.
    assert!(store.read_correlation("nobody", 0, 100).unwrap().is_empty());
    assert!(store.read_correlation("plain", 0, 100).unwrap().is_empty());
    assert!(store.read_correlation("s-1", 0, 0).unwrap().is_empty());
}

#[test]
fn bad_ids_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for bad in [String::new(), "x".repeat(257)] {
        match store.read_correlation(&bad, 0, 10) {
            Err(e @ StoreError::InvalidCorrelationId { .. }) => {
                assert!(e.to_string().contains("1 to 256 bytes"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn events_of_deleted_streams_are_hidden_from_the_correlation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    write_saga(&store);
    store
        .delete_stream("stock-9", ExpectedVersion::Any)
        .unwrap();
    assert_eq!(
        ids(&store.read_correlation("s-1", 0, 100).unwrap()),
        ["o1", "p1"]
    );
    // With `max_count` 1 the page skips the hidden event and still fills.
    assert_eq!(ids(&store.read_correlation("s-1", 1, 1).unwrap()), ["p1"]);
}

#[test]
fn the_index_survives_reopens_rebuilds_and_an_old_saved_index() {
    let tmp = tempfile::tempdir().unwrap();
    let want = {
        let store = open(tmp.path());
        write_saga(&store);
        store.read_correlation("s-1", 0, 100).unwrap()
        // Dropping the store saves the index.
    };
    assert_eq!(ids(&want), ["o1", "k1", "p1"]);
    let path = tmp.path().join(SAVED_INDEX);

    // A clean reopen: the saved index covers everything.
    {
        let store = open(tmp.path());
        assert_eq!(store.recovery().events_replayed, 0);
        assert!(store.recovery().saved_index_position.is_some());
        assert_eq!(store.read_correlation("s-1", 0, 100).unwrap(), want);
        // Appends after the reopen land in the loaded index.
        store
            .append(
                "ship-1",
                ExpectedVersion::Any,
                &[ev("h1", Some("s-1"), Some("p1"))],
            )
            .unwrap();
    }
    let want = {
        let store = open(tmp.path());
        let got = store.read_correlation("s-1", 0, 100).unwrap();
        assert_eq!(ids(&got), ["o1", "k1", "p1", "h1"]);
        got
    };

    // No saved index: rebuilt from the log.
    std::fs::remove_file(&path).unwrap();
    {
        let store = open(tmp.path());
        assert_eq!(store.recovery().saved_index_position, None);
        assert_eq!(store.read_correlation("s-1", 0, 100).unwrap(), want);
    }

    // A saved index of version 1 (before correlations) is not loaded: its
    // lists would lack the correlations, so the store rebuilds them.
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"WEIX");
    assert_eq!(&bytes[4..6], &2u16.to_be_bytes(), "the current version");
    bytes[4..6].copy_from_slice(&1u16.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let store = open(tmp.path());
    assert_eq!(store.recovery().saved_index_position, None);
    assert_eq!(store.read_correlation("s-1", 0, 100).unwrap(), want);
}
