//! The newest versions of the data APIs that Kafka 4.x clients send: Fetch
//! and Produce naming topics by id (KIP-516, Fetch v13+, Produce v13),
//! and ListOffsets' special timestamps up to v10 (MAX_TIMESTAMP,
//! EARLIEST_LOCAL, LATEST_TIERED), at the request level and through
//! confluent-kafka's admin client.

mod common;

use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_log::batch::BatchBuilder;

const UNKNOWN_TOPIC_ID: i16 = 100;

fn one_record(ts: i64, value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    b.push(ts, None, Some(value), &[]);
    b.build()
}

fn topic_id(server: &TestServer, name: &str) -> uuid::Uuid {
    uuid::Uuid::from_u128(server.broker.topic(name).unwrap().id)
}

#[test]
fn fetch_and_produce_name_topics_by_id() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("by-id", 2, -1, &[], false)
        .unwrap();
    let id = topic_id(&server, "by-id");
    let mut stream = connect(&server);
    // Produce v13 by id, one record per version of Fetch to read back.
    let produce = |stream: &mut std::net::TcpStream, id: uuid::Uuid| -> ProduceResponse {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_topic_id(id)
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(one_record(1_000, b"by id").into())),
                    ]),
            ]);
        call(stream, ApiKey::Produce, 13, &request)
    };
    let response = produce(&mut stream, id);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(server.broker.partition("by-id", 1).unwrap().end_offset(), 1);
    // An id no topic has.
    let response = produce(&mut stream, uuid::Uuid::from_u128(42));
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        UNKNOWN_TOPIC_ID
    );

    for version in 13..=18 {
        let fetch = |stream: &mut std::net::TcpStream, id: uuid::Uuid| -> FetchResponse {
            let request = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(1)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]);
            call(stream, ApiKey::Fetch, version, &request)
        };
        let response = fetch(&mut stream, id);
        let topic = &response.responses[0];
        assert_eq!(topic.topic_id, id, "v{version}");
        let partition = &topic.partitions[0];
        assert_eq!(partition.error_code, 0, "v{version}");
        assert_eq!(partition.high_watermark, 1, "v{version}");
        assert!(partition.aborted_transactions.is_none(), "v{version}");
        let records = partition.records.as_ref().unwrap();
        assert!(
            records.windows(5).any(|w| w == b"by id"),
            "v{version}: the record comes back"
        );
        let response = fetch(&mut stream, uuid::Uuid::from_u128(42));
        assert_eq!(
            response.responses[0].partitions[0].error_code, UNKNOWN_TOPIC_ID,
            "v{version}"
        );
    }
    // Below v13 topics are still named.
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("by-id")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &request);
    assert_eq!(response.responses[0].partitions[0].high_watermark, 1);
}

#[test]
fn list_offsets_answers_every_special_timestamp() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("times", 2, -1, &[], false)
        .unwrap();
    // Timestamps out of order: the largest is at offset 2.
    for (ts, value) in [(1_000, "a"), (5_000, "b"), (9_000, "c"), (3_000, "d")] {
        server
            .broker
            .produce("times", 0, &mut one_record(ts, value.as_bytes()))
            .unwrap();
    }
    let mut stream = connect(&server);
    let list = |stream: &mut std::net::TcpStream, version: i16, partition: i32, ts: i64| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("times")))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(ts),
                    ]),
            ]);
        let response: ListOffsetsResponse = call(stream, ApiKey::ListOffsets, version, &request);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version} ts {ts}");
        (p.offset, p.timestamp)
    };
    for version in 7..=10 {
        assert_eq!(list(&mut stream, version, 0, -1), (4, -1), "latest");
        assert_eq!(list(&mut stream, version, 0, -2), (0, -1), "earliest");
        assert_eq!(
            list(&mut stream, version, 0, -3),
            (2, 9_000),
            "max timestamp"
        );
        assert_eq!(
            list(&mut stream, version, 1, -3),
            (-1, -1),
            "max of nothing"
        );
        assert_eq!(list(&mut stream, version, 0, 4_000), (1, 5_000), "by time");
        if version >= 8 {
            assert_eq!(list(&mut stream, version, 0, -4), (0, -1), "earliest local");
        }
        if version >= 9 {
            assert_eq!(list(&mut stream, version, 0, -5), (-1, -1), "latest tiered");
        }
    }
}

#[test]
fn confluent_admin_lists_offsets_by_spec() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("specs", 1, -1, &[], false)
        .unwrap();
    for (ts, value) in [(1_000, "a"), (9_000, "b"), (5_000, "c")] {
        server
            .broker
            .produce("specs", 0, &mut one_record(ts, value.as_bytes()))
            .unwrap();
    }
    let script = r#"
import sys
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
a = AdminClient({"bootstrap.servers": sys.argv[1]})
tp = TopicPartition("specs", 0)
for name, spec in [("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                   ("max_timestamp", OffsetSpec.max_timestamp()), ("for_timestamp", OffsetSpec.for_timestamp(2000))]:
    r = a.list_offsets({tp: spec})[tp].result(10)
    print(f"{name} {r.offset} {r.timestamp}")
"#;
    let out = run_bounded(
        std::process::Command::new(python()).args(["-c", script, &server.bootstrap()]),
        "confluent-kafka list_offsets",
        Duration::from_secs(60),
    );
    for line in [
        "earliest 0 ",
        "latest 3 ",
        "max_timestamp 1 9000",
        "for_timestamp 1 9000",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
}
