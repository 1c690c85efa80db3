//! `read_committed` consumers over transactions written into a partition
//! through the broker (transactional batches and the coordinator's
//! markers): Fetch stops at the last stable offset and lists the aborted
//! transactions, ListOffsets' latest is the stable offset, and kcat
//! (librdkafka) in `read_committed` sees committed records only, while
//! `read_uncommitted` sees them all.

mod common;

use common::{TestServer, call, connect, kcat};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_log::batch::{self, BatchBuilder, BatchHeader};

const TOPIC: &str = "rc";

fn values(pid: Option<(i64, i32)>, values: &[&str]) -> Vec<u8> {
    let mut b = match pid {
        Some((pid, seq)) => BatchBuilder::new(0).producer(pid, 0, seq).transactional(),
        None => BatchBuilder::new(0),
    };
    for v in values {
        b.push(0, None, Some(v.as_bytes()), &[]);
    }
    b.build()
}

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn fetch(stream: &mut std::net::TcpStream, isolation: i8) -> FetchResponse {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    call(stream, ApiKey::Fetch, 11, &request)
}

fn latest(stream: &mut std::net::TcpStream, isolation: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let r: ListOffsetsResponse = call(stream, ApiKey::ListOffsets, 5, &request);
    r.topics[0].partitions[0].offset
}

/// The data records' values in fetched bytes (control batches skipped).
fn data_values(records: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let header = BatchHeader::parse(&records[pos..]).unwrap();
        let end = pos + header.total_bytes();
        if !header.is_control() {
            for r in batch::records(&records[pos..end]).unwrap() {
                out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        pos = end;
    }
    out
}

fn kcat_values(server: &TestServer, isolation: &str) -> Vec<String> {
    let out = kcat(
        &[
            "-C",
            "-b",
            &server.bootstrap(),
            "-t",
            TOPIC,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            &format!("isolation.level={isolation}"),
            "-f",
            "%s\n",
        ],
        "",
    );
    out.lines().map(str::to_owned).collect()
}

#[test]
fn read_committed_sees_committed_records_only() {
    let server = TestServer::start();
    let broker = &server.broker;
    broker.create_topic(TOPIC, 1, -1, &[], false).unwrap();
    let (a, _) = broker.init_producer_id(-1, -1).unwrap();
    let (b, _) = broker.init_producer_id(-1, -1).unwrap();
    let marker = |pid, commit| {
        broker
            .write_marker(TOPIC, 0, pid, 0, commit, 0)
            .unwrap()
            .wait()
            .unwrap();
    };
    broker
        .produce(TOPIC, 0, &mut values(None, &["p0"]))
        .unwrap(); // 0
    broker
        .produce(TOPIC, 0, &mut values(Some((a, 0)), &["a1", "a2"]))
        .unwrap(); // 1-2
    broker
        .produce(TOPIC, 0, &mut values(Some((b, 0)), &["b1"]))
        .unwrap(); // 3
    marker(a, true); // 4
    marker(b, false); // 5
    broker
        .produce(TOPIC, 0, &mut values(None, &["p1"]))
        .unwrap(); // 6
    broker
        .produce(TOPIC, 0, &mut values(Some((a, 2)), &["a3"]))
        .unwrap(); // 7: open
    broker
        .produce(TOPIC, 0, &mut values(None, &["p2"]))
        .unwrap(); // 8

    let mut s = connect(&server);
    let committed = fetch(&mut s, 1);
    let p = &committed.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.last_stable_offset),
        (0, 9, 7)
    );
    let aborted = p
        .aborted_transactions
        .as_ref()
        .expect("a list in read_committed");
    assert_eq!(
        aborted
            .iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect::<Vec<_>>(),
        [(b, 3)]
    );
    // Records up to the stable offset: the consumer drops b1 itself.
    assert_eq!(
        data_values(p.records.as_ref().unwrap()),
        ["p0", "a1", "a2", "b1", "p1"]
    );
    let uncommitted = fetch(&mut s, 0);
    let p = &uncommitted.responses[0].partitions[0];
    assert_eq!(p.last_stable_offset, 7);
    assert!(p.aborted_transactions.is_none());
    assert_eq!(
        data_values(p.records.as_ref().unwrap()),
        ["p0", "a1", "a2", "b1", "p1", "a3", "p2"]
    );
    assert_eq!((latest(&mut s, 1), latest(&mut s, 0)), (7, 9));

    // A real client.
    assert_eq!(
        kcat_values(&server, "read_committed"),
        ["p0", "a1", "a2", "p1"]
    );
    assert_eq!(
        kcat_values(&server, "read_uncommitted"),
        ["p0", "a1", "a2", "b1", "p1", "a3", "p2"]
    );
    // a's second transaction commits: everything but b1 is visible.
    marker(a, true);
    assert_eq!(latest(&mut s, 1), 10);
    assert_eq!(
        kcat_values(&server, "read_committed"),
        ["p0", "a1", "a2", "p1", "a3", "p2"]
    );
}
