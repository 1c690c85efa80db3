//! Fetch keeps to `fetch.max.bytes` and `max.partition.fetch.bytes` as
//! KIP-74 has it: only the first batch of the first partition with data
//! may pass them. With real clients (large records over several
//! partitions, which made librdkafka drop oversized responses and loop)
//! and as a property over random batch sizes and limits at the request
//! level.

mod common;

use std::time::Duration;

use common::{TestServer, call, connect, python, run_bounded};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use weir_log::batch::{BatchBuilder, BatchHeader};

#[test]
fn large_records_over_several_partitions_reach_real_clients() {
    let server = TestServer::start();
    let topic = "large-records";
    server
        .broker
        .create_topic(topic, 4, -1, &[], false)
        .unwrap();
    let script = common::client_script("python_large_fetch.py");
    let out = run_bounded(
        std::process::Command::new(python()).args([
            script.as_str(),
            &server.bootstrap(),
            topic,
            "4",
            "3",
            &(900 * 1024).to_string(),
        ]),
        "large records through confluent-kafka and kafka-python",
        Duration::from_secs(150),
    );
    assert!(out.contains("confluent consumer: 12 records"), "{out}");
    assert!(out.contains("kafka-python consumer: 12 records"), "{out}");
}

/// One batch of `records` records of `value_bytes` each.
fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    let value = vec![b'x'; value_bytes];
    for _ in 0..records {
        b.push(0, None, Some(&value), &[]);
    }
    b.build()
}

/// The sizes of the batches in one partition's records.
fn batch_sizes(records: &[u8]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let total = BatchHeader::parse(&records[pos..]).unwrap().total_bytes();
        sizes.push(total);
        pos += total;
    }
    assert_eq!(pos, records.len(), "whole batches only");
    sizes
}

fn fetch(
    stream: &mut std::net::TcpStream,
    topic: &str,
    partitions: &[(i32, i32)],
    max_bytes: i32,
) -> FetchResponse {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, partition_max)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(partition_max)
                        })
                        .collect(),
                ),
        ]);
    call(stream, ApiKey::Fetch, 12, &request)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("WEIR_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32).min(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_fetch_response_keeps_to_its_limits(
        shapes in prop::collection::vec(prop::collection::vec((1usize..4, 0usize..4000), 0..6), 1..6),
        partition_limits in prop::collection::vec(0i32..12_000, 6),
        max_bytes in 0i32..30_000,
    ) {
        let server = TestServer::start();
        let topic = "limits";
        server.broker.create_topic(topic, shapes.len() as i64, -1, &[], false).unwrap();
        let mut stored: Vec<Vec<usize>> = Vec::new();
        for (p, batches) in shapes.iter().enumerate() {
            let mut sizes = Vec::new();
            for &(records, value_bytes) in batches {
                let mut bytes = batch(records, value_bytes);
                sizes.push(bytes.len());
                server.broker.produce(topic, p as i32, &mut bytes).unwrap();
            }
            stored.push(sizes);
        }
        let wanted: Vec<(i32, i32)> =
            (0..shapes.len()).map(|p| (p as i32, partition_limits[p])).collect();
        let mut stream = connect(&server);
        let response = fetch(&mut stream, topic, &wanted, max_bytes);
        let mut left = max_bytes as usize;
        let mut first_with_data = true;
        for (p, answer) in response.responses[0].partitions.iter().enumerate() {
            prop_assert_eq!(answer.error_code, 0);
            let got = batch_sizes(answer.records.as_deref().unwrap_or_default());
            // What KIP-74 allows: whole batches within the partition's
            // limit and what is left of the request's, as many as fit; the
            // first partition with data gets at least one batch.
            let limit = (partition_limits[p] as usize).min(left);
            let mut expected = Vec::new();
            let mut used = 0;
            for &size in &stored[p] {
                if used + size > limit && !(first_with_data && expected.is_empty()) {
                    break;
                }
                used += size;
                expected.push(size);
            }
            prop_assert_eq!(&got, &expected, "partition {}", p);
            if !got.is_empty() {
                first_with_data = false;
            }
            left = left.saturating_sub(used);
        }
    }
}
