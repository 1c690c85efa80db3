//! Dead-letter operations over a real broker in a temporary directory:
//! send, list (depth and oldest record), read, replay (markers counted over
//! replays, kept when a replayed record fails again, bounded calls), and
//! bad input (records that are not dead letters, unknown origins).

use std::sync::Arc;

use weir_broker::{Broker, BrokerConfig};
use weir_deadletter::format::{
    DEFAULT_SUFFIX, DeadLetter, ErrorKind, Failure, Origin, REPLAYED_FROM, REPLAYS,
};
use weir_deadletter::{
    DeadLetterError, Original, REPLAY_COUNT_MAX, ReplayOutcome, Selection, list, read, replay, send,
};
use weir_log::batch::{BatchBuilder, records};
use weir_log::{DataDir, DirConfig};

struct Fixture {
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

fn broker() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path(), DirConfig::default()).unwrap();
    let broker = Arc::new(Broker::open(data, BrokerConfig::default()).unwrap());
    Fixture { broker, _dir: dir }
}

fn failure(error: &str) -> Failure {
    Failure {
        error: error.into(),
        kind: ErrorKind::Transient,
        attempts: 3,
        first_failure_ms: 10_000,
        last_failure_ms: 12_000,
        group: "billing".into(),
    }
}

fn origin(partition: i32, offset: i64, timestamp_ms: i64) -> Origin {
    Origin {
        topic: "orders".into(),
        partition,
        offset,
        timestamp_ms,
    }
}

/// Sends the dead letter of a record with key `key` and one header.
fn dead_letter(broker: &Broker, key: &str, origin: &Origin) -> i64 {
    let headers = [("trace", Some(&b"t-1"[..])), ("nothing", None)];
    let original = Original {
        key: Some(key.as_bytes()),
        value: Some(b"{\"amount\":5}"),
        headers: &headers,
    };
    send(broker, DEFAULT_SUFFIX, original, &failure("boom"), origin).unwrap()
}

/// One stored record: key, headers as strings, timestamp.
type Stored = (String, Vec<(String, Option<String>)>, i64);

/// Every record of a partition.
fn records_of(broker: &Broker, topic: &str, partition: i32) -> Vec<Stored> {
    let log = broker.partition(topic, partition).unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < read.bytes.len() {
        let header = weir_log::batch::BatchHeader::parse(&read.bytes[pos..]).unwrap();
        let whole = &read.bytes[pos..pos + header.total_bytes()];
        for r in records(whole).unwrap() {
            let headers = r
                .headers
                .iter()
                .map(|(n, v)| {
                    let v = v.map(|v| String::from_utf8(v.to_vec()).unwrap());
                    ((*n).to_owned(), v)
                })
                .collect();
            let key = String::from_utf8(r.key.unwrap_or_default().to_vec()).unwrap();
            out.push((key, headers, r.timestamp));
        }
        pos += header.total_bytes();
    }
    out
}

fn header<'a>(headers: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

#[test]
fn send_creates_the_topic_with_the_origins_partitions_and_keeps_the_partition() {
    let f = broker();
    f.broker.create_topic("orders", 4, -1, &[], false).unwrap();
    assert_eq!(dead_letter(&f.broker, "a", &origin(2, 5, 1_000)), 0);
    assert_eq!(dead_letter(&f.broker, "b", &origin(2, 9, 1_001)), 1);
    assert_eq!(dead_letter(&f.broker, "c", &origin(0, 1, 1_002)), 0);
    let dlq = f.broker.topic("orders.dlq").unwrap();
    assert_eq!(dlq.partition_count(), 4);
    assert!(!dlq.internal);

    let page = read(&f.broker, "orders.dlq", 2, 0, 10).unwrap();
    assert_eq!(page.next_offset, 2);
    assert!(page.not_dead_letters.is_empty());
    let (offset, dead): &(i64, DeadLetter) = &page.dead_letters[1];
    assert_eq!(*offset, 1);
    assert_eq!(dead.key.as_deref(), Some(&b"b"[..]));
    assert_eq!(dead.value.as_deref(), Some(&b"{\"amount\":5}"[..]));
    assert_eq!(
        dead.headers,
        vec![
            ("trace".to_owned(), Some(b"t-1".to_vec())),
            ("nothing".to_owned(), None)
        ]
    );
    assert_eq!(dead.failure, failure("boom"));
    assert_eq!(dead.origin, origin(2, 9, 1_001));
    assert_eq!(dead.replay, None);

    // Paging: one at a time, then from the returned offset.
    let first = read(&f.broker, "orders.dlq", 2, 0, 1).unwrap();
    assert_eq!((first.dead_letters.len(), first.next_offset), (1, 1));
    let rest = read(&f.broker, "orders.dlq", 2, first.next_offset, 10).unwrap();
    assert_eq!(rest.dead_letters[0].0, 1);
    assert_eq!(
        read(&f.broker, "orders.dlq", 2, 2, 10).unwrap().next_offset,
        2
    );
}

#[test]
fn list_reports_depth_oldest_record_and_whether_the_origin_exists() {
    let f = broker();
    f.broker.create_topic("orders", 2, -1, &[], false).unwrap();
    f.broker
        .create_topic("payments", 1, -1, &[], false)
        .unwrap();
    f.broker
        .create_topic("gone.dlq", 1, -1, &[], false)
        .unwrap();
    assert!(
        list(&f.broker, DEFAULT_SUFFIX)
            .unwrap()
            .iter()
            .all(|t| t.topic == "gone.dlq")
    );
    dead_letter(&f.broker, "a", &origin(0, 1, 1));
    dead_letter(&f.broker, "b", &origin(1, 1, 1));
    dead_letter(&f.broker, "c", &origin(1, 2, 1));

    let topics = list(&f.broker, DEFAULT_SUFFIX).unwrap();
    let names: Vec<&str> = topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(names, ["gone.dlq", "orders.dlq"]);
    let (gone, orders) = (&topics[0], &topics[1]);
    assert_eq!(gone.origin_topic, "gone");
    assert!(!gone.origin_exists);
    assert_eq!((gone.depth, gone.oldest_timestamp_ms), (0, None));
    assert_eq!(orders.origin_topic, "orders");
    assert!(orders.origin_exists);
    assert_eq!((orders.partitions, orders.depth), (2, 3));
    // The oldest is the first record of partition 0, written first.
    let first_ts = records_of(&f.broker, "orders.dlq", 0)[0].2;
    let second_ts = records_of(&f.broker, "orders.dlq", 1)[0].2;
    assert_eq!(orders.oldest_timestamp_ms, Some(first_ts.min(second_ts)));
    let now_ms = f.broker.data_dir().clock().now_ms();
    assert!(now_ms - first_ts < 60_000, "stamped with the broker's time");

    // Another suffix sees other topics.
    assert!(list(&f.broker, "-dead").unwrap().is_empty());
    assert!(matches!(
        list(&f.broker, ""),
        Err(DeadLetterError::InvalidSuffix { .. })
    ));
}

#[test]
fn replay_produces_originals_with_markers_and_a_second_failure_keeps_them() {
    let f = broker();
    f.broker.create_topic("orders", 2, -1, &[], false).unwrap();
    let at = dead_letter(&f.broker, "k", &origin(1, 7, 5_000));

    let outcome = replay(
        &f.broker,
        "orders.dlq",
        Selection::One {
            partition: 1,
            offset: at,
        },
    )
    .unwrap();
    assert_eq!(
        outcome,
        ReplayOutcome {
            replayed: 1,
            skipped_not_dead_letters: 0,
            next: None
        }
    );
    let replayed = records_of(&f.broker, "orders", 1);
    assert_eq!(replayed.len(), 1);
    let (key, headers, timestamp) = &replayed[0];
    assert_eq!((key.as_str(), *timestamp), ("k", 5_000));
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["trace", "nothing", REPLAYED_FROM, REPLAYS]);
    assert_eq!(header(headers, "nothing"), None);
    assert_eq!(header(headers, REPLAYED_FROM), Some("orders.dlq/1/0"));
    assert_eq!(header(headers, REPLAYS), Some("1"));

    // The replayed record (orders-1 offset 0) fails again: its dead letter
    // carries the new failure and still the replay markers.
    let log = f.broker.partition("orders", 1).unwrap();
    let bytes = log.read(0, 1 << 20).unwrap().bytes;
    let again = records(&bytes).unwrap();
    let original = Original::from(&again[0]);
    let second = Failure {
        attempts: 1,
        ..failure("still failing")
    };
    let at2 = send(
        &f.broker,
        DEFAULT_SUFFIX,
        original,
        &second,
        &origin(1, 0, 5_000),
    )
    .unwrap();
    let page = read(&f.broker, "orders.dlq", 1, at2, 1).unwrap();
    let dead = &page.dead_letters[0].1;
    assert_eq!(dead.failure, second);
    let marker = dead.replay.as_ref().expect("the replay markers are kept");
    assert_eq!((marker.from_offset, marker.replays), (0, 1));

    // A second replay counts two.
    replay(
        &f.broker,
        "orders.dlq",
        Selection::One {
            partition: 1,
            offset: at2,
        },
    )
    .unwrap();
    let replayed = records_of(&f.broker, "orders", 1);
    let (_, headers, _) = &replayed[1];
    assert_eq!(header(headers, REPLAYS), Some("2"));
    assert_eq!(header(headers, REPLAYED_FROM), Some("orders.dlq/1/1"));
    assert!(
        headers
            .iter()
            .all(|(n, _)| !n.starts_with("weir.dlq.error"))
    );
    assert_eq!(headers.iter().filter(|(n, _)| n == REPLAYS).count(), 1);
}

#[test]
fn replay_all_and_ranges_keep_order_and_are_bounded_per_call() {
    let f = broker();
    f.broker.create_topic("orders", 2, -1, &[], false).unwrap();
    for i in 0..5 {
        dead_letter(&f.broker, &format!("p0-{i}"), &origin(0, i, i));
    }
    dead_letter(&f.broker, "p1-0", &origin(1, 0, 0));

    let range = Selection::Range {
        partition: 0,
        first_offset: 1,
        last_offset: 2,
    };
    assert_eq!(replay(&f.broker, "orders.dlq", range).unwrap().replayed, 2);
    let keys = |p| -> Vec<String> {
        records_of(&f.broker, "orders", p)
            .into_iter()
            .map(|r| r.0)
            .collect()
    };
    assert_eq!(keys(0), ["p0-1", "p0-2"]);

    let all = replay(&f.broker, "orders.dlq", Selection::All).unwrap();
    assert_eq!((all.replayed, all.next), (6, None));
    assert_eq!(
        keys(0),
        ["p0-1", "p0-2", "p0-0", "p0-1", "p0-2", "p0-3", "p0-4"]
    );
    assert_eq!(keys(1), ["p1-0"]);

    // More than one call's worth: the outcome says where to go on.
    let many = REPLAY_COUNT_MAX + 5;
    let mut batch = BatchBuilder::new(0);
    let headers =
        weir_deadletter::format::dead_letter_headers(&[], &failure("x"), &origin(0, 0, 0));
    let headers: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    for _ in 0..many {
        batch.push_nullable(0, None, Some(b"v"), &headers);
    }
    f.broker
        .produce("orders.dlq", 1, &mut batch.build())
        .unwrap();
    let first = replay(
        &f.broker,
        "orders.dlq",
        Selection::AllFrom {
            partition: 1,
            offset: 1,
        },
    )
    .unwrap();
    assert_eq!(first.replayed, REPLAY_COUNT_MAX as u64);
    let next = first.next.expect("more to replay");
    assert_eq!(
        next,
        Selection::AllFrom {
            partition: 1,
            offset: 1 + REPLAY_COUNT_MAX as i64
        }
    );
    let second = replay(&f.broker, "orders.dlq", next).unwrap();
    assert_eq!((second.replayed, second.next), (5, None));
    assert_eq!(keys(0).len(), 7 + many);
}

#[test]
fn records_that_are_not_dead_letters_are_skipped_and_counted() {
    let f = broker();
    f.broker.create_topic("orders", 1, -1, &[], false).unwrap();
    dead_letter(&f.broker, "a", &origin(0, 0, 0));
    // A client writes whatever it likes to the dead-letter topic.
    let mut malformed =
        weir_deadletter::format::dead_letter_headers(&[], &failure("x"), &origin(0, 0, 0));
    for (name, value) in &mut malformed {
        if name == "weir.dlq.attempts" {
            *value = Some(b"many".to_vec());
        }
    }
    let malformed: Vec<(&str, Option<&[u8]>)> = malformed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    let mut batch = BatchBuilder::new(0);
    batch.push(0, Some(b"junk"), Some(b"v"), &[("x", b"y")]);
    batch.push_nullable(0, None, None, &malformed);
    f.broker
        .produce("orders.dlq", 0, &mut batch.build())
        .unwrap();
    dead_letter(&f.broker, "b", &origin(0, 1, 0));

    let page = read(&f.broker, "orders.dlq", 0, 0, 10).unwrap();
    let offsets: Vec<i64> = page.dead_letters.iter().map(|d| d.0).collect();
    assert_eq!(offsets, [0, 3]);
    let reasons: Vec<String> = page
        .not_dead_letters
        .iter()
        .map(|(o, e)| format!("{o}: {e}"))
        .collect();
    assert_eq!(
        reasons,
        [
            "1: not a dead letter: the record has no weir.dlq.* failure or origin header",
            "2: dead letter with a malformed weir.dlq.attempts header \"many\": not a decimal number",
        ]
    );
    let outcome = replay(&f.broker, "orders.dlq", Selection::All).unwrap();
    assert_eq!((outcome.replayed, outcome.skipped_not_dead_letters), (2, 2));
    let keys: Vec<String> = records_of(&f.broker, "orders", 0)
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn unknown_origins_are_typed_errors() {
    let f = broker();
    let empty = || Original {
        key: None,
        value: None,
        headers: &[],
    };
    let err = send(
        &f.broker,
        DEFAULT_SUFFIX,
        empty(),
        &failure("x"),
        &origin(0, 0, 0),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DeadLetterError::UnknownOrigin { topic } if topic == "orders"),
        "{err}"
    );
    assert!(f.broker.topic("orders.dlq").is_err(), "nothing created");

    f.broker.create_topic("orders", 1, -1, &[], false).unwrap();
    let err = send(
        &f.broker,
        DEFAULT_SUFFIX,
        empty(),
        &failure("x"),
        &origin(3, 0, 0),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        DeadLetterError::UnknownOriginPartition { partition: 3, .. }
    ));

    // Replay stops at a dead letter whose origin was deleted; the ones
    // before it were replayed.
    f.broker.create_topic("other", 1, -1, &[], false).unwrap();
    dead_letter(&f.broker, "a", &origin(0, 0, 0));
    let other = Origin {
        topic: "other".into(),
        ..origin(0, 0, 0)
    };
    let headers = weir_deadletter::format::dead_letter_headers(&[], &failure("x"), &other);
    let headers: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    let mut batch = BatchBuilder::new(0);
    batch.push_nullable(0, None, None, &headers);
    f.broker
        .produce("orders.dlq", 0, &mut batch.build())
        .unwrap();
    f.broker.delete_topic("other").unwrap();
    let err = replay(&f.broker, "orders.dlq", Selection::All).unwrap_err();
    match err {
        DeadLetterError::ReplayStopped {
            partition: 0,
            offset: 1,
            replayed: 1,
            source,
            ..
        } => assert!(
            matches!(*source, DeadLetterError::UnknownOrigin { ref topic } if topic == "other")
        ),
        other => panic!("{other}"),
    }
    assert_eq!(records_of(&f.broker, "orders", 0).len(), 1);

    assert!(matches!(
        replay(
            &f.broker,
            "orders.dlq",
            Selection::One {
                partition: 0,
                offset: 9
            }
        ),
        Err(DeadLetterError::NoSuchRecord {
            offset: 9,
            start: 0,
            end: 2,
            ..
        })
    ));
    assert!(matches!(
        replay(&f.broker, "nope.dlq", Selection::All),
        Err(DeadLetterError::Broker(
            weir_broker::BrokerError::UnknownTopic { .. }
        ))
    ));
}
