//! Leader epochs (KIP-320) at the request level and through librdkafka:
//! OffsetForLeaderEpoch answers the end of epoch 0 (the high watermark),
//! of an older epoch (the log start), of -1 and of a newer epoch (none);
//! a `current_leader_epoch` that is older or newer than 0 is
//! FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH in OffsetForLeaderEpoch,
//! Fetch and ListOffsets alike; an unknown partition is
//! UNKNOWN_TOPIC_OR_PARTITION. A confluent-kafka consumer that committed
//! an offset (with the batch's leader epoch 0) resumes from it in a new
//! session without errors (librdkafka validates a committed position only
//! when the leader epoch moves, which it never does here), and a seek to a
//! position with an epoch is validated with OffsetForLeaderEpoch.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_log::batch::BatchBuilder;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_owned()))
}

/// OffsetForLeaderEpoch for one partition: (error, epoch, end offset).
fn epoch_end(
    stream: &mut TcpStream,
    version: i16,
    topic: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ]);
    let r: OffsetForLeaderEpochResponse =
        call(stream, ApiKey::OffsetForLeaderEpoch, version, &request);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.partition, partition);
    (p.error_code, p.leader_epoch, p.end_offset)
}

fn fetch_code(stream: &mut TcpStream, version: i16, current: i32) -> i16 {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("epochs"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_fetch_offset(2)
                        .with_current_leader_epoch(current)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = call(stream, ApiKey::Fetch, version, &request);
    r.responses[0].partitions[0].error_code
}

/// ListOffsets of the latest offset: (error, offset, leader epoch).
fn latest(stream: &mut TcpStream, version: i16, current: i32) -> (i16, i64, i32) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name("epochs"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_timestamp(-1)
                        .with_current_leader_epoch(current),
                ]),
        ]);
    let r: ListOffsetsResponse = call(stream, ApiKey::ListOffsets, version, &request);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

#[test]
fn offset_for_leader_epoch_and_current_epoch_checks() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("epochs", 2, -1, &[], false)
        .unwrap();
    for i in 0..4 {
        let mut b = BatchBuilder::new(0);
        b.push(0, None, Some(format!("v{i}").as_bytes()), &[]);
        server.broker.produce("epochs", 0, &mut b.build()).unwrap();
    }
    server.broker.delete_records("epochs", 0, 1).unwrap();
    let mut stream = connect(&server);
    // The epoch Metadata reports, which the answers must agree with.
    let metadata: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let reported = metadata.topics[0].partitions[0].leader_epoch;
    assert_eq!(reported, 0);
    for v in 2..=4 {
        let at = |stream: &mut TcpStream, current, epoch| {
            epoch_end(stream, v, "epochs", 0, current, epoch)
        };
        assert_eq!(at(&mut stream, -1, reported), (0, reported, 4), "v{v}");
        assert_eq!(at(&mut stream, reported, reported), (0, reported, 4));
        assert_eq!(at(&mut stream, reported, -1), (0, -1, -1), "no epoch");
        assert_eq!(at(&mut stream, reported, 1), (0, -1, -1), "a newer epoch");
        assert_eq!(
            at(&mut stream, reported, -3),
            (0, -3, 1),
            "older: log start"
        );
        assert_eq!(at(&mut stream, 1, reported).0, UNKNOWN_LEADER_EPOCH);
        assert_eq!(at(&mut stream, -2, reported).0, FENCED_LEADER_EPOCH);
        // An empty partition ends its epoch at 0.
        assert_eq!(epoch_end(&mut stream, v, "epochs", 1, -1, 0), (0, 0, 0));
        for (topic, p) in [("epochs", 2), ("nothing", 0)] {
            assert_eq!(
                epoch_end(&mut stream, v, topic, p, 1, 0),
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                "{topic}-{p}: the partition before the epoch"
            );
        }
    }
    // Fetch and ListOffsets check the current epoch the same way.
    // (From v13 topics are named by id; the check is the same code.)
    for v in [9, 12] {
        assert_eq!(fetch_code(&mut stream, v, -1), 0);
        assert_eq!(fetch_code(&mut stream, v, 0), 0);
        assert_eq!(fetch_code(&mut stream, v, 1), UNKNOWN_LEADER_EPOCH, "v{v}");
        assert_eq!(fetch_code(&mut stream, v, -2), FENCED_LEADER_EPOCH, "v{v}");
    }
    for v in 4..=10 {
        assert_eq!(latest(&mut stream, v, 0), (0, 4, 0), "v{v}");
        assert_eq!(latest(&mut stream, v, 1).0, UNKNOWN_LEADER_EPOCH, "v{v}");
        assert_eq!(latest(&mut stream, v, -2).0, FENCED_LEADER_EPOCH, "v{v}");
    }
    // Before v4 neither field exists.
    assert_eq!(latest(&mut stream, 3, -1), (0, 4, -1));
}

#[test]
fn a_librdkafka_consumer_resumes_from_its_commit_and_validates_a_seek() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("resume", 1, -1, &[], false)
        .unwrap();
    for i in 0..6 {
        let mut b = BatchBuilder::new(0);
        b.push(0, None, Some(format!("r{i}").as_bytes()), &[]);
        server.broker.produce("resume", 0, &mut b.build()).unwrap();
    }
    let script = r#"
import sys, logging
from confluent_kafka import Consumer, TopicPartition
class Log(logging.Handler):
    lines = []
    def emit(self, record):
        Log.lines.append(record.getMessage())
logger = logging.getLogger("rdkafka")
logger.setLevel(logging.DEBUG)
logger.addHandler(Log())
errors = []
def consumer():
    return Consumer({"bootstrap.servers": sys.argv[1], "group.id": "resumers",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "debug": "protocol,fetch,consumer", "error_cb": errors.append},
                    logger=logger)
def take(c, n):
    got = []
    while len(got) < n:
        m = c.poll(10)
        if m is None:
            break
        if m.error():
            errors.append(m.error())
            continue
        got.append(m)
    return got
c = consumer()
c.subscribe(["resume"])
first = take(c, 3)
print("first", ",".join(m.value().decode() for m in first))
last = first[-1]
print("epoch of the last record", last.leader_epoch())
c.commit(message=last, asynchronous=False)
print("committed", c.committed([TopicPartition("resume", 0)], 10)[0].leader_epoch)
c.close()
c = consumer()
c.subscribe(["resume"])
rest = take(c, 1)
# A seek to a position with a leader epoch is validated (KIP-320) before
# fetching resumes from it.
c.seek(TopicPartition("resume", 0, 4, leader_epoch=0))
rest += take(c, 2)
print("resumed", ",".join(m.value().decode() for m in rest))
c.close()
asked = any("OffsetForLeaderEpoch" in l for l in Log.lines)
print("validated with OffsetForLeaderEpoch", asked)
print("errors", errors)
trouble = ("not supported", "Disconnected", "Unsupported", "UNSUPPORTED")
print("protocol trouble", [l for l in Log.lines if any(t in l for t in trouble)])
print("validation", [l for l in Log.lines if "epoch validation succeeded" in l][:1])
"#;
    let out = run_bounded(
        std::process::Command::new(python()).args(["-c", script, &server.bootstrap()]),
        "confluent-kafka consumer resuming",
        Duration::from_secs(90),
    );
    eprintln!("{out}");
    for line in [
        "first r0,r1,r2\n",
        "epoch of the last record 0\n",
        "committed 0\n",
        "resumed r3,r4,r5\n",
        "validated with OffsetForLeaderEpoch True\n",
        "validation succeeded: broker end offset 6 (offset leader epoch 0)",
        "errors []\n",
        "protocol trouble []\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}
