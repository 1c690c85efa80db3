//! kcat (librdkafka) against Weir: metadata, keyed produce with murmur2
//! partitioning, consume from the beginning, and a consumer that waits for
//! records produced after it started.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{TestServer, kcat};
use weir_broker::partitioner::partition_for_key;

#[test]
fn keyed_records_round_trip_in_order_on_the_partitions_kafka_would_pick() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("orders", 6, -1, &[], false)
        .unwrap();
    let b = server.bootstrap();
    let n = 600;
    let input: String = (0..n)
        .map(|i| format!("key-{}:value-{i}\n", i % 37))
        .collect();
    kcat(
        &[
            "-b",
            &b,
            "-P",
            "-t",
            "orders",
            "-K:",
            "-H",
            "origin=kcat",
            "-X",
            "partitioner=murmur2_random",
            "-X",
            "acks=all",
        ],
        &input,
    );
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p|%o|%k|%s|%h\n",
        ],
        "",
    );
    let mut per_partition: BTreeMap<u32, Vec<(i64, String, String)>> = BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 5, "{line}");
        let partition: u32 = fields[0].parse().unwrap();
        let (key, value) = (fields[2].to_owned(), fields[3].to_owned());
        assert_eq!(
            partition,
            partition_for_key(key.as_bytes(), 6),
            "kcat and weir disagree on {key}"
        );
        assert_eq!(fields[4], "origin=kcat");
        per_partition
            .entry(partition)
            .or_default()
            .push((fields[1].parse().unwrap(), key, value));
    }
    let total: usize = per_partition.values().map(Vec::len).sum();
    assert_eq!(total, n);
    for records in per_partition.values() {
        // Offsets dense from 0, and the producer's order kept per partition.
        for (i, (offset, _, value)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64);
            if i > 0 {
                let prev: usize = records[i - 1].2["value-".len()..].parse().unwrap();
                let this: usize = value["value-".len()..].parse().unwrap();
                assert!(prev < this, "order broken: {prev} then {this}");
            }
        }
    }
    assert!(
        per_partition.len() > 3,
        "keys should spread over the partitions"
    );
}

#[test]
fn metadata_lists_topics_and_producing_to_a_new_topic_creates_it() {
    let server = TestServer::start();
    let b = server.bootstrap();
    kcat(&["-b", &b, "-P", "-t", "fresh"], "one\ntwo\n");
    let topic = server.broker.topic("fresh").expect("auto-created");
    assert_eq!(topic.partition_count(), 1);
    let listing = kcat(&["-b", &b, "-L"], "");
    assert!(
        listing.contains("topic \"fresh\" with 1 partitions"),
        "{listing}"
    );
    assert!(listing.contains("(controller)"), "{listing}");
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "fresh",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ],
        "",
    );
    assert_eq!(out, "one\ntwo\n");
}

#[test]
fn a_consumer_at_the_end_waits_for_new_records() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("live", 1, 1, &[], false)
        .unwrap();
    let b = server.bootstrap();
    let consumer = std::process::Command::new("kcat")
        // The topic is empty, so its beginning is its end: the consumer
        // starts there whenever it gets going, with no race.
        .args([
            "-b",
            &b,
            "-C",
            "-t",
            "live",
            "-o",
            "beginning",
            "-c",
            "3",
            "-q",
            "-f",
            "%s\n",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    kcat(&["-b", &b, "-P", "-t", "live"], "a\nb\nc\n");
    let out = consumer.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "a\nb\nc\n");
    assert!(started.elapsed() < Duration::from_secs(20));
}
