//! Compacted topics with real clients: kcat produces many keys and
//! tombstones in multi-record batches, the broker's cleaner runs, and kcat
//! reads back from the beginning: below the active segment only the latest
//! record of each key is left, every record at the offset it was written
//! at (with gaps), tombstones included while younger than
//! `delete.retention.ms`. A record without a key is refused.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{TestServer, call, connect, kcat, kcat_output};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_broker::compact::CleanerLimits;
use weir_kafka::Code;
use weir_log::Throttle;
use weir_log::batch::BatchBuilder;

fn create_compacted(server: &TestServer, name: &str) {
    server
        .broker
        .create_topic(
            name,
            1,
            -1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "4096"),
                ("max.message.bytes", "4096"),
                ("min.cleanable.dirty.ratio", "0.01"),
            ],
            false,
        )
        .unwrap();
}

#[test]
fn kcat_reads_back_only_the_latest_record_per_key_at_its_offset() {
    let server = TestServer::start();
    create_compacted(&server, "profiles");
    let b = server.bootstrap();
    // 600 writes over 40 keys (20 of them only in the first half), then a tombstone for keys 0..8 (kcat sends
    // an empty value as NULL with -Z). One partition: offsets follow lines.
    let mut lines: Vec<(String, Option<String>)> = (0..600)
        .map(|i| {
            // Keys 20-39 stop being written halfway: their latest records
            // lie far apart from the others', so the cleaned log has gaps.
            let key = if i < 300 { i % 40 } else { i % 20 };
            (format!("key-{key}"), Some(format!("value-{i}")))
        })
        .collect();
    lines.extend((0..8).map(|k| (format!("key-{k}"), None)));
    let input: String = lines
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.as_deref().unwrap_or("")))
        .collect();
    kcat(
        &[
            "-b",
            &b,
            "-P",
            "-t",
            "profiles",
            "-K:",
            "-Z",
            "-X",
            "acks=all",
            "-X",
            "batch.num.messages=25",
        ],
        &input,
    );
    let log = server
        .broker
        .topic("profiles")
        .unwrap()
        .partition(0)
        .unwrap();
    assert_eq!(log.end_offset(), lines.len() as i64);
    let active_base = log.active_base_offset();
    assert!(
        active_base > 300,
        "the test needs sealed segments ({active_base})"
    );

    let summary = server
        .broker
        .clean_compacted(&CleanerLimits::default(), &Throttle::new(None));
    assert_eq!(summary.partitions_cleaned, 1, "{summary:?}");

    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "profiles",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-Z",
            "-f",
            "%o|%k|%S|%s\n",
        ],
        "",
    );
    let mut read: Vec<(i64, String, Option<String>)> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.splitn(4, '|').collect();
        let value = (f[2] != "-1").then(|| f[3].to_owned());
        read.push((f[0].parse().unwrap(), f[1].to_owned(), value));
    }
    let mut latest_sealed: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in lines.iter().enumerate().take(active_base as usize) {
        latest_sealed.insert(key, offset as i64);
    }
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    for (offset, key, value) in &read {
        let written = &lines[*offset as usize];
        assert_eq!(
            (key, value),
            (&written.0, &written.1),
            "offset {offset} kept its record"
        );
        if *offset < active_base {
            assert_eq!(
                latest_sealed[key.as_str()],
                *offset,
                "{key} at {offset} is not its latest"
            );
        }
    }
    // Every key's latest record below the active segment is there (the
    // tombstones too: they are younger than delete.retention.ms), and the
    // active segment is read back whole.
    for (key, offset) in &latest_sealed {
        assert!(
            read.iter().any(|r| r.0 == *offset),
            "{key}'s latest ({offset}) is gone"
        );
    }
    let tail = read.iter().filter(|r| r.0 >= active_base).count();
    assert_eq!(tail, lines.len() - active_base as usize);
    let gaps = read.windows(2).filter(|w| w[1].0 > w[0].0 + 1).count();
    assert!(
        gaps > 0 && read.len() < lines.len() / 2,
        "{} records read",
        read.len()
    );

    // A record without a key is refused (kcat reports the broker's error).
    let refused = kcat_output(
        &["-b", &b, "-P", "-t", "profiles", "-X", "acks=all"],
        "no key\n",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // librdkafka's words for CORRUPT_MESSAGE (2), which Kafka answers a
    // Produce below v8 with, or for INVALID_RECORD (87) from v8 on.
    assert!(
        stderr.contains("Invalid message") || stderr.contains("failed to validate record"),
        "kcat said: {stderr}"
    );
    assert_eq!(log.end_offset(), lines.len() as i64, "nothing was appended");
}

/// Kafka answers a keyless record to a compacted topic with INVALID_RECORD
/// from Produce v8 on, with CORRUPT_MESSAGE before it (87 did not exist).
#[test]
fn the_keyless_refusal_code_follows_the_produce_version() {
    let server = TestServer::start();
    create_compacted(&server, "versions");
    let mut stream = connect(&server);
    let mut b = BatchBuilder::new(0);
    b.push(0, None, Some(b"no key"), &[]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("versions")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(b.build()))),
                ]),
        ]);
    for (version, code) in [
        (7, Code::CorruptMessage),
        (8, Code::InvalidRecord),
        (9, Code::InvalidRecord),
    ] {
        let response: ProduceResponse = call(&mut stream, ApiKey::Produce, version, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, code.code(), "Produce v{version}");
        if version >= 8 {
            let message = partition.error_message.as_ref().map(|m| m.to_string());
            assert_eq!(
                message.as_deref(),
                Some(
                    "Compacted topic cannot accept message without key in topic partition versions-0"
                )
            );
        }
    }
    let log = server
        .broker
        .topic("versions")
        .unwrap()
        .partition(0)
        .unwrap();
    assert_eq!(log.end_offset(), 0);
}
