//! kafkajs (which never uses flexible versions) against Weir: its admin
//! client and producer (`tests/clients/kafkajs_roundtrip.js`), with the
//! records read back by the Python consumers and by kafkajs's own consumer,
//! which always belongs to a group; kafkajs also reads back what the Python
//! producers sent. Modules come from `WEIR_NODE_MODULES`, set by
//! `scripts/test` after `scripts/install-deps` installed
//! `tests/clients/package.json`.

mod common;

use std::time::Duration;

use common::{TestServer, node_modules, python};

fn run(cmd: &mut std::process::Command, what: &str) -> String {
    common::run_bounded(cmd, what, Duration::from_secs(150))
}

fn round_trip(codec: &str, idempotent: bool) {
    let server = TestServer::start();
    let topic = format!("js-{codec}-{idempotent}");
    let roundtrip_js = common::client_script("kafkajs_roundtrip.js");
    let roundtrip_py = common::client_script("python_roundtrip.py");
    let out = run(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .args([
                &roundtrip_js,
                "produce",
                &server.bootstrap(),
                &topic,
                codec,
                &idempotent.to_string(),
                "10000",
            ]),
        "kafkajs",
    );
    assert!(out.contains("kafkajs: produced 10000 records"), "{out}");
    assert!(out.contains("kafkajs consumer: 10000 records"), "{out}");
    let out = run(
        std::process::Command::new(python()).args([
            &roundtrip_py,
            &server.bootstrap(),
            &topic,
            "none",
            codec,
            "10000",
        ]),
        "python consumers",
    );
    assert!(out.contains("confluent consumer: 10000 records"), "{out}");
    assert!(
        out.contains("kafka-python consumer: 10000 records"),
        "{out}"
    );
    let first = server
        .broker
        .partition(&topic, 0)
        .unwrap()
        .read(0, 1)
        .unwrap();
    let header = weir_log::batch::BatchHeader::parse(&first.bytes).unwrap();
    assert_eq!(header.producer_id >= 0, idempotent);
}

#[test]
fn kafkajs_uncompressed() {
    round_trip("none", false);
}

#[test]
fn kafkajs_gzip_idempotent() {
    round_trip("gzip", true);
}

#[test]
fn kafkajs_snappy() {
    round_trip("snappy", false);
}

#[test]
fn kafkajs_lz4() {
    round_trip("lz4", false);
}

/// kafkajs's group consumer reads back, and checks, the records a Python
/// client produced (issue 4 asked every client to read every other's).
fn kafkajs_reads(producer: &str, codec: &str) {
    let server = TestServer::start();
    let topic = format!("py-to-js-{producer}");
    server
        .broker
        .create_topic(&topic, 6, -1, &[], false)
        .unwrap();
    let out = run(
        std::process::Command::new(python()).args([
            &common::client_script("python_roundtrip.py"),
            &server.bootstrap(),
            &topic,
            producer,
            codec,
            "10000",
        ]),
        "python round trip",
    );
    assert!(out.contains("confluent consumer: 10000 records"), "{out}");
    let out = run(
        std::process::Command::new("node")
            .env("NODE_PATH", node_modules())
            .args([
                &common::client_script("kafkajs_roundtrip.js"),
                "consume",
                &server.bootstrap(),
                &topic,
                "10000",
            ]),
        "kafkajs consumer",
    );
    assert!(
        out.contains("kafkajs consumer: 10000 records on 6 partitions"),
        "{out}"
    );
}

#[test]
fn kafkajs_reads_confluent_kafka_records() {
    kafkajs_reads("confluent", "lz4");
}

#[test]
fn kafkajs_reads_kafka_python_records() {
    kafkajs_reads("kafka-python", "gzip");
}
