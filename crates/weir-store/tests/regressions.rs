//! Regression tests for bugs the model, crash and kill -9 tests found in
//! the embedded store, each with a short account of the bug it pins.

mod common;

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{
    Direction, EVENTS_TOPIC, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig,
};

fn broker(dir: &std::path::Path) -> Arc<Broker> {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    Arc::new(Broker::open(data, BrokerConfig::default()).unwrap())
}

/// `StoreConfig::segment_bytes` below 32 MiB made `open` fail: the store
/// asked for `max.message.bytes` of twice `APPEND_BYTES_MAX` whatever the
/// segment size, and the broker refuses a message size above the segment
/// size ("may not exceed segment.bytes 4096"). A store on small segments
/// now opens, rolls segments, and refuses only appends a segment cannot
/// hold, writing nothing for them.
#[test]
fn a_store_opens_on_the_smallest_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        segment_bytes: weir_log::SEGMENT_BYTES_MIN,
        ..StoreConfig::default()
    };
    let store = EmbeddedStore::open(broker(tmp.path()), config.clone()).unwrap();
    for i in 0..200 {
        let e = NewEvent::json(format!("e{i}"), "T", vec![b'x'; 100]);
        store.append("s-1", ExpectedVersion::Any, &[e]).unwrap();
    }
    let log = store.broker().partition(EVENTS_TOPIC, 0).unwrap();
    assert!(
        log.size_bytes() > 4 * weir_log::SEGMENT_BYTES_MIN,
        "200 events span several segments"
    );
    let too_big = NewEvent::json("big", "T", vec![b'x'; 8 * 1024]);
    assert!(
        store
            .append("s-1", ExpectedVersion::Any, &[too_big])
            .is_err()
    );
    assert_eq!(store.head_position(), 200);
    drop(store);
    let store = EmbeddedStore::open(broker(tmp.path()), config).unwrap();
    let events = store
        .read_stream("s-1", 0, Direction::Forward, 1000)
        .unwrap();
    assert_eq!(events.len(), 200);
}

/// An append expecting version `u64::MAX` computed the version after it
/// (`v + 1`) to look for an earlier attempt: in a debug build that
/// overflowed and panicked while the append held the store's write lock,
/// and in a release build it wrapped to 0, so an append whose ids match
/// the stream's first events was answered as a retry of them instead of
/// with the version conflict it is.
#[test]
fn an_append_expecting_the_largest_version_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(broker(tmp.path()), StoreConfig::default()).unwrap();
    let a = NewEvent::json("a", "T", b"{}".to_vec());
    store
        .append("s-1", ExpectedVersion::NoStream, std::slice::from_ref(&a))
        .unwrap();
    for events in [vec![a], vec![NewEvent::json("b", "T", b"{}".to_vec())]] {
        let answer = store.append("s-1", ExpectedVersion::Exact(u64::MAX), &events);
        assert!(
            matches!(
                answer,
                Err(weir_store::StoreError::WrongExpectedVersion {
                    actual: Some(0),
                    ..
                })
            ),
            "{answer:?}"
        );
    }
    assert_eq!(store.head_position(), 1);
}

/// An `any` append of several events whose ids were recorded before, one
/// of them (not the last) on another stream, marks that id with version
/// `u64::MAX` and then checked the versions for consecutiveness with
/// `v + 1`: in a debug build that overflowed and panicked under the
/// store's write lock, instead of answering with the idempotency conflict
/// it is.
#[test]
fn ids_recorded_on_another_stream_are_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(broker(tmp.path()), StoreConfig::default()).unwrap();
    let ev = |id: &str| NewEvent::json(id, "T", b"{}".to_vec());
    store
        .append("s-1", ExpectedVersion::Any, &[ev("a")])
        .unwrap();
    store
        .append("s-2", ExpectedVersion::Any, &[ev("b")])
        .unwrap();
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        let answer = store.append("s-2", expected, &[ev("a"), ev("b")]);
        assert!(
            matches!(
                answer,
                Err(weir_store::StoreError::IdempotencyConflict { .. })
            ),
            "{answer:?}"
        );
    }
    assert_eq!(store.head_position(), 2);
}

/// `read_stream` took `max_count` events and only then dropped those
/// older than the stream's `max_age`, so a forward read whose first
/// versions had aged out came back short or empty although younger events
/// followed. Readers paging forward stopped there: `read_stream` from 0
/// with a small `max_count` returned nothing, `load` returned no events
/// (and dropped a usable snapshot), and a stream subscription polled
/// empty pages forever without passing the old events.
#[test]
fn a_forward_read_goes_on_past_events_max_age_hides() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = weir_log::ManualClock::new(1_000_000);
    let config = StoreConfig {
        clock: Some(Arc::new(clock.clone())),
        ..StoreConfig::default()
    };
    let store = Arc::new(EmbeddedStore::open(broker(tmp.path()), config).unwrap());
    let ev = |id: &str| NewEvent::json(id, "T", b"{}".to_vec());
    for id in ["old-0", "old-1", "old-2"] {
        store
            .append("s-1", ExpectedVersion::Any, &[ev(id)])
            .unwrap();
    }
    clock.advance(60_000);
    for id in ["new-3", "new-4"] {
        store
            .append("s-1", ExpectedVersion::Any, &[ev(id)])
            .unwrap();
    }
    store
        .set_stream_metadata(
            "s-1",
            &weir_store::StreamMetadata {
                max_age_ms: Some(30_000),
                ..weir_store::StreamMetadata::default()
            },
        )
        .unwrap();
    let versions = |events: Vec<weir_store::RecordedEvent>| -> Vec<u64> {
        events.iter().map(|e| e.version).collect()
    };
    let read = |from, max| {
        versions(
            store
                .read_stream("s-1", from, Direction::Forward, max)
                .unwrap(),
        )
    };
    assert_eq!(read(0, 1), [3]);
    assert_eq!(read(0, 2), [3, 4]);
    assert_eq!(read(1, 100), [3, 4]);
    assert_eq!(read(4, 100), [4]);
    let back = store
        .read_stream("s-1", u64::MAX, Direction::Backward, 3)
        .unwrap();
    assert_eq!(versions(back), [4, 3]);
    assert_eq!(versions(store.load("s-1", 1).unwrap().events), [3]);
    let mut sub = store.subscribe(
        weir_store::Target::Stream("s-1".into()),
        weir_store::Filter::default(),
        0,
    );
    let mut delivered = Vec::new();
    for _ in 0..10 {
        delivered.extend(versions(sub.poll(1).unwrap()));
    }
    assert_eq!(delivered, [3, 4]);
}

/// A stream's settings, soft delete and tombstone take effect in the
/// index when their event is written, before it is durable, and the saved
/// index stored them whatever position it covered. Saved while such an
/// event was on its way to the disk (here: its fsync failed, so its
/// append failed too), it claimed the event; after a power loss that lost
/// it, the store reopened from the saved index treated the stream as
/// tombstoned for good although the log, and indexes rebuilt from it, say
/// the stream exists. Now the index is saved only when no such event is in
/// flight, and the recovered indexes agree with the log.
#[test]
fn the_saved_index_never_claims_a_delete_the_log_lost() {
    use common::{dump, open_sim, remove_saved_index};
    use weir_log::sim::SimStorage;
    let mut lost = 0;
    for seed in 0..16 {
        let clock = weir_log::ManualClock::new(1_000_000);
        let disk = SimStorage::new();
        let store = open_sim(&disk, &clock);
        for i in 0..3 {
            let e = NewEvent::json(format!("e{i}"), "T", b"{}".to_vec());
            store.append("d-1", ExpectedVersion::Any, &[e]).unwrap();
        }
        disk.fail_next_syncs(1);
        assert!(store.tombstone_stream("d-1", ExpectedVersion::Any).is_err());
        // Saving may fail (the log's fsync failed); it must not lie.
        let _ = store.maintain(true);
        let disk = disk.crash(seed);
        drop(store);
        let recovered = open_sim(&disk, &clock);
        if recovered.head_position() == 3 {
            lost += 1;
        }
        let from_saved_index = dump(&recovered);
        drop(recovered);
        remove_saved_index(&disk);
        let from_log = dump(&open_sim(&disk, &clock));
        assert_eq!(from_saved_index, from_log, "seed {seed}");
    }
    assert!(
        lost > 0,
        "no crash lost the tombstone: the case was not tested"
    );
}

/// The other side of the fix above: a save that meets a delete in flight
/// waits for it and then covers it.
#[test]
fn the_saved_index_waits_for_a_delete_in_flight() {
    use common::open_sim;
    use weir_log::sim::SimStorage;
    let clock = weir_log::ManualClock::new(1_000_000);
    let disk = SimStorage::new();
    let store = open_sim(&disk, &clock);
    let e = NewEvent::json("e0", "T", b"{}".to_vec());
    store.append("d-1", ExpectedVersion::Any, &[e]).unwrap();
    disk.set_sync_delay(std::time::Duration::from_millis(200));
    let events = store.broker().partition(EVENTS_TOPIC, 0).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| store.tombstone_stream("d-1", ExpectedVersion::Any).unwrap());
        // The tombstone is written (not yet durable).
        while events.end_offset() < 2 {
            std::thread::yield_now();
        }
        assert_eq!(events.high_watermark(), 1, "the tombstone is in flight");
        store.maintain(true).unwrap();
    });
    disk.set_sync_delay(std::time::Duration::ZERO);
    let disk = disk.crash(0);
    drop(store);
    let store = open_sim(&disk, &clock);
    assert_eq!(store.recovery().saved_index_position, Some(2));
    assert!(store.stream_version("d-1").is_err());
}

/// Stream settings, soft deletes and tombstones took effect for readers
/// when their events were written, not when durable: while a tombstone's
/// fsync was under way (or after it failed) readers were told the stream
/// was deleted, which a crash could then take back. Readers now see a
/// stream's settings as of the durable events; writers, ordered after the
/// change in the log, still see it at once.
#[test]
fn readers_see_only_durable_stream_settings() {
    use common::open_sim;
    use weir_log::sim::SimStorage;
    let clock = weir_log::ManualClock::new(1_000_000);
    let disk = SimStorage::new();
    let store = open_sim(&disk, &clock);
    let e = NewEvent::json("e0", "T", b"{}".to_vec());
    store.append("d-1", ExpectedVersion::Any, &[e]).unwrap();
    let events = store.broker().partition(EVENTS_TOPIC, 0).unwrap();
    disk.set_sync_delay(std::time::Duration::from_millis(300));
    std::thread::scope(|scope| {
        let tombstone = scope.spawn(|| store.tombstone_stream("d-1", ExpectedVersion::Any));
        while events.end_offset() < 2 {
            std::thread::yield_now();
        }
        // In flight: readers still see the stream and its event...
        assert_eq!(store.stream_version("d-1").unwrap(), Some(0));
        let read = store.read_stream("d-1", 0, Direction::Forward, 10).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(store.stream_metadata("d-1").unwrap(), Default::default());
        // ...while a writer is refused: its append would follow the
        // tombstone in the log.
        let late = NewEvent::json("e1", "T", b"{}".to_vec());
        assert!(matches!(
            store.append("d-1", ExpectedVersion::Any, &[late]),
            Err(weir_store::StoreError::StreamDeleted { .. })
        ));
        tombstone.join().unwrap().unwrap();
    });
    disk.set_sync_delay(std::time::Duration::ZERO);
    assert!(store.stream_version("d-1").is_err());
    assert!(store.read_stream("d-1", 0, Direction::Forward, 10).is_err());
}

/// A retry of an exact-version append stopped matching once a client
/// recorded one of its ids again elsewhere (ids were matched by their
/// newest record), so the retry got a version conflict instead of its
/// first answer. A retry now matches by the events at the versions it
/// wrote.
#[test]
fn an_exact_retry_matches_after_its_id_was_reused_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(broker(tmp.path()), StoreConfig::default()).unwrap();
    let e = NewEvent::json("id-1", "T", b"{}".to_vec());
    let first = store
        .append("a-1", ExpectedVersion::NoStream, std::slice::from_ref(&e))
        .unwrap();
    store
        .append("b-1", ExpectedVersion::NoStream, std::slice::from_ref(&e))
        .unwrap();
    let retry = store
        .append("a-1", ExpectedVersion::NoStream, std::slice::from_ref(&e))
        .unwrap();
    assert_eq!(retry, first);
    let again = store
        .append("a-1", ExpectedVersion::NoStream, std::slice::from_ref(&e))
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.head_position(), 2, "the retries wrote nothing");
}

/// Setting metadata on a soft-deleted stream replaced the
/// `truncate_before` the delete had set, so the deleted events read again.
/// New settings now keep the delete's floor.
#[test]
fn new_metadata_does_not_bring_back_soft_deleted_events() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(broker(tmp.path()), StoreConfig::default()).unwrap();
    for i in 0..3 {
        let e = NewEvent::json(format!("e{i}"), "T", b"{}".to_vec());
        store.append("s-1", ExpectedVersion::Any, &[e]).unwrap();
    }
    store
        .delete_stream("s-1", ExpectedVersion::Exact(2))
        .unwrap();
    let settings = weir_store::StreamMetadata {
        max_count: Some(10),
        ..Default::default()
    };
    store.set_stream_metadata("s-1", &settings).unwrap();
    assert!(store.read_stream("s-1", 0, Direction::Forward, 10).is_err());
    assert_eq!(
        store.stream_metadata("s-1").unwrap().truncate_before,
        Some(3)
    );
    let e = NewEvent::json("e3", "T", b"{}".to_vec());
    store
        .append("s-1", ExpectedVersion::NoStream, &[e])
        .unwrap();
    let read = store.read_stream("s-1", 0, Direction::Forward, 10).unwrap();
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), [3]);
}
