//! The embedded event store through its public API: expected versions,
//! idempotent retries, reads by stream, category, type and in global
//! order, reopening, concurrent writers, and the CloudEvents records that
//! Kafka consumers of `__weir_events` see.

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_log::{DataDir, DirConfig};
use weir_store::{
    Direction, EVENTS_TOPIC, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig,
    StoreError,
};

fn open(dir: &std::path::Path) -> EmbeddedStore {
    let data = DataDir::open(dir, DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    EmbeddedStore::open(broker, StoreConfig::default()).unwrap()
}

fn ev(id: &str, ty: &str) -> NewEvent {
    NewEvent::json(id, ty, format!("{{\"id\":\"{id}\"}}").into_bytes())
}

#[test]
fn expected_versions_are_enforced_and_conflicts_name_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    assert!(matches!(
        store.append("acc-1", ExpectedVersion::Exists, &[ev("a", "T")]),
        Err(StoreError::WrongExpectedVersion { actual: None, .. })
    ));
    let r = store
        .append(
            "acc-1",
            ExpectedVersion::NoStream,
            &[ev("a", "T"), ev("b", "T")],
        )
        .unwrap();
    assert_eq!((r.first_version, r.last_version), (0, 1));
    assert_eq!((r.first_position, r.last_position), (0, 1));
    match store.append("acc-1", ExpectedVersion::Exact(0), &[ev("c", "T")]) {
        Err(e @ StoreError::WrongExpectedVersion { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("acc-1")
                    && text.contains("expected version 0")
                    && text.contains("at 1"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.append("acc-1", ExpectedVersion::NoStream, &[ev("c", "T")]),
        Err(StoreError::WrongExpectedVersion {
            actual: Some(1),
            ..
        })
    ));
    store
        .append("acc-1", ExpectedVersion::Exists, &[ev("c", "T")])
        .unwrap();
    store
        .append("acc-1", ExpectedVersion::Any, &[ev("d", "T")])
        .unwrap();
    let r = store
        .append("acc-1", ExpectedVersion::Exact(3), &[ev("e", "T")])
        .unwrap();
    assert_eq!(r.last_version, 4);
    assert_eq!(store.stream_version("acc-1").unwrap(), Some(4));
    assert_eq!(store.stream_version("nope").unwrap(), None);
    assert!(matches!(
        store.read_stream("nope", 0, Direction::Forward, 10),
        Err(StoreError::StreamNotFound { .. })
    ));
}

#[test]
fn retried_appends_are_idempotent_and_partial_overlaps_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let first = store
        .append(
            "s-1",
            ExpectedVersion::NoStream,
            &[ev("a", "T"), ev("b", "T")],
        )
        .unwrap();
    // The same append again: same answer, nothing written.
    let again = store
        .append(
            "s-1",
            ExpectedVersion::NoStream,
            &[ev("a", "T"), ev("b", "T")],
        )
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(store.head_position(), 2);
    let next = store
        .append("s-1", ExpectedVersion::Exact(1), &[ev("c", "T")])
        .unwrap();
    assert_eq!(
        store
            .append("s-1", ExpectedVersion::Exact(1), &[ev("c", "T")])
            .unwrap(),
        next
    );
    // Part of an earlier append, or more than it: an error that says so.
    assert!(matches!(
        store.append(
            "s-1",
            ExpectedVersion::NoStream,
            &[ev("a", "T"), ev("x", "T")]
        ),
        Err(StoreError::IdempotencyConflict { .. })
    ));
    // `any` retries within the window of recent ids.
    let any = store
        .append("s-2", ExpectedVersion::Any, &[ev("p", "T"), ev("q", "T")])
        .unwrap();
    assert_eq!(
        store
            .append("s-2", ExpectedVersion::Any, &[ev("p", "T"), ev("q", "T")])
            .unwrap(),
        any
    );
    assert!(matches!(
        store.append("s-3", ExpectedVersion::Any, &[ev("p", "T")]),
        Err(StoreError::IdempotencyConflict { .. })
    ));
    assert_eq!(store.head_position(), 5);
    // Bad input is refused by name and writes nothing.
    assert!(matches!(
        store.append(
            "s-4",
            ExpectedVersion::Any,
            &[ev("dup", "T"), ev("dup", "T")]
        ),
        Err(StoreError::InvalidEvent { .. })
    ));
    assert!(matches!(
        store.append("", ExpectedVersion::Any, &[ev("z", "T")]),
        Err(StoreError::InvalidStream { .. })
    ));
    assert!(matches!(
        store.append("$system", ExpectedVersion::Any, &[ev("z", "T")]),
        Err(StoreError::InvalidStream { .. })
    ));
    assert!(matches!(
        store.append("s-4", ExpectedVersion::Any, &[]),
        Err(StoreError::InvalidEvent { .. })
    ));
    assert_eq!(store.head_position(), 5);
}

#[test]
fn reads_by_stream_category_type_and_global_order_page_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for i in 0..10 {
        let stream = format!("{}-{}", if i % 2 == 0 { "account" } else { "order" }, i % 3);
        let ty = if i % 3 == 0 { "Opened" } else { "Changed" };
        store
            .append(&stream, ExpectedVersion::Any, &[ev(&format!("e{i}"), ty)])
            .unwrap();
    }
    let all = store.read_all(0, Direction::Forward, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let page = store.read_all(4, Direction::Forward, 3).unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    let back = store.read_all(u64::MAX, Direction::Backward, 4).unwrap();
    assert_eq!(
        back.iter().map(|e| e.position).collect::<Vec<_>>(),
        [9, 8, 7, 6]
    );
    let accounts = store
        .read_category("account", 0, Direction::Forward, 100)
        .unwrap();
    assert_eq!(
        accounts.iter().map(|e| e.position).collect::<Vec<_>>(),
        [0, 2, 4, 6, 8]
    );
    let accounts_back = store
        .read_category("account", 5, Direction::Backward, 2)
        .unwrap();
    assert_eq!(
        accounts_back.iter().map(|e| e.position).collect::<Vec<_>>(),
        [4, 2]
    );
    let opened = store
        .read_type("Opened", 1, Direction::Forward, 100)
        .unwrap();
    assert_eq!(
        opened.iter().map(|e| e.position).collect::<Vec<_>>(),
        [3, 6, 9]
    );
    let s = store
        .read_stream("account-0", 0, Direction::Forward, 100)
        .unwrap();
    assert_eq!(
        s.iter()
            .map(|e| (e.version, e.position))
            .collect::<Vec<_>>(),
        [(0, 0), (1, 6)]
    );
    let newest = store
        .read_stream("account-0", u64::MAX, Direction::Backward, 1)
        .unwrap();
    assert_eq!(newest[0].version, 1);
    let e = &s[1];
    assert_eq!(
        (e.id.as_str(), e.event_type.as_str(), e.stream.as_str()),
        ("e6", "Opened", "account-0")
    );
    assert_eq!(e.data, br#"{"id":"e6"}"#);
    assert_eq!(e.content_type, "application/json");
    assert!(e.recorded_ms > 0);
}

#[test]
fn a_reopened_store_has_every_event_and_continues_the_versions() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(tmp.path());
        for i in 0..50 {
            store
                .append(
                    &format!("s-{}", i % 5),
                    ExpectedVersion::Any,
                    &[ev(&format!("e{i}"), "T")],
                )
                .unwrap();
        }
    }
    let store = open(tmp.path());
    assert_eq!(store.head_position(), 50);
    assert_eq!(store.stream_version("s-3").unwrap(), Some(9));
    let r = store
        .append("s-3", ExpectedVersion::Exact(9), &[ev("new", "T")])
        .unwrap();
    assert_eq!((r.last_version, r.last_position), (10, 50));
    // Ids recorded before the reopen still make a retry idempotent.
    let retry = store
        .append("s-4", ExpectedVersion::Any, &[ev("e49", "T")])
        .unwrap();
    assert_eq!(retry.last_position, 49);
}

#[test]
fn concurrent_writers_with_exact_versions_win_each_version_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open(tmp.path()));
    let writers = 8;
    let rounds = 40;
    let wins: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                scope.spawn(move || {
                    let mut won = Vec::new();
                    let mut n = 0;
                    while store.stream_version("hot").unwrap().map_or(0, |v| v + 1) < rounds {
                        let current = store.stream_version("hot").unwrap();
                        let expected =
                            current.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        n += 1;
                        match store.append("hot", expected, &[ev(&format!("w{w}-{n}"), "T")]) {
                            Ok(r) => won.push(r.last_version),
                            Err(StoreError::WrongExpectedVersion { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = wins.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(all, expected, "each version won exactly once");
    assert!(all.len() as u64 >= rounds);
    let events = store
        .read_stream("hot", 0, Direction::Forward, 1000)
        .unwrap();
    assert_eq!(events.len(), all.len());
}

#[test]
fn events_are_cloudevents_records_of_an_internal_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut e = ev("id-1", "AccountOpened");
    e.metadata = br#"{"user":"ada"}"#.to_vec();
    store
        .append("account-7", ExpectedVersion::Any, &[e])
        .unwrap();
    let broker = store.broker();
    let topic = broker.topic(EVENTS_TOPIC).unwrap();
    assert!(topic.internal);
    let read = broker
        .partition(EVENTS_TOPIC, 0)
        .unwrap()
        .read(0, 1 << 20)
        .unwrap();
    let records = weir_log::batch::records(&read.bytes).unwrap();
    let r = &records[0];
    assert_eq!(r.key, Some(&b"account-7"[..]));
    let h = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(h("ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(h("ce_id").as_deref(), Some("id-1"));
    assert_eq!(h("ce_type").as_deref(), Some("AccountOpened"));
    assert_eq!(h("ce_source").as_deref(), Some("/streams/account-7"));
    assert_eq!(h("ce_streamversion").as_deref(), Some("0"));
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert_eq!(h("ce_metadata").as_deref(), Some(r#"{"user":"ada"}"#));
    assert!(h("ce_time").unwrap().ends_with('Z'));
    // Kafka producers may not write there.
    let mut batch = weir_log::batch::BatchBuilder::new(0);
    batch.push(0, None, Some(b"x"), &[]);
    assert!(broker.produce(EVENTS_TOPIC, 0, &mut batch.build()).is_err());
}
