//! Stream lifecycle: metadata (max_age, max_count, truncate_before), soft
//! delete (reads as absent, writable again with versions continuing) and
//! tombstone (gone for good), all enforced on reads and kept across a
//! reopen; and reads of a stream as of a past position or time.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig, ManualClock};
use weir_store::{
    AsOf, Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig, StoreError,
    StreamMetadata,
};

fn open(dir: &std::path::Path, clock: &ManualClock) -> EmbeddedStore {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    let config = StoreConfig {
        clock: Some(Arc::new(clock.clone())),
        ..StoreConfig::default()
    };
    EmbeddedStore::open(broker, config).unwrap()
}

fn ev(id: &str) -> NewEvent {
    NewEvent::json(id, "T", b"{}".to_vec())
}

fn versions(store: &EmbeddedStore, stream: &str) -> Result<Vec<u64>, StoreError> {
    Ok(store
        .read_stream(stream, 0, Direction::Forward, 1000)?
        .iter()
        .map(|e| e.version)
        .collect())
}

fn append_n(store: &EmbeddedStore, stream: &str, n: usize, tag: &str) {
    for i in 0..n {
        store
            .append(stream, ExpectedVersion::Any, &[ev(&format!("{tag}{i}"))])
            .unwrap();
    }
}

#[test]
fn metadata_limits_what_reads_return_and_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open(tmp.path(), &clock);
        append_n(&store, "a-1", 10, "a");
        store
            .set_stream_metadata(
                "a-1",
                &StreamMetadata {
                    max_count: Some(3),
                    ..StreamMetadata::default()
                },
            )
            .unwrap();
        assert_eq!(versions(&store, "a-1").unwrap(), [7, 8, 9]);
        let back: Vec<u64> = store
            .read_stream("a-1", u64::MAX, Direction::Backward, 100)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(back, [9, 8, 7]);
        // Category and global reads hide them too, and never show the
        // metadata stream's own events.
        let all = store.read_all(0, Direction::Forward, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.version).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(
            store
                .read_category("a", 0, Direction::Forward, 100)
                .unwrap()
                .len(),
            3
        );
        store
            .set_stream_metadata(
                "a-1",
                &StreamMetadata {
                    truncate_before: Some(8),
                    ..StreamMetadata::default()
                },
            )
            .unwrap();
        assert_eq!(versions(&store, "a-1").unwrap(), [8, 9]);
        // The version for writers is unchanged.
        assert_eq!(store.stream_version("a-1").unwrap(), Some(9));
        assert!(matches!(
            store.set_stream_metadata(
                "a-1",
                &StreamMetadata {
                    max_count: Some(0),
                    ..StreamMetadata::default()
                }
            ),
            Err(StoreError::InvalidMetadata { .. })
        ));
    }
    let store = open(tmp.path(), &clock);
    assert_eq!(versions(&store, "a-1").unwrap(), [8, 9]);
    assert_eq!(
        store.stream_metadata("a-1").unwrap().truncate_before,
        Some(8)
    );
}

#[test]
fn max_age_hides_old_events() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = open(tmp.path(), &clock);
    append_n(&store, "b-1", 2, "old");
    clock.advance(60_000);
    append_n(&store, "b-1", 2, "new");
    store
        .set_stream_metadata(
            "b-1",
            &StreamMetadata {
                max_age_ms: Some(30_000),
                ..StreamMetadata::default()
            },
        )
        .unwrap();
    assert_eq!(versions(&store, "b-1").unwrap(), [2, 3]);
    assert_eq!(
        store
            .read_type("T", 0, Direction::Forward, 100)
            .unwrap()
            .len(),
        2
    );
    clock.advance(60_000);
    assert!(versions(&store, "b-1").unwrap().is_empty());
}

#[test]
fn a_soft_deleted_stream_reads_as_absent_and_can_be_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open(tmp.path(), &clock);
        append_n(&store, "c-1", 3, "c");
        assert!(matches!(
            store.delete_stream("c-1", ExpectedVersion::Exact(1)),
            Err(StoreError::WrongExpectedVersion {
                actual: Some(2),
                ..
            })
        ));
        store
            .delete_stream("c-1", ExpectedVersion::Exact(2))
            .unwrap();
        assert!(matches!(
            versions(&store, "c-1"),
            Err(StoreError::StreamNotFound { .. })
        ));
        assert_eq!(store.stream_version("c-1").unwrap(), None);
        assert!(
            store
                .read_all(0, Direction::Forward, 100)
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            store.delete_stream("c-1", ExpectedVersion::Any),
            Err(StoreError::StreamNotFound { .. })
        ));
    }
    let store = open(tmp.path(), &clock);
    assert!(matches!(
        versions(&store, "c-1"),
        Err(StoreError::StreamNotFound { .. })
    ));
    let r = store
        .append("c-1", ExpectedVersion::NoStream, &[ev("again")])
        .unwrap();
    assert_eq!(r.first_version, 3, "versions continue after a soft delete");
    assert_eq!(versions(&store, "c-1").unwrap(), [3]);
    // A retry of that append is still idempotent.
    assert_eq!(
        store
            .append("c-1", ExpectedVersion::NoStream, &[ev("again")])
            .unwrap(),
        r
    );
}

#[test]
fn a_tombstoned_stream_is_gone_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open(tmp.path(), &clock);
        append_n(&store, "d-1", 2, "d");
        store.tombstone_stream("d-1", ExpectedVersion::Any).unwrap();
        for result in [
            store
                .append("d-1", ExpectedVersion::Any, &[ev("x")])
                .map(drop),
            versions(&store, "d-1").map(drop),
            store.stream_version("d-1").map(drop),
            store.delete_stream("d-1", ExpectedVersion::Any),
            store.tombstone_stream("d-1", ExpectedVersion::Any),
        ] {
            assert!(
                matches!(result, Err(StoreError::StreamDeleted { .. })),
                "{result:?}"
            );
        }
        assert!(
            store
                .read_category("d", 0, Direction::Forward, 10)
                .unwrap()
                .is_empty()
        );
    }
    let store = open(tmp.path(), &clock);
    assert!(matches!(
        store.append("d-1", ExpectedVersion::NoStream, &[ev("y")]),
        Err(StoreError::StreamDeleted { .. })
    ));
}

#[test]
fn a_stream_reads_as_of_a_past_position_or_time() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = open(tmp.path(), &clock);
    for i in 0..6 {
        store
            .append("e-1", ExpectedVersion::Any, &[ev(&format!("e{i}"))])
            .unwrap();
        store
            .append("other-1", ExpectedVersion::Any, &[ev(&format!("o{i}"))])
            .unwrap();
        clock.advance(1_000);
    }
    // e-1's events sit at positions 0, 2, 4, …; recorded at 1_000_000 + i s.
    let at = |as_of| -> Vec<u64> {
        store
            .read_stream_as_of("e-1", as_of, 100)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect()
    };
    assert_eq!(at(AsOf::Position(4)), [0, 1, 2]);
    assert_eq!(at(AsOf::Position(5)), [0, 1, 2]);
    assert_eq!(at(AsOf::Time(1_002_500)), [0, 1, 2]);
    assert_eq!(at(AsOf::Time(0)), Vec::<u64>::new());
    assert_eq!(at(AsOf::Time(i64::MAX)), [0, 1, 2, 3, 4, 5]);
}
