//! DeleteRecords through real clients: confluent-kafka's and kafka-python's
//! admin clients delete records below an offset and below the high
//! watermark (-1), get OFFSET_OUT_OF_RANGE and UNKNOWN_TOPIC_OR_PARTITION
//! where Kafka gives them, and a consumer from the earliest offset then
//! sees only the records from the new start
//! (`tests/clients/python_delete_records.py`); on raw sockets, every
//! version answers the new low watermark and the per-partition errors.

mod common;

use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

fn delete_records(client: &str) {
    let server = TestServer::start();
    let topic = format!("delete-records-{client}");
    server
        .broker
        .create_topic(&topic, 2, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_delete_records.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            client,
            &topic,
        ]),
        &format!("python_delete_records.py {client}"),
        Duration::from_secs(120),
    );
    assert!(
        out.contains(&format!("{client}: delete records ok")),
        "{out}"
    );
    // What the clients saw is what the partitions hold.
    let log = server.broker.partition(&topic, 0).unwrap();
    assert_eq!((log.start_offset(), log.high_watermark()), (4, 10));
    let log = server.broker.partition(&topic, 1).unwrap();
    assert_eq!(log.start_offset(), 10);
}

#[test]
fn confluent_kafka_deletes_records() {
    delete_records("confluent");
}

#[test]
fn kafka_python_deletes_records() {
    delete_records("kafka-python");
}

fn one_record(value: &[u8]) -> Vec<u8> {
    let mut b = weir_log::batch::BatchBuilder::new(1_700_000_000_000);
    b.push(1_700_000_000_000, None, Some(value), &[]);
    b.build()
}

#[test]
fn every_version_answers_low_watermarks_and_partition_errors() {
    let server = TestServer::start();
    server.broker.create_topic("t", 1, -1, &[], false).unwrap();
    for i in 0..9 {
        server
            .broker
            .produce("t", 0, &mut one_record(format!("v{i}").as_bytes()))
            .unwrap();
    }
    let mut stream = connect(&server);
    let request = |offsets: &[(&str, i32, i64)]| {
        let topics = offsets
            .iter()
            .map(|(t, p, o)| {
                DeleteRecordsTopic::default()
                    .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o),
                    ])
            })
            .collect();
        DeleteRecordsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(5_000)
    };
    let answers = |response: DeleteRecordsResponse| -> Vec<(String, i32, i64, i16)> {
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.low_watermark,
                        p.error_code,
                    )
                })
            })
            .collect()
    };
    // 0: OFFSET_OUT_OF_RANGE (1), UNKNOWN_TOPIC_OR_PARTITION (3),
    // INVALID_TOPIC_EXCEPTION (17).
    for (version, offset) in [(0i16, 3i64), (1, 5), (2, 7)] {
        let response: DeleteRecordsResponse = call(
            &mut stream,
            ApiKey::DeleteRecords,
            version,
            &request(&[
                ("t", 0, offset),
                ("t", 1, 1),
                ("nope", 0, 1),
                ("__consumer_offsets", 0, 0),
            ]),
        );
        assert_eq!(
            answers(response),
            vec![
                ("t".into(), 0, offset, 0),
                ("t".into(), 1, -1, 3),
                ("nope".into(), 0, -1, 3),
                ("__consumer_offsets".into(), 0, -1, 17),
            ],
            "v{version}"
        );
    }
    let log = server.broker.partition("t", 0).unwrap();
    for (offset, expected) in [(10, (-1, 1)), (-2, (-1, 1)), (2, (7, 0)), (-1, (9, 0))] {
        let response: DeleteRecordsResponse = call(
            &mut stream,
            ApiKey::DeleteRecords,
            2,
            &request(&[("t", 0, offset)]),
        );
        let [(_, _, low, code)] = answers(response)[..] else {
            panic!("one partition answered");
        };
        assert_eq!((low, code), expected, "offset {offset}");
    }
    assert_eq!((log.start_offset(), log.high_watermark()), (9, 9));
}
