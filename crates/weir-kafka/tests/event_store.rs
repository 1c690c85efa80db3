//! The event store's log through a real Kafka client (confluent-kafka, so
//! librdkafka): events appended to an `EmbeddedStore` on the server's
//! broker are read back from the internal topic `__weir_events`, by
//! assignment and in a consumer group, as CloudEvents records whose key,
//! value, timestamp and `ce_*` headers are exactly what the store
//! recorded; and a produce to `__weir_events` is refused with
//! INVALID_TOPIC_EXCEPTION and writes nothing. The script is
//! `tests/clients/python_event_store.py`.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, python};
use weir_store::{
    Direction, EVENTS_TOPIC, EmbeddedStore, EventStore, ExpectedVersion, NewEvent, StoreConfig,
    StreamMetadata,
};

/// Runs the script; returns its stdout.
fn client(server: &TestServer, args: &[&str]) -> String {
    let script = common::client_script("python_event_store.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(server.bootstrap())
        .args(args)
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "python_event_store.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A record as the client printed it.
#[derive(Debug)]
struct Record {
    offset: u64,
    timestamp: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
}

fn records(stdout: &str) -> Vec<Record> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("record "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let headers = if f[4] == "-" {
                BTreeMap::new()
            } else {
                f[4].split(';')
                    .map(|h| {
                        let (name, value) = h.split_once('=').unwrap();
                        (name.to_owned(), String::from_utf8(unhex(value)).unwrap())
                    })
                    .collect()
            };
            Record {
                offset: f[0].parse().unwrap(),
                timestamp: f[1].parse().unwrap(),
                key: unhex(f[2]),
                value: unhex(f[3]),
                headers,
            }
        })
        .collect()
}

/// Appends a few events of several streams, types and shapes; returns how
/// many records `__weir_events` holds (one more than events: a metadata
/// change is a record too).
fn append_some(store: &EmbeddedStore) -> usize {
    let mut binary = NewEvent::json("e-bin", "Scanned", vec![0, 159, 146, 150, 255, 10]);
    binary.content_type = "application/octet-stream".to_owned();
    let mut bare = NewEvent::json("e-bare", "Noted", b"plain".to_vec());
    bare.content_type = String::new();
    let mut with_metadata = NewEvent::json("e-meta", "Opened", br#"{"owner":"ada"}"#.to_vec());
    with_metadata.metadata = br#"{"user":"ada","trace":"t-1"}"#.to_vec();
    store
        .append("account-1", ExpectedVersion::NoStream, &[with_metadata])
        .unwrap();
    let deposits: Vec<NewEvent> = (0..3)
        .map(|i| NewEvent::json(format!("e-dep{i}"), "Deposited", format!("{{\"n\":{i}}}")))
        .collect();
    store
        .append("account-1", ExpectedVersion::Exact(0), &deposits)
        .unwrap();
    store
        .append("order-7", ExpectedVersion::Any, &[binary, bare])
        .unwrap();
    store
        .set_stream_metadata(
            "order-7",
            &StreamMetadata {
                max_count: Some(100),
                ..StreamMetadata::default()
            },
        )
        .unwrap();
    store
        .append(
            "account-2",
            ExpectedVersion::Any,
            &[NewEvent::json("e-late", "Opened", "{}")],
        )
        .unwrap();
    8
}

/// Every record the client read is the event the store recorded at that
/// position, in the CloudEvents Kafka binding.
fn check_against_store(store: &EmbeddedStore, read: &[Record], n: usize) {
    assert_eq!(read.len(), n, "{read:?}");
    let events = store.read_all(0, Direction::Forward, 100).unwrap();
    assert_eq!(events.len(), n - 1, "every record but the metadata change");
    let mut events = events.into_iter().peekable();
    for r in read {
        let h = |name: &str| r.headers.get(name).map(String::as_str);
        let Some(e) = events.next_if(|e| e.position == r.offset) else {
            // The stream's metadata change, in its `$$` stream.
            assert_eq!(r.key, b"$$order-7");
            assert_eq!(h("ce_type"), Some("$metadata"));
            assert_eq!(r.value, br#"{"max_count":100}"#);
            continue;
        };
        assert_eq!(r.key, e.stream.as_bytes(), "key of {}", e.id);
        assert_eq!(r.value, e.data, "value of {}", e.id);
        assert_eq!(r.timestamp, e.recorded_ms, "timestamp of {}", e.id);
        assert_eq!(h("ce_specversion"), Some("1.0"));
        assert_eq!(h("ce_id"), Some(e.id.as_str()));
        assert_eq!(h("ce_type"), Some(e.event_type.as_str()));
        let source = format!("/streams/{}", e.stream);
        assert_eq!(h("ce_source"), Some(source.as_str()));
        let version = e.version.to_string();
        assert_eq!(h("ce_streamversion"), Some(version.as_str()));
        let content_type = (!e.content_type.is_empty()).then_some(e.content_type.as_str());
        assert_eq!(h("content-type"), content_type, "content type of {}", e.id);
        let metadata = String::from_utf8(e.metadata.clone()).unwrap();
        let metadata = (!metadata.is_empty()).then_some(metadata.as_str());
        assert_eq!(h("ce_metadata"), metadata, "metadata of {}", e.id);
        let time = h("ce_time").unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "ce_time {time}"
        );
    }
    assert!(events.next().is_none());
}

#[test]
fn kafka_consumers_read_appended_events_as_cloudevents() {
    let server = TestServer::start();
    let store = EmbeddedStore::open(server.broker.clone(), StoreConfig::default()).unwrap();
    let n = append_some(&store);
    let read = records(&client(&server, &["read", &n.to_string()]));
    check_against_store(&store, &read, n);
    // A consumer group on __weir_events sees the same records.
    let grouped = records(&client(&server, &["group", &n.to_string()]));
    check_against_store(&store, &grouped, n);
}

#[test]
fn kafka_producers_are_refused_and_write_nothing() {
    let server = TestServer::start();
    let store = EmbeddedStore::open(server.broker.clone(), StoreConfig::default()).unwrap();
    let n = append_some(&store) as i64;
    let log = server.broker.partition(EVENTS_TOPIC, 0).unwrap();
    let answer = client(&server, &["produce"]);
    // Kafka's INVALID_TOPIC_EXCEPTION (17); librdkafka calls it
    // TOPIC_EXCEPTION.
    assert_eq!(answer.trim(), "refused 17 TOPIC_EXCEPTION", "{answer}");
    assert_eq!(log.end_offset(), n, "nothing was written");
    // The store goes on where it was.
    let r = store
        .append(
            "account-1",
            ExpectedVersion::Exact(3),
            &[NewEvent::json("e-after", "Closed", "{}")],
        )
        .unwrap();
    assert_eq!((r.first_version, r.first_position), (4, n as u64));
}
