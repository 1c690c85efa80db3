//! Aggregate snapshots: saved beside the stream (not in it, not in the
//! global order), loaded as the newest snapshot plus the events after it,
//! kept across a reopen, and refused for versions the stream lacks.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{
    Direction, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig, StoreError,
};

fn open(dir: &std::path::Path) -> EmbeddedStore {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    EmbeddedStore::open(broker, StoreConfig::default()).unwrap()
}

fn deposit(store: &EmbeddedStore, n: usize, from: usize) {
    for i in from..from + n {
        store
            .append(
                "account-1",
                ExpectedVersion::Any,
                &[NewEvent::json(format!("d{i}"), "Deposited", b"{}".to_vec())],
            )
            .unwrap();
    }
}

#[test]
fn loading_reads_the_newest_snapshot_and_the_events_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path());
        let none = store.load("account-1", 100).unwrap();
        assert!(none.snapshot.is_none() && none.events.is_empty());
        deposit(&store, 10, 0);
        store
            .save_snapshot("account-1", 4, "Balance", b"{\"balance\":5}".to_vec())
            .unwrap();
        store
            .save_snapshot("account-1", 7, "Balance", b"{\"balance\":8}".to_vec())
            .unwrap();
        // An older one saved later does not replace the newest.
        store
            .save_snapshot("account-1", 2, "Balance", b"{\"balance\":3}".to_vec())
            .unwrap();
        assert!(matches!(
            store.save_snapshot("account-1", 10, "Balance", vec![]),
            Err(StoreError::WrongExpectedVersion {
                actual: Some(9),
                ..
            })
        ));
        assert!(matches!(
            store.save_snapshot("nobody-1", 0, "Balance", vec![]),
            Err(StoreError::WrongExpectedVersion { actual: None, .. })
        ));
        let loaded = store.load("account-1", 100).unwrap();
        let snap = loaded.snapshot.unwrap();
        assert_eq!(
            (snap.version, snap.data.as_slice()),
            (7, &b"{\"balance\":8}"[..])
        );
        assert_eq!(snap.snapshot_type, "Balance");
        assert_eq!(
            loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            [8, 9]
        );
        // Snapshots are not events: the stream and the global order are
        // unchanged.
        assert_eq!(
            store
                .read_stream("account-1", 0, Direction::Forward, 100)
                .unwrap()
                .len(),
            10
        );
        assert_eq!(store.head_position(), 10);
    }
    let store = open(tmp.path());
    deposit(&store, 1, 10);
    let loaded = store.load("account-1", 100).unwrap();
    assert_eq!(loaded.snapshot.unwrap().version, 7);
    assert_eq!(
        loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [8, 9, 10]
    );
    // A soft-deleted stream loads as absent, snapshot and all.
    store
        .delete_stream("account-1", ExpectedVersion::Any)
        .unwrap();
    let gone = store.load("account-1", 100).unwrap();
    assert!(gone.snapshot.is_none() && gone.events.is_empty());
}
