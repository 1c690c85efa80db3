//! Compacted topics in the broker: keyless records refused as Kafka does,
//! the latest record per key kept with its offset, tombstones and
//! transaction markers kept while younger than `delete.retention.ms` and
//! then removed, aborted transactions' records removed, and a compacted
//! partition read and reopened after cleaning.

use std::collections::BTreeMap;

use weir_broker::compact::CleanerLimits;
use weir_broker::{Broker, BrokerConfig, BrokerError};
use weir_log::batch::{self, BatchBuilder, BatchHeader};
use weir_log::{DataDir, DirConfig, Throttle};

fn open(path: &std::path::Path) -> Broker {
    Broker::open(
        DataDir::open(path, DirConfig::default()).unwrap(),
        BrokerConfig::default(),
    )
    .unwrap()
}

fn compacted(broker: &Broker, extra: &[(&str, &str)]) {
    let mut configs = vec![
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("max.message.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    configs.extend_from_slice(extra);
    broker.create_topic("c", 1, 1, &configs, false).unwrap();
}

fn keyed(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    b.push_nullable(ts, Some(key.as_bytes()), value.map(str::as_bytes), &[]);
    b.build()
}

fn txn(pid: i64, seq: i32, records: &[(&str, &str)]) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, 0, seq).transactional();
    for (k, v) in records {
        b.push(0, Some(k.as_bytes()), Some(v.as_bytes()), &[]);
    }
    b.build()
}

/// A stored record, or a marker (key "<marker>").
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    offset: i64,
    key: String,
    value: Option<String>,
}

fn read_all(broker: &Broker) -> Vec<Stored> {
    let log = broker.topic("c").unwrap().partition(0).unwrap();
    let mut out = Vec::new();
    let mut offset = log.start_offset();
    loop {
        let read = log.read(offset, 1 << 20).unwrap();
        if read.bytes.is_empty() {
            return out;
        }
        let mut pos = 0;
        while pos < read.bytes.len() {
            let h = BatchHeader::parse(&read.bytes[pos..]).unwrap();
            let bytes = &read.bytes[pos..pos + h.total_bytes()];
            for r in batch::records(bytes).unwrap() {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                out.push(Stored {
                    offset: r.offset,
                    key: if h.is_control() {
                        "<marker>".into()
                    } else {
                        text(r.key).unwrap_or_default()
                    },
                    value: if h.is_control() { None } else { text(r.value) },
                });
            }
            pos += h.total_bytes();
        }
        offset = read.next_offset;
    }
}

fn clean(broker: &Broker) -> weir_broker::compact::CleanSummary {
    broker.clean_compacted(&CleanerLimits::default(), &Throttle::new(None))
}

/// Enough keyed filler to roll a few segments past what came before.
fn filler(broker: &Broker, n: usize, ts: i64) {
    for i in 0..n {
        let value = format!("filler-{i}-{}", "x".repeat(40));
        broker
            .produce(
                "c",
                0,
                &mut keyed(&format!("f{}", i % 20), Some(&value), ts),
            )
            .unwrap();
    }
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    compacted(&broker, &[]);
    let mut b = BatchBuilder::new(0);
    b.push(0, None, Some(b"no key"), &[]);
    let err = broker.produce("c", 0, &mut b.build()).unwrap_err();
    assert!(matches!(err, BrokerError::KeyRequired { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Compacted topic cannot accept message without key in topic partition c-0"
    );
    assert_eq!(
        broker
            .topic("c")
            .unwrap()
            .partition(0)
            .unwrap()
            .end_offset(),
        0
    );
    // With delete only, the same record is fine.
    broker
        .alter_topic_config("c", &[("cleanup.policy", Some("delete"))], false)
        .unwrap();
    broker.produce("c", 0, &mut b.build()).unwrap();
}

#[test]
fn cleaning_keeps_the_latest_record_per_key_and_drops_old_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    compacted(&broker, &[]);
    let mut written = BTreeMap::new();
    for round in 0..20 {
        for k in 0..25 {
            let key = format!("k{k}");
            // Timestamp 0: every segment is older than delete.retention.ms.
            let value = ((round + k) % 9 != 0).then(|| format!("v{round}-{k}"));
            let info = broker
                .produce("c", 0, &mut keyed(&key, value.as_deref(), 0))
                .unwrap();
            written.insert(info.base_offset, (key, value));
        }
    }
    let log = broker.topic("c").unwrap().partition(0).unwrap();
    let active_base = log.active_base_offset();
    let before = log.size_bytes();
    let summary = clean(&broker);
    assert_eq!(summary.partitions_cleaned, 1, "{summary:?}");
    assert!(log.size_bytes() < before / 3, "{summary:?}");

    let stored = read_all(&broker);
    let mut latest_sealed: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in written.range(..active_base) {
        latest_sealed.insert(key, *offset);
    }
    for s in stored.iter().filter(|s| s.offset < active_base) {
        assert_eq!(written[&s.offset], (s.key.clone(), s.value.clone()));
        assert_eq!(
            latest_sealed[s.key.as_str()],
            s.offset,
            "{s:?} is not the latest"
        );
        assert!(s.value.is_some(), "old tombstone {s:?} stays");
    }
    for (key, offset) in &latest_sealed {
        let tombstone = written[offset].1.is_none();
        let there = stored.iter().any(|s| s.offset == *offset);
        assert_eq!(there, !tombstone, "{key} at {offset}");
    }
    // Everything from the active segment on is as written.
    let tail: Vec<i64> = stored
        .iter()
        .map(|s| s.offset)
        .filter(|o| *o >= active_base)
        .collect();
    assert_eq!(
        tail,
        written
            .range(active_base..)
            .map(|(o, _)| *o)
            .collect::<Vec<_>>()
    );

    // A restart reads the same, and nothing is dirty.
    drop(log);
    drop(broker);
    let broker = open(tmp.path());
    assert_eq!(read_all(&broker), stored);
    assert_eq!(clean(&broker).partitions_cleaned, 0);
}

#[test]
fn recent_tombstones_and_markers_stay_until_delete_retention_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    compacted(&broker, &[("delete.retention.ms", "3600000")]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    broker
        .produce("c", 0, &mut keyed("gone", Some("x"), now))
        .unwrap();
    let tombstone = broker
        .produce("c", 0, &mut keyed("gone", None, now))
        .unwrap();
    // An aborted transaction: its records go at once, its marker stays
    // while young.
    broker
        .produce("c", 0, &mut txn(9, 0, &[("t", "aborted")]))
        .unwrap();
    let abort = broker
        .write_marker("c", 0, 9, 0, false, 0)
        .unwrap()
        .wait()
        .unwrap();
    filler(&broker, 200, now);
    clean(&broker);
    let stored = read_all(&broker);
    let at = |o: i64| stored.iter().find(|s| s.offset == o).cloned();
    assert_eq!(
        at(tombstone.base_offset).map(|s| s.value),
        Some(None),
        "a young tombstone stays"
    );
    assert!(
        at(tombstone.base_offset - 1).is_none(),
        "the value it deletes goes"
    );
    assert!(at(abort.base_offset - 1).is_none(), "aborted records go");
    assert_eq!(
        at(abort.base_offset).map(|s| s.key),
        Some("<marker>".into()),
        "a young marker stays"
    );
}

#[test]
fn transactions_are_cleaned_by_kafkas_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    // Markers carry the time they were written: with no retention for
    // deletes, they may go as soon as their transaction has no record left.
    compacted(&broker, &[("delete.retention.ms", "0")]);
    // Producer 1 commits k1=a1, k2=a2; producer 2 aborts k1=b1, k3=b3; a
    // plain record then overwrites k2; producer 3 commits k5 only, later
    // overwritten, so nothing of its transaction is left.
    broker
        .produce("c", 0, &mut txn(1, 0, &[("k1", "a1"), ("k2", "a2")]))
        .unwrap(); // 0-1
    broker
        .produce("c", 0, &mut txn(2, 0, &[("k1", "b1"), ("k3", "b3")]))
        .unwrap(); // 2-3
    let commit = broker
        .write_marker("c", 0, 1, 0, true, 0)
        .unwrap()
        .wait()
        .unwrap(); // 4
    let abort = broker
        .write_marker("c", 0, 2, 0, false, 0)
        .unwrap()
        .wait()
        .unwrap(); // 5
    broker
        .produce("c", 0, &mut keyed("k2", Some("p2"), 0))
        .unwrap(); // 6
    broker
        .produce("c", 0, &mut txn(3, 0, &[("k5", "c5")]))
        .unwrap(); // 7
    let commit3 = broker
        .write_marker("c", 0, 3, 0, true, 0)
        .unwrap()
        .wait()
        .unwrap(); // 8
    broker
        .produce("c", 0, &mut keyed("k5", Some("p5"), 0))
        .unwrap(); // 9
    filler(&broker, 200, 0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    clean(&broker);
    let stored = read_all(&broker);
    let first: Vec<(i64, String, Option<String>)> = stored
        .iter()
        .filter(|s| s.offset <= 9)
        .map(|s| (s.offset, s.key.clone(), s.value.clone()))
        .collect();
    assert_eq!(commit.base_offset, 4);
    assert_eq!(abort.base_offset, 5);
    assert_eq!(commit3.base_offset, 8);
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        first,
        [
            // a1 stays (b1 was aborted, so it supersedes nothing), and so
            // does producer 1's commit: a record of its transaction is left.
            (0, "k1".into(), s("a1")),
            (4, "<marker>".into(), None),
            (6, "k2".into(), s("p2")),
            (9, "k5".into(), s("p5")),
        ]
    );
    // Reads at removed offsets give the next batch there is. The first
    // batch keeps its offsets 0-1 though only 0 is left in it, so a read at
    // 1 still gets it (as in Kafka: the consumer skips what is below).
    let log = broker.topic("c").unwrap().partition(0).unwrap();
    let read = log.read(1, 1 << 10).unwrap();
    let first = BatchHeader::parse(&read.bytes).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset(), first.record_count),
        (0, 1, 1)
    );
    let read = log.read(2, 1 << 10).unwrap();
    assert_eq!(BatchHeader::parse(&read.bytes).unwrap().base_offset, 4);
    let read = log.read(7, 1 << 10).unwrap();
    assert_eq!(BatchHeader::parse(&read.bytes).unwrap().base_offset, 9);
}

#[test]
fn the_transaction_log_is_compacted_and_the_pending_offsets_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = open(tmp.path());
    broker
        .append_internal_record("__transaction_state", b"id", Some(b"state"))
        .unwrap();
    broker
        .append_internal_record("__weir_txn_offsets", b"pid", Some(b"offsets"))
        .unwrap();
    let config = |t: &str| broker.topic(t).unwrap().config();
    assert!(config("__transaction_state").compacted());
    assert!(!config("__transaction_state").deletes());
    assert!(!config("__weir_txn_offsets").compacted());
    // Nothing to clean yet (one active segment), and cleaning leaves it.
    clean(&broker);
    let mut seen = Vec::new();
    broker
        .read_internal_records("__transaction_state", |offset, key, value| {
            seen.push((offset, key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec)));
        })
        .unwrap();
    assert_eq!(seen, [(0, Some(b"id".to_vec()), Some(b"state".to_vec()))]);
}
